"""Benchmarks: the naive reference scores exactly like dfstream, and the benchmark commands
write the figures they promise. Timings are only checked for being present and positive."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.naive import compare_scores, run_naive
from dfstream.api import Analysis, pipeline_settings
from dfstream.config import AnalysisConfig
from dfstream.faces import WholeFrameDetector
from dfstream.sources import open_source
from dfstream.tools.benchkit import PacedSource, ScoreCollector, bench_model, stage_metrics

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_naive_reference_scores_equal_dfstream(clip_path: Path) -> None:
    window, stride = 4, 1
    loaded = bench_model("resnext50", window=window)
    config = AnalysisConfig(
        sources=(str(clip_path),), untrained=True, detector="none", window=window, stride=stride
    )
    collector = ScoreCollector()
    run = Analysis(config, sinks=[collector], model=loaded)
    (summary,) = run.run().summaries
    naive = run_naive(
        clip_path,
        backend=run.backend,
        detector=WholeFrameDetector(),
        analyzer=pipeline_settings(config, loaded).analyzer,
        window=window,
        stride=stride,
    )
    ours = {(t, f): s for (_sid, t, f), s in collector.by_window().items()}
    diff = compare_scores(naive.scores, ours)
    assert summary.frames_decoded == naive.frames == 30
    assert diff["windows_compared"] == 30 - window + 1
    assert diff["windows_only_naive"] == diff["windows_only_dfstream"] == 0
    assert diff["max_abs_score_diff"] <= 1e-4
    # The point of the design: dfstream embeds each crop once, the naive way T times per window.
    assert summary.crops_embedded == 30
    assert naive.crops_embedded == window * naive.windows
    metrics = stage_metrics(run, 1.0, collector)
    assert metrics["embed_crops_per_s"] > 0 and metrics["head_windows_per_s"] > 0
    assert metrics["decode_fps"] > 0


def test_compare_scores_reports_mismatches() -> None:
    a = {(0, 3): 0.5, (0, 4): 0.6}
    b = {(0, 3): 0.5002, (0, 5): 0.1}
    diff = compare_scores(a, b)
    assert diff["windows_compared"] == 1
    assert diff["windows_only_naive"] == 1 and diff["windows_only_dfstream"] == 1
    assert diff["max_abs_score_diff"] == pytest.approx(2e-4)


def test_compare_writes_json_and_markdown(clip_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    done = _run(
        ["-m", "benchmarks.compare", str(clip_path), "--window", "5", "--stride", "2",
         "--model", "tiny", "--bare-seconds", "0.3", "--json", str(out)]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for key in ("speedup", "efficiency", "efficiency_cpu", "cpu_speedup",
                "dfstream_crops_per_s", "naive_crops_per_s"):  # fmt: skip
        assert isinstance(result[key], float) and result[key] > 0, key
    assert 0 <= result["max_abs_score_diff"] <= 1e-4
    assert result["scores_match"] is True
    assert result["windows_compared"] == result["windows"] == (30 - 5) // 2 + 1
    assert result["naive_crops"] == 5 * result["windows"]
    assert len(result["dfstream_wall_s_runs"]) == 2  # before and after the naive run
    assert result["machine"]["torch"]
    assert "| wall time s |" in out.with_suffix(".md").read_text()


def test_bench_quick_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = _run(["-m", "dfstream", "bench", "--quick", "--json", str(out)], timeout=170)
    assert done.returncode == 0, done.stderr
    assert "end to end" in done.stdout
    result = json.loads(out.read_text())
    for key in ("decode_fps", "embed_crops_per_s", "head_windows_per_s", "frames_per_s",
                "crops_per_s", "cpu_percent", "peak_rss_mb", "bare_decode_fps",
                "bare_backend_crops_per_s", "efficiency", "efficiency_cpu"):  # fmt: skip
        assert result[key] > 0, key
    assert result["frames"] == result["crops"] == 75  # 3 s at 25 fps, whole frame = one face
    assert set(result["latency_ms"]) == {"p50", "p95", "p99"}
    assert result["settings"]["model"] == "resnext50"
    assert result["machine"]["av"] and result["machine"]["cpu_count"]
    cpu = result["cpu"]  # the CPU account: stages, the rest, threads and pools
    assert cpu["process_ms"] > 0 and cpu["stages_ms"]["embed"] > 0
    assert 0 <= cpu["unexplained_fraction"] < 1
    assert {"torch_intra_op", "torch_inter_op", "opencv", "ffmpeg_decoder"} <= set(cpu["pools"])
    assert "unexplained" in done.stdout and "ms/frame by OS name" in done.stdout


def test_bench_measures_the_default_model_with_its_own_window(tmp_path: Path) -> None:
    from dfstream.model import native_spec, save_checkpoint, untrained_model

    weights = tmp_path / "default.pt"
    spec = native_spec(backbone="tiny", window=3, input_size=32)
    save_checkpoint(weights, untrained_model(spec).model, info={"name": "bench-default"}, half=True)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "dfstream", "bench", "--quick", "--model", "default",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=170,
        env={**os.environ, "DFSTREAM_DEFAULT_MODEL": str(weights)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = json.loads(out.read_text())["settings"]
    assert (settings["model"], settings["window"]) == ("bench-default", 3)


def test_bench_rejects_a_missing_video(tmp_path: Path) -> None:
    done = _run(["-m", "dfstream", "bench", "--video", str(tmp_path / "nope.mp4")])
    assert done.returncode == 2
    assert "nope.mp4" in done.stderr and "Traceback" not in done.stderr


def test_paced_source_plays_in_real_time(clip_path: Path) -> None:
    started = time.perf_counter()
    with PacedSource(open_source(str(clip_path))) as source:
        frames = list(source.frames())
    elapsed = time.perf_counter() - started
    assert len(frames) == 30
    assert elapsed >= 29 / 25 - 0.05  # the last frame is due at 1.16 s
    gaps = [b.wall_time - a.wall_time for a, b in itertools.pairwise(frames)]
    assert all(abs(g - 1 / 25) < 1e-3 for g in gaps)


def test_scaling_writes_table_and_plot(clip_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    done = _run(
        ["-m", "benchmarks.scaling", str(clip_path), "--counts", "1", "2", "--seconds", "0.6",
         "--model", "tiny", "--window", "4", "--json", str(out)]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["streams"] for r in rows] == [1, 2]
    assert [r["frames"] for r in rows] == [15, 30]
    assert all(r["latency_ms"]["p50"] > 0 for r in rows)
    assert out.with_suffix(".png").stat().st_size > 1000


def test_compare_on_a_real_face_video_with_yunet(
    real_video: Path, yunet_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "real.json"
    done = _run(
        ["-m", "benchmarks.compare", str(real_video), "--max-seconds", "2", "--window", "4",
         "--stride", "2", "--model", "tiny", "--detector-model", str(yunet_model),
         "--bare-seconds", "0.3", "--json", str(out)]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["settings"]["detector"] == "yunet"
    assert result["scores_match"] and result["windows_compared"] > 10


def test_live_streams_benchmark_reports_every_stream(tmp_path: Path) -> None:
    from benchmarks.live_streams import CLIPS, SHARED
    from tests.real_servers import gst_rtsp_available

    if not gst_rtsp_available() or not (SHARED / CLIPS[0]).is_file():
        pytest.skip("needs gst-rtsp-server (see .ci/run) and ../shared")
    out = tmp_path / "live.json"
    done = _run(
        ["-m", "benchmarks.live_streams", "--streams", "1", "--seconds", "12", "--warmup", "5",
         "--sample", "1", "--json", str(out)],
        timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed on a loaded machine
    result = json.loads(out.read_text())
    (stream,) = result["per_stream"]
    assert stream["frames_decoded"] > 100  # 30 fps camera, real time
    assert 0 < stream["analysed_fps"] <= 11  # the live default samples ~10 frames/s
    assert result["model"] == "dfstream-lite0-v2"
    assert set(result["met"]) == {
        "no_stream_starved",
        "latency_p95_under_500ms",
        "rss_growth_under_10pct",
    }
    assert result["cpu"]["stages_ms"]["decode"] > 0
    assert out.with_suffix(".md").is_file()
