"""Overload benchmark: a 1080p 30 fps RTSP stream analysed by a model slower than real time.

Serves a generated 1080p30 clip in a loop from the local RTSP test server (ffmpeg + a small
RTSP relay, see ``tests/rtsp_server.py``), analyses every frame (``--analysis-fps 30``) with the
untrained ResNeXt50+LSTM on the CPU and the whole frame as the face, which is far slower than
30 crops/s here. Once a second it samples the live frame queue's size, the drop counter, the
latency p50/p95 of the stream and the process RSS. It checks the three promises of a live
source under overload: the queue stays bounded, drops are counted, latency does not pile up,
and memory stays flat (RSS growth from the end of the warm-up to the end, which must be < 10%).

Run from the repository root: ``python -m benchmarks.live_overload [--seconds 120]``. Prints a
table and writes ``benchmarks/results/live_overload.json``. Numbers depend on the machine and
its load (this one is shared): quote them with the load average printed alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dfstream.api import Analysis
from dfstream.config import AnalysisConfig, OutputConfig
from tests.live_servers import rtsp_server
from tests.media import write_clip

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(seconds: float, warmup: float, batch: int) -> dict[str, Any]:
    """Serve, analyse for ``seconds``, sample once a second; the measurements as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = write_clip(work / "1080p30.mp4", frames=300, size=(1920, 1080), fps=30, gop=30)
        with rtsp_server(clip, work) as server:
            config = AnalysisConfig(
                sources=(server.url(),),
                untrained=True,
                detector="none",
                analysis_fps=30.0,
                window=8,
                stride=4,
                batch=batch,
                device="cpu",
            )
            prepared = Analysis(config, outputs=OutputConfig(jsonl=str(work / "events.jsonl")))
            pipeline = prepared.pipeline
            started = time.monotonic()
            prepared.start()
            samples: list[dict[str, float]] = []
            while (elapsed := time.monotonic() - started) < seconds:
                time.sleep(1.0)
                (state,) = pipeline.states.values()
                queue = next(iter(pipeline.frame_queues.values()), None)
                latency = state.latency_percentiles()
                samples.append(
                    {
                        "t": round(elapsed, 1),
                        "queue": queue.qsize() if queue else 0,
                        "dropped": state.dropped,
                        "decoded": state.frames_decoded,
                        "embedded": state.crops_embedded,
                        "p50_ms": latency[0] if latency else float("nan"),
                        "p95_ms": latency[1] if latency else float("nan"),
                        "rss_mib": rss_mib(),
                    }
                )
            pipeline.stop()
            prepared.join(timeout=10)
            (state,) = pipeline.states.values()
            latencies = list(state.latencies_ms)
    after_warmup = [s for s in samples if s["t"] >= warmup] or samples
    rss_start, rss_end = after_warmup[0]["rss_mib"], samples[-1]["rss_mib"]
    last = samples[-1]
    return {
        "benchmark": "live_overload",
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "seconds": seconds,
        "warmup_s": warmup,
        "stream": "1920x1080 30 fps H.264 over RTSP/TCP (local)",
        "analysis_fps": 30.0,
        "batch": batch,
        "frame_queue_capacity": 8,
        "frame_queue_max": max(s["queue"] for s in samples),
        "frames_decoded": last["decoded"],
        "frames_dropped": last["dropped"],
        "crops_embedded": last["embedded"],
        "crops_per_s": last["embedded"] / last["t"],
        "latency_p50_ms": _percentile(latencies, 50) if latencies else None,
        "latency_p95_ms": _percentile(latencies, 95) if latencies else None,
        "latency_p95_max_rolling_ms": max(s["p95_ms"] for s in after_warmup),
        "rss_mib_after_warmup": rss_start,
        "rss_mib_end": rss_end,
        "rss_growth_pct": 100.0 * (rss_end - rss_start) / rss_start,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "live_overload.json")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.warmup, args.batch)
    table = Table(title=f"live overload, {args.seconds:.0f} s (shared, noisy machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "frames_decoded", "frames_dropped", "frame_queue_capacity", "frame_queue_max",
        "crops_per_s", "latency_p50_ms", "latency_p95_ms", "latency_p95_max_rolling_ms",
        "rss_mib_after_warmup", "rss_mib_end", "rss_growth_pct", "load_average_at_end",
    ):  # fmt: skip
        value = result[key]
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
