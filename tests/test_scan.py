"""``dfstream scan`` on this machine (worker processes): outputs, resume after an interrupted scan,
a broken video reported after two tries, and the one-line errors of ``--ray``.

The scans run ``python -m dfstream scan`` with the untrained model, ``--detector none`` and
tiny clips, one worker with one thread, so that they stay short on a 2-core machine.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.live_servers import REPO_ROOT, free_port, wait_for
from tests.media import write_clip, write_text_as_mp4
from tests.scan_outputs import results, summaries

SCAN_ARGS = [
    "--untrained", "--detector", "none", "--window", "4", "--stride", "2", "--batch", "4",
    "--backend", "torch", "--workers", "1", "--cpus-per-worker", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 12-frame 64x48 clips in two folders, plus a text file named like a video."""
    root = tmp_path_factory.mktemp("archive")
    for part in ("part0", "part1"):
        (root / part).mkdir()
    for i in range(6):
        write_clip(root / f"part{i % 2}" / f"clip{i}.mp4", frames=12, size=(64, 48))
    write_text_as_mp4(root / "part1" / "broken.mp4")
    return root


def _scan(*args: str, **popen: Any) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "dfstream", "scan", *args]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def test_interrupted_scan_resumes_and_reports_the_broken_video(
    archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    sources = [str(archive / "part0"), str(archive / "part1" / "*.mp4")]
    first = _scan(*sources, "--out", str(out), "--events", *SCAN_ARGS)
    try:
        assert wait_for(lambda: len(summaries(out)) >= 2, 120), first.communicate(timeout=5)
        first.send_signal(signal.SIGINT)
        _, err1 = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130, err1
    done_first = {s["video"] for s in summaries(out)}
    assert 2 <= len(done_first) < 7
    with (out / "results.jsonl").open("a") as fh:  # as if killed while writing a block
        fh.write('{"type":"score","video":"x"}\n{"type":"summ')

    second = _scan(*sources, str(archive / "part0" / "clip0.mp4"), "--out", str(out), "--events",
                   *SCAN_ARGS)  # fmt: skip
    stdout, stderr = second.communicate(timeout=180)
    assert second.returncode == 3, stderr  # the broken video failed twice
    assert f"7 video(s), {len(done_first)} already in" in stderr
    lines = results(out)
    videos = sorted(str(p) for p in archive.rglob("*.mp4"))
    done = [s["video"] for s in summaries(out)]
    broken = str(archive / "part1" / "broken.mp4")
    assert sorted(done) == [v for v in videos if v != broken], "each clip exactly once"
    assert len(done) == len(set(done))
    (failed,) = [line for line in lines if line["type"] == "failed"]
    assert failed["video"] == broken and failed["attempts"] == 2
    assert "not a readable video" in failed["reason"] and "broken.mp4" in stderr
    assert {line["video"] for line in lines if line["type"] == "score"} == set(done)
    assert not [line for line in lines if line.get("video") == "x"], "the partial block is gone"
    assert all(s["untrained"] and s["verdict"] and s["windows_scored"] > 0 for s in summaries(out))
    with (out / "verdicts.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["video"] for r in rows) == videos
    assert {r["status"] for r in rows if r["video"] != broken} == {"done"}
    report = json.loads((out / "report.json").read_text())
    assert (report["videos"], report["done"], report["failed"]) == (7, 6, 1)
    assert report["last_run"]["to_analyse"] == 7 - len(done_first)
    assert "videos" in stdout and "failed" in stdout  # the summary table


def _worker_pids(parent: int) -> list[int]:
    """The scan's worker processes (spawned children; not multiprocessing's resource tracker)."""
    children = {
        int(child)
        for task in Path(f"/proc/{parent}/task").iterdir()
        for child in (task / "children").read_text().split()
    }
    pids = []
    for child in sorted(children):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(child)
    return pids


def test_a_killed_local_worker_has_its_video_done_by_another(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*SCAN_ARGS[: SCAN_ARGS.index("--workers")], "--workers", "2"]
    scan = _scan(str(archive / "part0"), str(archive / "part1" / "clip*.mp4"), "--out", str(out),
                 *args, "--cpus-per-worker", "1")  # fmt: skip
    try:
        assert wait_for(lambda: len(summaries(out)) >= 1 and len(_worker_pids(scan.pid)) == 2, 120)
        victim = _worker_pids(scan.pid)[0]
        os.kill(victim, signal.SIGKILL)
        _, stderr = scan.communicate(timeout=180)
    finally:
        scan.kill()
    assert scan.returncode == 0, stderr
    done = [s["video"] for s in summaries(out)]
    assert sorted(done) == sorted(str(p) for p in archive.rglob("clip*.mp4"))
    assert len(done) == len(set(done))
    report = json.loads((out / "report.json").read_text())
    assert any("worker process died" in r for r in report["last_run"]["lost_workers"]), stderr


@pytest.mark.parametrize("command", [["scan", "{clip}"], ["{clip}", "--untrained"]])
def test_unreachable_ray_address_is_one_line_and_exit_3(
    command: list[str], clip_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="pip install 'dfstream[ray]'")
    address = f"127.0.0.1:{free_port()}"
    args = [part.format(clip=clip_path) for part in command]
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "dfstream", *args, "--ray", address, "--no-dashboard"]
        if "scan" not in args
        else [sys.executable, "-m", "dfstream", *args, "--ray", address, "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert run.stderr.strip().count("\n") == 0, run.stderr
    assert f"--ray {address}: no Ray cluster answers there" in run.stderr
    assert time.monotonic() - started < 30


def test_ray_not_installed_is_one_line_and_exit_3(clip_path: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None; from dfstream.cli import main; "
        f"sys.exit(main(['scan', {str(clip_path)!r}, '--ray', '--out', {str(tmp_path)!r}]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 3, run.stderr
    assert run.stderr.strip() == (
        "dfstream: error: --ray: Ray is not installed here (ray missing): "
        "pip install 'dfstream[ray]'"
    )


def test_overlay_is_refused_with_ray(clip_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="pip install 'dfstream[ray]'")
    run = subprocess.run(
        [sys.executable, "-m", "dfstream", str(clip_path), "--untrained", "--ray",
         f"127.0.0.1:{free_port()}", "--overlay", str(tmp_path / "o.mp4")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "--overlay needs the frames" in run.stderr
