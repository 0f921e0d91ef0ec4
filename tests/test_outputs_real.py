"""Overlay and report on a real FaceForensics++ video (519.mp4, 751 frames, one face), with
the real ResNeXt50+LSTM untrained and YuNet; plus Ctrl-C and unwritable output paths.

The full run happens once per module (analysis at 5 frames/s keeps it short; the overlay still
gets every decoded frame) and its outputs are shared by the tests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from dfstream.api import Analysis
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.errors import OutputError
from dfstream.sinks.overlay_draw import strip_height, watermark_size

REPO_ROOT = Path(__file__).resolve().parents[1]
INPUT_FRAMES = 751


def _cli(video: Path, yunet: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "dfstream", str(video), "--untrained", "--detector", "yunet",
        "--detector-model", str(yunet), "--analysis-fps", "5", "--stride", "5",
        "--no-dashboard", *extra,
    ]  # fmt: skip


def _duration_s(stream: av.VideoStream) -> float:
    assert stream.duration is not None and stream.time_base is not None
    return float(stream.duration * stream.time_base)


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real_run(
    real_video: Path, yunet_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("real")
    paths = {"overlay": tmp / "overlay.mp4", "report": tmp / "report.json"}
    paths["jsonl"] = tmp / "events.jsonl"
    result = subprocess.run(
        _cli(real_video, yunet_model, "--overlay", str(paths["overlay"]),
             "--report", str(paths["report"]), "--jsonl", str(paths["jsonl"])),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return paths


def test_overlay_is_h264_with_every_frame_and_the_same_duration(
    real_run: dict[str, Path], real_video: Path
) -> None:
    with av.open(str(real_video)) as source:
        src_times = [f.time for f in source.decode(video=0)]
        src_duration = _duration_s(source.streams.video[0])
    with av.open(str(real_run["overlay"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        times = [f.time for f in container.decode(stream)]
        duration = _duration_s(stream)
    assert len(times) == INPUT_FRAMES == len(src_times)
    assert None not in times and times == pytest.approx(src_times)
    assert abs(duration - src_duration) <= 1 / 25  # the same duration, within one frame


def test_overlay_draws_the_tracked_box_and_leaves_the_rest(
    real_run: dict[str, Path], real_video: Path
) -> None:
    scores = {e["frame_index"]: e for e in _events(real_run["jsonl"]) if e["type"] == "score"}
    assert len(scores) >= 10, "expected windows to be scored"
    checked = 0
    with av.open(str(real_video)) as source, av.open(str(real_run["overlay"])) as overlay:
        pairs = zip(source.decode(video=0), overlay.decode(video=0), strict=True)
        for index, (a, b) in enumerate(pairs):
            if index not in scores or checked >= 8:
                continue
            checked += 1
            before = a.to_ndarray(format="bgr24").astype(np.int16)
            diff = np.abs(before - b.to_ndarray(format="bgr24")).max(axis=2)
            height = diff.shape[0]
            x1, y1, x2, y2 = (round(v) for v in scores[index]["box"])
            ring = np.zeros_like(diff, dtype=bool)
            ring[y1 - 1 : y2 + 2, x1 - 1 : x2 + 2] = True
            ring[y1 + 2 : y2 - 1, x1 + 2 : x2 - 1] = False
            far = np.ones_like(diff, dtype=bool)
            far[max(0, y1 - 60) : y2 + 60, max(0, x1 - 60) : x2 + 60] = False  # box and label
            wm_w, wm_h = watermark_size(diff.shape)
            far[: wm_h + 4, : wm_w + 4] = False  # UNTRAINED watermark
            far[height - strip_height(height) - 4 :] = False  # timeline strip
            assert diff[ring].mean() > 60, f"frame {index}: no box drawn on the tracked face"
            assert diff[far].mean() < 8, f"frame {index}: pixels far from the box changed"
            assert np.percentile(diff[far], 99) < 40
    assert checked == 8


def test_report_has_series_verdicts_timings_settings_and_a_plot(real_run: dict[str, Path]) -> None:
    report = json.loads(real_run["report"].read_text())
    events = _events(real_run["jsonl"])
    assert report["format"] == "dfstream-report" and report["untrained"] is True
    assert report["settings"]["analysis_fps"] == 5 and report["settings"]["detector"] == "yunet"
    (source,) = report["sources"]
    summary = next(e for e in events if e["type"] == "summary")
    assert source["verdict"] == summary["verdict"]
    assert source["timings"]["frames_decoded"] == INPUT_FRAMES
    assert source["timings"]["latency_ms"]["p95"] >= source["timings"]["latency_ms"]["p50"]
    windows = sum(len(t["series"]["score"]) for t in source["tracks"])
    assert windows == summary["windows_scored"] == sum(e["type"] == "score" for e in events)
    track = source["tracks"][0]
    assert len(track["series"]["media_time"]) == len(track["series"]["smoothed"])
    plot = cv2.imread(str(real_run["report"].with_suffix(".png")))
    assert plot is not None and plot.shape[0] > 100 and plot.shape[1] > 300


def test_ctrl_c_halfway_leaves_a_playable_overlay(
    real_video: Path, yunet_model: Path, tmp_path: Path
) -> None:
    overlay, jsonl = tmp_path / "partial.mp4", tmp_path / "events.jsonl"
    process = subprocess.Popen(
        _cli(real_video, yunet_model, "--overlay", str(overlay), "--jsonl", str(jsonl)),
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if jsonl.exists() and sum(e["type"] == "score" for e in _events(jsonl)) >= 3:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    events = _events(jsonl)
    summary = next(e for e in events if e["type"] == "summary")
    last_scored = max(e["frame_index"] for e in events if e["type"] == "score")
    with av.open(str(overlay)) as container:
        pts = [f.pts for f in container.decode(video=0)]
    assert last_scored < len(pts) <= summary["frames_decoded"] < INPUT_FRAMES
    assert pts == [i * 512 for i in range(len(pts))]  # frames 0..n-1 with the input's times


def test_unwritable_overlay_fails_before_decoding(
    real_video: Path, yunet_model: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    jsonl = tmp_path / "events.jsonl"
    result = subprocess.run(
        _cli(real_video, yunet_model, "--overlay", str(blocker / "o.mp4"), "--jsonl", str(jsonl)),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("dfstream: error: --overlay")
    assert "Traceback" not in result.stderr
    assert jsonl.read_text() == ""  # not even a "connected" status: nothing was decoded


def test_unwritable_report_or_overlay_over_its_input_fail_in_prepare(
    real_video: Path, tmp_path: Path
) -> None:
    (tmp_path / "x").write_text("a file where the report's folder should be")
    config = AnalysisConfig(sources=(str(real_video),), untrained=True, detector="none")
    bad_report = OutputConfig(report=tmp_path / "x" / "r.json")
    with pytest.raises(OutputError, match="--report"):
        Analysis(config, outputs=bad_report)
    copy = tmp_path / "in.mp4"
    copy.write_bytes(real_video.read_bytes())
    over_input = OutputConfig(overlay=copy, report=tmp_path / "r.json")
    with pytest.raises(OutputError, match="is the input itself"):
        Analysis(replace(config, sources=(str(copy),)), outputs=over_input)
    assert copy.read_bytes() == real_video.read_bytes()
    assert not (tmp_path / "r.json").exists()  # the report opened first was removed again
