"""The ``dfstream`` command end to end: real clips, real model, exit codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dfstream.cli import main
from dfstream.model import DeepfakeNet, compat_spec
from tests.media import (
    write_audio_only,
    write_clip,
    write_empty,
    write_text_as_mp4,
    write_truncated,
)

REPO = Path(__file__).resolve().parents[1]


def _events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("dfstream: error:")]


def test_real_video_yunet_end_to_end(real_video: Path, yunet_model: Path, tmp_path: Path) -> None:
    """The acceptance command, literally, in a subprocess."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [
            sys.executable, "-m", "dfstream", str(real_video), "--untrained",
            "--detector", "yunet", "--detector-model", str(yunet_model),
            "--jsonl", str(out), "--no-dashboard",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    events = _events(out)
    scores = [e for e in events if e["type"] == "score"]
    (summary,) = [e for e in events if e["type"] == "summary"]
    assert scores and all(0.0 <= e["score"] <= 1.0 for e in scores)
    assert all(e["untrained"] is True for e in events if "untrained" in e)
    times = [e["media_time"] for e in scores]
    assert (max(times) - min(times)) / summary["media_duration_s"] >= 0.9
    assert summary["frames_decoded"] == 751
    assert summary["crops_embedded"] >= 0.95 * 751  # one face, found in (nearly) every frame
    assert summary["verdict"] in {"REAL", "FAKE", "UNCERTAIN"}


@pytest.mark.parametrize(
    "detector_args",
    [
        pytest.param(["--detector", "haar"], id="haar"),
        pytest.param(["--detector", "none"], id="none"),
        pytest.param(["--detector", "haar"], id="haar-every-frame", marks=pytest.mark.slow),
        pytest.param(["--detector", "none"], id="none-every-frame", marks=pytest.mark.slow),
    ],
)
def test_real_video_other_detectors(
    real_video: Path, tmp_path: Path, detector_args: list[str], request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "out.jsonl"
    # The default suite analyses 10 frames/s with 10-frame windows to stay fast; the slow
    # variants run the acceptance command as written (every frame, default window).
    sampling = (
        [] if "every-frame" in request.node.name else ["--analysis-fps", "10", "--window", "10"]
    )
    args = [str(real_video), "--untrained", *detector_args, *sampling, "--no-dashboard"]
    code = main([*args, "--jsonl", str(out)])
    assert code == 0
    events = _events(out)
    scores = [e for e in events if e["type"] == "score"]
    (summary,) = [e for e in events if e["type"] == "summary"]
    assert scores and all(0.0 <= e["score"] <= 1.0 for e in scores)
    times = [e["media_time"] for e in scores]
    assert (max(times) - min(times)) / summary["media_duration_s"] >= 0.9


def test_features_are_reused_not_recomputed(
    real_video: Path, yunet_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    code = main([
        str(real_video), "--untrained", "--detector", "yunet", "--detector-model", str(yunet_model),
        "--window", "20", "--stride", "1", "--max-seconds", "6", "--jsonl", str(out),
        "--no-dashboard",
    ])  # fmt: skip
    assert code == 0
    (summary,) = [e for e in _events(out) if e["type"] == "summary"]
    assert summary["frames_decoded"] == 150
    crops = summary["crops_embedded"]
    assert crops >= 0.95 * summary["frames_analyzed"]  # one crop per frame with the one face
    long_tracks = [t for t in summary["track_details"] if t["windows"] > 0]
    assert summary["windows_scored"] == crops - 19 * len(long_tracks)


def test_same_seed_same_scores_other_seed_differs(clip_path: Path, tmp_path: Path) -> None:
    def scores(seed: int, name: str) -> list[float]:
        out = tmp_path / name
        args = [str(clip_path), "--untrained", "--seed", str(seed), "--detector", "none"]
        assert main([*args, "--window", "5", "--jsonl", str(out), "--no-dashboard"]) == 0
        return [e["score"] for e in _events(out) if e["type"] == "score"]

    a, b, c = scores(0, "a.jsonl"), scores(0, "b.jsonl"), scores(1, "c.jsonl")
    assert a and a == b
    assert a != c


def test_jsonl_to_stdout_is_pure_json(clip_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = main([str(clip_path), "--untrained", "--detector", "none", "--window", "5",
                 "--jsonl", "-", "--no-dashboard"])  # fmt: skip
    assert code == 0
    out, err = capfd.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["type"] for e in events} >= {"status", "score", "summary"}
    assert "dfstream summary" in err


def test_fail_on_fake(clip_path: Path) -> None:
    # An untrained model scores about 0.5: a threshold of 0.1 makes that FAKE.
    base = [str(clip_path), "--untrained", "--detector", "none", "--window", "5",
            "--threshold", "0.1", "--no-dashboard"]  # fmt: skip
    assert main(base) == 0
    assert main([*base, "--fail-on-fake"]) == 1


def test_video_without_faces_is_no_faces_not_an_error(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "noise.mp4", frames=20, pattern="noise")
    out = tmp_path / "out.jsonl"
    code = main(
        [str(clip), "--untrained", "--detector", "haar", "--jsonl", str(out), "--no-dashboard"]
    )
    assert code == 0
    (summary,) = [e for e in _events(out) if e["type"] == "summary"]
    assert summary["verdict"] == "NO_FACES"
    assert summary["error"] is None and summary["frames_decoded"] == 20


def _bad_weights_wrong_shape(tmp: Path) -> Path:
    state = DeepfakeNet(compat_spec()).state_dict()
    state["lstm.weight_ih_l0"] = torch.zeros(4, 4)
    path = tmp / "model_1_acc_20_frames.pt"
    torch.save(state, path)
    return path


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _bad_weights_pickle(tmp: Path) -> Path:
    path = tmp / "evil.pt"
    torch.save({"state_dict": _Evil(tmp / "pwned")}, path)
    return path


SOURCE_CASES = {
    "missing path": (lambda t: t / "nope.mp4", "no such file"),
    "folder without videos": (lambda t: (t / "docs").mkdir() or t / "docs", "no video"),
    "text named .mp4": (lambda t: write_text_as_mp4(t / "notes.mp4"), "not a readable video"),
    "mp4 cut in half": (
        lambda t: write_truncated(write_clip(t / "full.mp4", frames=30), t / "half.mp4"),
        "half.mp4",
    ),
    "zero-byte file": (lambda t: write_empty(t / "empty.mp4"), "empty"),
    "audio only": (lambda t: write_audio_only(t / "tone.m4a"), "no video stream"),
}


@pytest.mark.parametrize("case", list(SOURCE_CASES))
def test_bad_source_is_one_line_exit_3(
    case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    make, expected = SOURCE_CASES[case]
    path = make(tmp_path)
    code = main([str(path), "--untrained", "--detector", "none", "--no-dashboard"])
    out, err = capfd.readouterr()
    assert code == 3
    assert "Traceback" not in out + err
    (line,) = _error_lines(err)
    assert expected in line.lower() or expected in line


def test_one_bad_source_others_complete(
    clip_path: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    bad = write_text_as_mp4(tmp_path / "bad.mp4")
    code = main([str(bad), str(clip_path), "--untrained", "--detector", "none", "--window", "5",
                 "--jsonl", str(out), "--no-dashboard"])  # fmt: skip
    _, err = capfd.readouterr()
    assert code == 3
    assert len(_error_lines(err)) == 1 and "bad.mp4" in err
    summaries = {e["stream"]: e for e in _events(out) if e["type"] == "summary"}
    assert summaries[str(bad)]["error"]
    assert summaries[str(clip_path)]["error"] is None
    assert summaries[str(clip_path)]["windows_scored"] > 0


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        pytest.param([], 4, "--untrained", id="no weights"),
        pytest.param(["--untrained", "--stride", "0"], 2, "--stride", id="bad value"),
        pytest.param(["--untrained", "--frobnicate"], 2, "unrecognized", id="unknown flag"),
        pytest.param(["--untrained", "--device", "cuda"], 5, "cuda", id="no cuda"),
        pytest.param(
            ["--untrained", "--jsonl", "/proc/forbidden/x.jsonl"], 6, "--jsonl", id="jsonl"
        ),
    ],
)
def test_usage_and_setup_errors(
    clip_path: Path,
    args: list[str],
    code: int,
    expected: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    # "no weights" means no model at all: the shipped default is taken away
    monkeypatch.setenv("DFSTREAM_DEFAULT_MODEL", str(tmp_path / "absent.pt"))
    assert main([str(clip_path), *args, "--no-dashboard"]) == code
    _, err = capfd.readouterr()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and expected in lines[0]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(_bad_weights_wrong_shape, "'lstm.weight_ih_l0' has shape", id="wrong shape"),
        pytest.param(_bad_weights_pickle, "refused to load", id="code-running pickle"),
    ],
)
def test_bad_weights_exit_4(
    clip_path: Path,
    tmp_path: Path,
    make,
    expected: str,
    capfd: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    weights = make(tmp_path)
    assert main([str(clip_path), "--weights", str(weights), "--no-dashboard"]) == 4
    _, err = capfd.readouterr()
    (line,) = _error_lines(err)
    assert expected in line
    assert not (tmp_path / "pwned").exists()


def test_debug_shows_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No weights and no default model (the shipped one may be installed: point past it).
    monkeypatch.setenv("DFSTREAM_DEFAULT_MODEL", str(tmp_path / "absent.pt"))
    assert main([str(tmp_path / "x.mp4"), "--debug", "--no-dashboard"]) == 4
    _, err = capfd.readouterr()
    assert "Traceback" in err


def test_help_lists_exit_codes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dfstream", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "exit codes" in proc.stdout and "--fail-on-fake" in proc.stdout


def test_help_explains_every_exit_code_once() -> None:
    from dfstream.errors import ExitCode

    proc = subprocess.run(
        [sys.executable, "-m", "dfstream", "--help"], cwd=REPO, capture_output=True, text=True
    )
    lines = [line.split(None, 1) for line in proc.stdout.split("exit codes:")[1].splitlines()]
    listed = {int(p[0]): p[1] for p in lines if len(p) == 2 and p[0].isdigit()}
    assert listed == {int(code): code.meaning for code in ExitCode}
    assert len(set(listed.values())) == len(listed)
