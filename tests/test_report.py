"""The JSON report and its plot, from events fed straight into the sink; and a killed overlay
encoder still leaving a playable file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import cv2
import pytest

from dfstream.errors import OutputError
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.sinks.report import ReportSink, plot_path
from dfstream.types import (
    ScoreEvent,
    StatusEvent,
    StreamSummary,
    TrackSummary,
    Verdict,
    VerdictEvent,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _score(stream: str, track: int, frame: int, score: float, latency: float) -> ScoreEvent:
    return ScoreEvent(
        stream_id=stream, track_id=track, frame_index=frame, media_time=frame / 25,
        score=score, smoothed=score, box=(1.0, 1.0, 9.0, 9.0), latency_ms=latency,
        wall_time=0.0, untrained=False,
    )  # fmt: skip


def _summary(stream: str, verdict: Verdict, score: float | None) -> StreamSummary:
    return StreamSummary(
        stream_id=stream, source=stream, name=stream, verdict=verdict, score=score,
        frames_decoded=100, frames_analyzed=100, crops_embedded=80, windows_scored=12,
        tracks=(TrackSummary(0, 10, 0.8, 0.9, 0.0, 3.0),), duration_s=2.0,
        media_duration_s=4.0, untrained=False,
    )  # fmt: skip


def test_plot_path_sits_beside_the_report() -> None:
    assert plot_path(Path("out/r.json")) == Path("out/r.png")
    assert plot_path(Path("out/report")) == Path("out/report.png")


def test_report_json_and_plot(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    sink = ReportSink.open(
        path, header={"backend": "torch on cpu", "untrained": False, "settings": {"stride": 5}},
        scoring=ScoringSettings(threshold=0.5),
    )  # fmt: skip
    stream = "rtsp://user:secret@cam/1"
    sink.handle(StatusEvent(stream, "connected", "", 0.0))
    for i in range(10):
        sink.handle(_score(stream, 0, 20 + 5 * i, 0.8 + 0.01 * i, latency=100.0 + i))
    sink.handle(_score(stream, 1, 30, 0.1, latency=50.0))
    sink.handle(VerdictEvent(stream, Verdict.FAKE, 0.8, 0.8, 0.0, False))
    sink.handle(_summary(stream, Verdict.FAKE, 0.845))
    sink.handle(_summary("empty.mp4", Verdict.NO_FACES, None))
    sink.close()
    report = json.loads(path.read_text())
    assert report["backend"] == "torch on cpu" and report["settings"] == {"stride": 5}
    first, empty = report["sources"]
    assert "secret" not in json.dumps(first) and first["source"] == "rtsp://***@cam/1"
    assert first["verdict"] == "FAKE" and first["score"] == 0.845
    assert first["verdict_changes"][0]["verdict"] == "FAKE"
    assert first["status"][0]["state"] == "connected"
    assert first["timings"]["realtime_factor"] == 2.0
    assert first["timings"]["latency_ms"]["p50"] == pytest.approx(104.0)
    face, blip = first["tracks"]
    assert face["series"]["frame_index"] == [20 + 5 * i for i in range(10)]
    assert face["verdict"] == "FAKE" and face["in_final_verdict"] is True
    assert blip["windows"] == 1 and blip["in_final_verdict"] is False  # too short to count
    assert empty["tracks"] == [] and empty["verdict"] == "NO_FACES"
    plot = cv2.imread(str(tmp_path / "sub" / "report.png"))
    assert plot is not None and plot.shape[0] > 300  # two panels


def test_report_path_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write there"):
        ReportSink.open(blocker / "r.json", header={}, scoring=ScoringSettings())
    with pytest.raises(OutputError, match="is a folder"):
        ReportSink.open(tmp_path, header={}, scoring=ScoringSettings())


def test_aborted_report_leaves_no_files(tmp_path: Path) -> None:
    sink = ReportSink.open(tmp_path / "r.json", header={}, scoring=ScoringSettings())
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_killed_encoder_leaves_a_playable_overlay(tmp_path: Path) -> None:
    """The overlay is a fragmented MP4: a process killed without closing it (SIGKILL, power
    loss) still leaves every complete 2-second fragment playable."""
    out = tmp_path / "killed.mp4"
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from pathlib import Path
        from dfstream.sinks.overlay_encode import VideoEncoder
        encoder = VideoEncoder.open(Path({str(out)!r}), source="live://none")
        encoder.start(160, 120, None, 25.0)
        for i in range(130):
            image = np.full((120, 160, 3), (i * 2) % 256, dtype=np.uint8)
            encoder.write(image, i / 25)
        os._exit(0)  # no close(): like a kill
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, check=True, timeout=120)
    with av.open(str(out)) as container:
        frames = [f.pts or 0 for f in container.decode(video=0)]
    assert 50 <= len(frames) < 130  # whole fragments up to the last keyframe
    assert frames == [round(i * 90000 / 25) for i in range(len(frames))]
