"""``python -m benchmarks.live_streams``: N real-time 720p30 RTSP cameras, the default model.

Starts one GStreamer RTSP server (``tests/gst_rtsp_server.py``, gst-rtsp-server's own RTSP
code; the camera part plays the clip's H.264 in real time, looping, without re-encoding) per
camera, each with a real 1280x720 30 fps clip from ``../shared/data/real/videos``, and analyses
all of them in one dfstream run with its defaults for live sources: the shipped model, YuNet
every 5th analysed frame, 10 analysed frames/s per stream, backend ``auto``. Every
``--sample`` seconds it records each stream's analysed frames, drops and latency and the
process RSS. Reports, per stream and overall:

- the analysed frame rate after the warm-up (a starved stream falls below 10/s);
- decode-to-score latency p50/p95 of the windows scored after the warm-up as they fell due
  (full T-frame windows: from the moment the frame left the decoder to its window's score;
  network and jitter buffer not included); the short windows of tracks that ended early are
  scored when the track ends, seconds after their last frame, and reported apart
  (``latency_all_ms``);
- RSS growth from the end of the warm-up to the end (memory that piles up);
- the CPU account of the run (``dfstream.cputime``) and the load average.

    python -m benchmarks.live_streams --streams 4 --seconds 600 \\
        --json benchmarks/results/live_streams_4x720p.json

Needs Debian's GStreamer RTSP server packages (``.ci/run`` installs them) and ``../shared``.
Exit status 0 when every stream was analysed at >= 95% of the asked rate with p95 latency under
500 ms and RSS growth under 10%; 1 otherwise; 2 when a clip or the server is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.live_overload import rss_mib
from benchmarks.report import fmt, rich_table, write_outputs
from dfstream.api import Analysis
from dfstream.config import AnalysisConfig
from dfstream.sinks.base import Sink
from dfstream.tools.benchkit import machine_info, percentiles
from dfstream.types import Event, ScoreEvent
from tests.real_servers import GstRtsp

SHARED = Path(__file__).resolve().parents[2] / "shared/data/real/videos"
CLIPS = (
    "misc/nggyup.mp4",
    "misc/dirtydancing.mp4",
    "liveportrait/s18.mp4",
    "liveportrait/s32.mp4",
    "deepfacelive-samples/Ben_Stiller_Owen_Wilson.mp4",
)
"""Real 1280x720 H.264 clips at ~30 fps, one per camera (repeated for more cameras)."""

ANALYSIS_FPS = 10.0
P95_LIMIT_MS = 500.0
RSS_LIMIT_PCT = 10.0


class TimedScores(Sink):
    """Every window's (wall clock time, stream, latency, frames in the window)."""

    def __init__(self) -> None:
        self.scores: list[tuple[float, str, float, int]] = []
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent):
            with self._lock:
                now = time.monotonic()
                self.scores.append((now, event.stream_id, event.latency_ms, event.window))

    def since(self, moment: float) -> list[tuple[float, str, float, int]]:
        with self._lock:
            return [s for s in self.scores if s[0] >= moment]


def run(
    streams: int, seconds: float, warmup: float, sample: float, threads: int | None = None
) -> dict[str, Any]:
    """Serve ``streams`` cameras, analyse them for ``seconds``; every figure as a dict."""
    clips = [SHARED / CLIPS[i % len(CLIPS)] for i in range(streams)]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise FileNotFoundError(", ".join(missing))
    with tempfile.TemporaryDirectory(prefix="dfstream-live-") as tmp:
        servers = [GstRtsp(clip, Path(tmp), mode="camera") for clip in clips]
        try:
            for server in servers:
                server.start()
            return _analyse(servers, clips, seconds, warmup, sample, threads)
        finally:
            for server in servers:
                server.kill()


def _analyse(
    servers: list[GstRtsp],
    clips: list[Path],
    seconds: float,
    warmup: float,
    sample: float,
    threads: int | None,
) -> dict[str, Any]:
    collector = TimedScores()
    config = AnalysisConfig(
        sources=tuple(s.url() for s in servers), untrained=False, threads=threads
    )
    run = Analysis(config, sinks=[collector])
    pipeline = run.pipeline
    started = time.monotonic()
    run.start()
    samples: list[dict[str, Any]] = []
    warm: dict[str, tuple[float, int]] = {}
    rss_warm: float | None = None
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(sample)
        elapsed = time.monotonic() - started
        states = pipeline.states
        if not warm and elapsed >= warmup:
            warm = {sid: (time.monotonic(), s.frames_analyzed) for sid, s in states.items()}
            rss_warm = rss_mib()
        samples.append(
            {
                "t": round(elapsed, 1),
                "rss_mib": rss_mib(),
                "analysed": {sid: s.frames_analyzed for sid, s in states.items()},
                "dropped": {sid: s.dropped for sid, s in states.items()},
                "state": {sid: s.state for sid, s in states.items()},
            }
        )
    ended = time.monotonic()
    states = pipeline.states
    per_stream: list[dict[str, Any]] = []
    scores = collector.since(warm[next(iter(warm))][0]) if warm else []
    full = run.model.spec.window
    for (sid, state), clip in zip(states.items(), clips, strict=True):
        since, analysed0 = warm.get(sid, (started, 0))
        rate = (state.frames_analyzed - analysed0) / (ended - since)
        latencies = [lat for _t, s, lat, n in scores if s == sid and n == full]
        every_window = [lat for _t, s, lat, _n in scores if s == sid]
        per_stream.append(
            {
                "stream": sid,
                "clip": str(clip),
                "analysed_fps": rate,
                "frames_decoded": state.frames_decoded,
                "frames_dropped": state.dropped,
                "reconnects": state.reconnects,
                "windows_after_warmup": len(latencies),
                "short_windows_after_warmup": len(every_window) - len(latencies),
                "latency_ms": percentiles(latencies),
                "latency_all_ms": percentiles(every_window),
            }
        )
    run.stop()
    run.join(timeout=20)
    account = pipeline.cpu_account()
    every = [lat for _t, _s, lat, n in scores if n == full]
    rss_end = samples[-1]["rss_mib"]
    growth = 100.0 * (rss_end - rss_warm) / rss_warm if rss_warm else float("nan")
    worst_rate = min(s["analysed_fps"] for s in per_stream)
    p95 = percentiles(every)["p95"]
    return {
        "streams": len(per_stream),
        "seconds": seconds,
        "warmup_s": warmup,
        "analysis_fps": ANALYSIS_FPS,
        "backend": run.backend.describe(),
        "model": run.model.name,
        "per_stream": per_stream,
        "latency_ms": percentiles(every),
        "latency_all_ms": percentiles([lat for _t, _s, lat, _n in scores]),
        "min_analysed_fps": worst_rate,
        "rss_mib_after_warmup": rss_warm,
        "rss_mib_end": rss_end,
        "rss_growth_pct": growth,
        "met": {
            "no_stream_starved": worst_rate >= 0.95 * ANALYSIS_FPS,
            "latency_p95_under_500ms": p95 < P95_LIMIT_MS,
            "rss_growth_under_10pct": growth < RSS_LIMIT_PCT,
        },
        "cpu": account,
        "samples": samples,
        "machine": machine_info(run.backend),
    }


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON and Markdown; see the module docstring for the status."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.live_streams", description=__doc__)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--warmup", type=float, default=30.0)
    p.add_argument("--sample", type=float, default=5.0)
    p.add_argument(
        "--threads", type=int, help="backend threads (default: auto, 1 when the CPU is busy)"
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    try:
        result = run(args.streams, args.seconds, args.warmup, args.sample, args.threads)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"benchmarks.live_streams: error: {exc}", file=sys.stderr)
        return 2
    result["command"] = "python -m benchmarks.live_streams " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    header = [
        "stream", "clip", "analysed f/s", "dropped", "windows (short)", "p50 ms", "p95 ms",
        "p95 with short",
    ]  # fmt: skip
    rows = [
        [
            str(number),
            Path(s["clip"]).name,
            fmt(s["analysed_fps"], 2),
            str(s["frames_dropped"]),
            f"{s['windows_after_warmup']} ({s['short_windows_after_warmup']})",
            fmt(s["latency_ms"]["p50"], 0),
            fmt(s["latency_ms"]["p95"], 0),
            fmt(s["latency_all_ms"]["p95"], 0),
        ]
        for number, s in enumerate(result["per_stream"], 1)
    ]
    lat = result["latency_ms"]
    rows.append(["all", "", fmt(result["min_analysed_fps"], 2) + " (min)", "", "",
                 fmt(lat["p50"], 0), fmt(lat["p95"], 0),
                 fmt(result["latency_all_ms"]["p95"], 0)])  # fmt: skip
    rows.append(["RSS MiB", "", f"{result['rss_mib_after_warmup']:.0f} -> "
                 f"{result['rss_mib_end']:.0f} ({result['rss_growth_pct']:+.1f}%)", "", "", "",
                 "", ""])  # fmt: skip
    load = " ".join(f"{v:.1f}" for v in result["machine"]["load_average"] or ())
    title = (
        f"{result['streams']} x 720p30 RTSP cameras (gst-rtsp-server), {result['model']}, "
        f"{result['backend']}, {args.seconds:.0f} s, load {load}"
    )
    from rich.console import Console

    Console().print(rich_table(title, header, rows))
    print(f"targets: {result['met']}")
    if args.json is not None:
        write_outputs(args.json, result, title=title, header=header, rows=rows)
    return 0 if all(result["met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
