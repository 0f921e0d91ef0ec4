"""RTSP start-up and steady-state latency, before and after issue 13, against gst-rtsp-server.

``python -m benchmarks.rtsp_latency [--rounds 3] [--seconds 12]`` starts GStreamer's RTSP
server (``tests/gst_rtsp_server.py --mode file``: each client gets 519.mp4 from its start,
``qtdemux ! h264parse ! rtph264pay``, as in the issue) and runs dfstream's pipeline on it with
YuNet and the benchmarks' tiny model (so that the CNN does not hide the source's share), in
two variants, interleaved round by round:

- ``before``: the RTSP input of main before issue 13 (``fflags=nobuffer``) and no frame gate
  (every decoded frame is analysed; the gate only counts what it would have dropped);
- ``after``: the current input (no ``nobuffer``) and the ``FrameGate``.

Per run: seconds from ``add_source`` to the first analysed frame and to the first score,
decode-to-score latency p50/p95 of the windows, frames flagged corrupt that reached the
analyser, and the share of analysed frames with a face. Prints a table (medians over the
rounds) and writes ``benchmarks/results/rtsp_latency.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dfstream import AnalysisConfig
from dfstream.api import Analysis
from dfstream.sinks.base import Sink
from dfstream.sources import LiveSettings, LiveSource, SourceSpec
from dfstream.sources.ffmpeg import connect, ffmpeg_input
from dfstream.sources.integrity import PassThroughGate
from dfstream.tools.benchkit import bench_model, machine_info, percentiles
from dfstream.types import Event, Frame, ScoreEvent, TrackBoxes
from tests.real_servers import GstRtsp, running

RESULTS = Path(__file__).resolve().parent / "results"
VIDEO = Path(__file__).resolve().parents[2] / "shared/data/mini/ffpp/original_sequences/youtube"
VIDEO = VIDEO / "c23/videos/519.mp4"


class _Before(LiveSource):
    gate_factory = PassThroughGate


def before_opener(
    spec: SourceSpec, *, stream_id: str, live: LiveSettings, on_status: Any, stop: Any
) -> LiveSource:
    """main before issue 13: ``fflags=nobuffer`` on RTSP, every decoded frame analysed."""
    inp = ffmpeg_input(spec, live)
    inp = dataclasses.replace(inp, options=inp.options | {"fflags": "nobuffer"})
    container = connect(inp, live)
    return _Before(container, inp, stream_id=stream_id, settings=live, on_status=on_status,
                   stop=stop)  # fmt: skip


class _Watch(Sink):
    """First analysed frame, every score event."""

    def __init__(self) -> None:
        self.first_frame: float | None = None
        self.scores: list[ScoreEvent] = []
        self.lock = threading.Lock()

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        if self.first_frame is None:
            self.first_frame = time.monotonic()

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        pass

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent):
            with self.lock:
                self.scores.append(event)


def run_once(url: str, variant: str, seconds: float) -> dict[str, Any]:
    """One run of ``variant`` for ``seconds`` after the first analysed frame."""
    watch = _Watch()
    config = AnalysisConfig(detector="yunet", window=8, stride=2, stall_timeout=30)
    opener = before_opener if variant == "before" else None
    kwargs: dict[str, Any] = {"opener": opener} if opener else {}
    run = Analysis(config, sinks=[watch], model=bench_model("tiny", window=8), persistent=True,
                   **kwargs)  # fmt: skip
    run.start()
    started = time.monotonic()
    run.add_source(url)
    deadline = started + seconds + 15
    while watch.first_frame is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(seconds)
    run.stop()
    (summary,) = run.join(30).summaries
    with watch.lock:
        scores = list(watch.scores)
    latency = percentiles([s.latency_ms for s in scores], (50, 95)) if scores else {}
    first_score = min((s.wall_time for s in scores), default=None)
    return {
        "variant": variant,
        "first_frame_s": None if watch.first_frame is None else watch.first_frame - started,
        "first_score_s": None
        if first_score is None
        else first_score - (time.time() - (time.monotonic() - started)),
        "latency_p50_ms": latency.get("p50"),
        "latency_p95_ms": latency.get("p95"),
        "windows": len(scores),
        "frames_analyzed": summary.frames_analyzed,
        "crops": summary.crops_embedded,
        "face_share": summary.crops_embedded / summary.frames_analyzed
        if summary.frames_analyzed
        else 0.0,
        "corrupt_frames": summary.corrupt_frames,
    }


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--video", type=Path, default=VIDEO)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as work,
        running(GstRtsp(args.video, Path(work), mode="file")) as server,
    ):
        url = server.url()
        for round_ in range(args.rounds):
            for variant in ("before", "after"):
                row = run_once(url, variant, args.seconds)
                row["round"] = round_
                runs.append(row)
                print(json.dumps(row), flush=True)
    keys = ("first_frame_s", "first_score_s", "latency_p50_ms", "latency_p95_ms",
            "corrupt_frames", "face_share")  # fmt: skip
    table = {v: {k: _median([r for r in runs if r["variant"] == v], k) for k in keys}
             for v in ("before", "after")}  # fmt: skip
    print(f"\n{'variant':8} " + " ".join(f"{k:>15}" for k in keys))
    for variant, row in table.items():
        cells = " ".join(f"{'-' if row[k] is None else f'{row[k]:.3f}':>15}" for k in keys)
        print(f"{variant:8} {cells}")
    out = RESULTS / "rtsp_latency.json"
    out.write_text(json.dumps({
        "benchmark": "rtsp_latency",
        "server": "gst-rtsp-server 1.22 (tests/gst_rtsp_server.py --mode file), 519.mp4",
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "detector": "yunet",
                     "model": "tiny", "window": 8, "stride": 2, "analysis_fps": "10 (live)"},
        "machine": machine_info(),
        "median": table,
        "runs": runs,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
