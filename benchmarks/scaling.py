"""``python -m benchmarks.scaling [VIDEO]``: 1, 2, 4, 8 concurrent streams played in real time.

Each count runs N copies of the video through one pipeline, each copy paced to real time by
``PacedSource`` (a local stand-in for N cameras; file queues stay lossless, so a pipeline that
cannot keep up shows it as growing latency rather than drops). Per count it reports analysed
frames/s, crops/s, the real-time factor (analysed frames/s over what the streams offered),
decode-to-score latency p50/p95/p99 (from when the frame was due), CPU % and mean CNN batch.
Writes JSON, a Markdown table (``.md``) and a plot (``.png``, matplotlib Agg) with ``--json``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from benchmarks.report import fmt, rich_table, write_outputs
from dfstream.api import Analysis
from dfstream.config import AnalysisConfig
from dfstream.errors import DfstreamError
from dfstream.sources import open_source
from dfstream.tools.benchkit import (
    BENCH_MODELS,
    ResourceClock,
    ScoreCollector,
    bench_model,
    machine_info,
    paced_opener,
    stage_metrics,
)
from dfstream.tools.synth import write_synthetic_clip


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.scaling``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling",
        description="Throughput and latency for 1..N concurrent real-time streams.",
    )
    p.add_argument("video", type=Path, nargs="?", help="default: a generated 320x240 clip")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of video per stream (8)")
    p.add_argument("--analysis-fps", type=float, help="analyse at most F frames/s per stream")
    p.add_argument("--detector", choices=("none", "yunet", "haar"), default="none")
    p.add_argument("--detector-model", type=Path)
    p.add_argument("--detect-every", type=int, default=5)
    p.add_argument("--model", choices=BENCH_MODELS, default="resnext50")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--stride", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", type=Path, help="write JSON here, .md and .png beside it")
    return p


def run_count(args: argparse.Namespace, video: Path, count: int, loaded: Any) -> dict[str, Any]:
    """One pipeline run with ``count`` paced copies of ``video``."""
    config = AnalysisConfig(
        sources=(str(video),) * count,
        untrained=True,
        detector=args.detector,
        detector_model=args.detector_model,
        detect_every=args.detect_every,
        analysis_fps=args.analysis_fps,
        window=args.window,
        stride=args.stride,
        batch=args.batch,
        backend=args.backend,
        device=args.device,
        max_seconds=args.seconds,
    )
    collector = ScoreCollector()
    run = Analysis(
        config,
        sinks=[collector],
        model=loaded,
        opener=paced_opener(),
    )
    with ResourceClock() as clock:
        run.run()
    result = stage_metrics(run, clock.wall_s, collector)
    result["cpu_percent"] = clock.cpu_percent
    result["backend"] = run.backend.describe()
    with open_source(str(video)) as source:
        fps = source.fps or 25.0
    offered = min(args.analysis_fps or fps, fps) * count
    result["offered_frames_per_s"] = offered
    result["analysed_frames_per_s"] = result["frames_analyzed"] / clock.wall_s
    result["realtime_factor"] = result["analysed_frames_per_s"] / offered
    return result


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Throughput and latency against the stream count, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r["streams"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(counts, [r["analysed_frames_per_s"] for r in rows], "o-", label="analysed frames/s")
    left.plot(counts, [r["offered_frames_per_s"] for r in rows], "k--", label="offered (real time)")
    left.plot(counts, [r["crops_per_s"] for r in rows], "s-", label="crops/s")
    left.set_xlabel("concurrent streams")
    left.set_ylabel("per second")
    left.set_xscale("log", base=2)
    left.set_xticks(counts, [str(c) for c in counts])
    left.legend()
    for q in ("p50", "p95", "p99"):
        right.plot(counts, [r["latency_ms"][q] for r in rows], "o-", label=q)
    right.set_xlabel("concurrent streams")
    right.set_ylabel("decode-to-score latency ms")
    right.set_xscale("log", base=2)
    right.set_xticks(counts, [str(c) for c in counts])
    right.set_yscale("log")
    right.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run every count, print the table, write JSON/Markdown/PNG with ``--json``."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    console = Console(highlight=False)
    loaded = bench_model(args.model, window=args.window)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dfstream-scaling-") as tmp:
            video = args.video or write_synthetic_clip(Path(tmp) / "clip.mp4", seconds=args.seconds)
            for count in args.counts:
                rows.append(run_count(args, video, count, loaded))
                console.print(f"{count} stream(s): done in {rows[-1]['wall_s']:.1f} s")
    except DfstreamError as exc:
        print(f"benchmarks.scaling: error: {exc}", file=sys.stderr)
        return exc.exit_code
    name = args.video.name if args.video else "generated 320x240 clip"
    title = (
        f"Scaling, real-time streams: {name}, {args.seconds:g} s each, {args.model} "
        f"(untrained), {rows[0]['backend']}, detector {args.detector}, analysis "
        f"{args.analysis_fps or 'every frame'} fps, T={args.window} stride {args.stride}"
    )
    header = ["streams", "offered f/s", "analysed f/s", "RT factor", "crops/s",
              "p50 ms", "p95 ms", "p99 ms", "CPU %", "batch"]  # fmt: skip
    table = [
        [str(r["streams"]), fmt(r["offered_frames_per_s"]), fmt(r["analysed_frames_per_s"]),
         fmt(r["realtime_factor"], 2), fmt(r["crops_per_s"]), fmt(r["latency_ms"]["p50"], 0),
         fmt(r["latency_ms"]["p95"], 0), fmt(r["latency_ms"]["p99"], 0),
         fmt(r["cpu_percent"], 0), fmt(r["mean_batch"])]
        for r in rows
    ]  # fmt: skip
    console.print(rich_table(title, header, table))
    if args.json is not None:
        result = {
            "command": "python -m benchmarks.scaling " + shlex.join(sys.argv[1:]),
            "rows": rows,
            "machine": machine_info(),
        }
        md = write_outputs(args.json, result, title=title, header=header, rows=table)
        png = args.json.with_suffix(".png")
        plot(png, rows, title)
        md.write_text(md.read_text() + f"\n![scaling plot]({png.name})\n")
        console.print(f"wrote {args.json}, {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
