"""The CPU account: stage clocks bill only their own thread's work, the census sees named
threads and their pools, and on a real (synthetic-clip) run every stage is present and the
parts add up to the process's CPU within 15%."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from dfstream.api import Analysis
from dfstream.config import AnalysisConfig
from dfstream.cputime import (
    INFERENCE_THREAD,
    STAGES,
    StageClock,
    ThreadCensus,
    cpu_breakdown,
    name_thread,
    pool_stage,
    read_threads,
)
from dfstream.tools.benchkit import ScoreCollector, bench_model
from dfstream.tools.synth import write_synthetic_clip

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_stage_clock_bills_work_and_not_waits() -> None:
    clock = StageClock()
    clock.skip()
    _spin(0.05)
    clock.lap("embed")
    time.sleep(0.1)
    clock.skip()
    _spin(0.02)
    clock.lap("head")
    assert 0.05 <= clock.seconds["embed"] < 0.08
    assert 0.02 <= clock.seconds["head"] < 0.05  # the sleep was skipped, not billed


def test_a_first_lap_without_skip_only_starts_the_count() -> None:
    clock = StageClock()
    _spin(0.03)  # before the owner's first call: not billed
    clock.lap("decode")
    assert clock.seconds.get("decode", 0.0) == 0.0


def test_pool_threads_belong_to_the_stage_that_starts_them() -> None:
    assert pool_stage("av:h264:df0") == "decode"
    assert pool_stage(INFERENCE_THREAD) == "embed"
    assert pool_stage("dfs-analyze") == "detect"
    assert pool_stage("python3") is None


@linux_only
def test_census_sees_a_named_thread_and_the_breakdown_bills_its_pool() -> None:
    census = ThreadCensus()
    census.start()
    earlier = set(census.threads())  # e.g. ONNX Runtime's pools left by earlier tests
    owner_clock = StageClock(census)
    ids: list[int] = []
    spun, release = threading.Event(), threading.Event()

    def pool_worker() -> None:  # inherits its starter's OS name, as OpenMP's workers do
        _spin(0.04)
        spun.set()
        release.wait(timeout=5)

    def owner() -> None:
        name_thread(INFERENCE_THREAD)
        ids.append(threading.get_native_id())
        owner_clock.skip()
        _spin(0.03)
        owner_clock.lap("embed")
        helper = threading.Thread(target=pool_worker)
        helper.start()
        spun.wait(timeout=5)
        owner_clock.poll()  # the helper is about to end: read it now, as a decoder's owner does
        release.set()
        helper.join(timeout=5)
        owner_clock.skip()
        owner_clock.poll()  # the owner's own last reading before it ends

    worker = threading.Thread(target=owner)
    worker.start()
    worker.join(timeout=5)
    census.stop()
    names = [name for tid, (name, _cpu) in census.threads().items() if tid not in earlier]
    assert names.count(INFERENCE_THREAD) == 2  # the owner and the helper it started
    account = cpu_breakdown([owner_clock], census, owners=ids, frames=10)
    assert account["own_threads_ms"]["embed"] == pytest.approx(3.0, abs=1.0)  # 30 ms / 10
    assert account["pools_ms"]["embed"] == pytest.approx(4.0, abs=1.5)  # the helper's 40 ms
    assert account["stages_ms"]["embed"] == pytest.approx(7.0, abs=2.0)
    assert set(account["stages_ms"]) == set(STAGES)


@linux_only
def test_read_threads_lists_this_thread() -> None:
    threads = read_threads()
    assert str(threading.get_native_id()) in threads
    assert all(cpu >= 0 for _name, cpu in threads.values())


@linux_only
def test_a_synthetic_run_accounts_for_its_cpu_within_15_percent(tmp_path: Path) -> None:
    clip = write_synthetic_clip(tmp_path / "clip.mp4", seconds=4.0, size=(320, 240), fps=25)
    model = bench_model("tiny", window=8)
    run = Analysis(
        AnalysisConfig(sources=(str(clip),), untrained=True, detector="none", window=8, stride=2),
        sinks=[ScoreCollector()],
        model=model,
    )
    run.run()
    account = run.pipeline.cpu_account()
    assert account["frames"] == 100
    assert set(account["stages_ms"]) == set(STAGES)
    for stage in ("decode", "convert", "crop", "normalise", "embed", "head", "scoring"):
        assert account["stages_ms"][stage] > 0, stage
    assert account["process_ms"] > 0
    explained = sum(account["stages_ms"].values())
    # The parts add up to the whole: what no stage explains is under 15% of the process's CPU.
    assert account["unexplained_fraction"] < 0.15, account
    assert explained + account["unexplained_ms"] == pytest.approx(account["process_ms"], rel=0.15)
    # Every thread the run started is named, and FFmpeg's decoder threads are seen.
    names = set(account["threads_ms"])
    assert {"dfs-read", "dfs-analyze", INFERENCE_THREAD} <= names
    assert any(name.startswith("av:") for name in names)
    pools = account["pools"]
    assert pools["torch_intra_op"] >= 1 and pools["opencv"] >= 1 and pools["cpus"] >= 1
    assert pools["ffmpeg_decoder"] is not None and pools["ffmpeg_decoder"] >= 1


@linux_only
def test_steady_malloc_fixes_glibcs_threshold_unless_the_user_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess

    code = "from dfstream.memory import steady_malloc; print(steady_malloc(), steady_malloc())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]  # set once, then remembered
    env = {"MALLOC_MMAP_THRESHOLD_": "65536", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["False", "False"]  # the user's own setting stays
