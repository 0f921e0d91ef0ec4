"""``python -m benchmarks.compare VIDEO``: dfstream against the naive reference, side by side.

Both run on the same video with the same model object (untrained, or with ``--model default``
the shipped model), backend, detector, tracker and crop settings, one after the other in one
process. dfstream runs with ``--detect-every 1`` so that both see the same tracks (with
``--detector none`` detection is trivial anyway); with its default of 5 it would do less
detector work still. Printed and written (``--json OUT``, plus ``OUT`` with ``.md``):

* ``speedup``: naive wall time / dfstream wall time (model loading excluded from both). The
  machine may be shared and its load drifts, so dfstream runs once before and once after the
  naive run (``--dfstream-runs``) and the median counts; ``cpu_speedup`` (process CPU seconds)
  is less sensitive to other load;
* ``max_abs_score_diff``: largest difference between the two runs' scores of the same window;
* ``efficiency``: dfstream's end-to-end crops/s / the bare backend's crops/s at the same batch
  size (``embed`` of full batches plus the matching ``score`` calls, nothing else running);
  ``efficiency_cpu`` is the same by CPU time: the backend's CPU seconds per crop alone over
  dfstream's process CPU seconds per crop (decoding and detection included), steadier when
  other programs share the machine;
* ``dfstream_crops_per_s`` and ``naive_crops_per_s``: CNN crops per second of wall time (the
  naive reference embeds a crop once per window it belongs to);
* ``cpu``: the first dfstream run's CPU account (``dfstream.cputime.cpu_breakdown``: ms per
  frame by stage, by thread pool and OS thread, the unexplained rest, every pool's size).

Exit status: 0 when both produced the same windows with scores within 1e-4, 1 otherwise,
2 for a usage error, 3-6 as ``dfstream`` for other errors.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from benchmarks.naive import compare_scores, run_naive
from benchmarks.report import fmt, rich_table, write_outputs
from dfstream.api import Analysis, pipeline_settings
from dfstream.backends import create_backend
from dfstream.config import AnalysisConfig
from dfstream.errors import DfstreamError
from dfstream.faces import DetectorKind, make_detector
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.shipped import load_default_model
from dfstream.tools.benchkit import (
    BENCH_MODELS,
    ResourceClock,
    ScoreCollector,
    bare_backend_rates,
    bench_model,
    cpu_account_rows,
    machine_info,
    stage_metrics,
)

TOLERANCE = 1e-4


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.compare``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="Run dfstream and the naive reference on one video; compare speed and scores.",
    )
    p.add_argument("video", type=Path)
    p.add_argument("--window", type=int, default=20, help="window T (20)")
    p.add_argument("--stride", type=int, default=5, help="window stride (5)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=16, help="dfstream's CNN batch size (16)")
    p.add_argument(
        "--detector",
        choices=("none", "yunet", "haar"),
        help="face detector (default: yunet with --detector-model, else none)",
    )
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model")
    p.add_argument("--max-seconds", type=float, help="use only the first S seconds of the video")
    p.add_argument(
        "--model",
        choices=(*BENCH_MODELS, "default"),
        default="resnext50",
        help="an untrained model of that backbone (resnext50), or default: the shipped model",
    )
    p.add_argument("--bare-seconds", type=float, default=4.0, help="bare-backend timing (4 s)")
    p.add_argument(
        "--dfstream-runs",
        type=int,
        default=2,
        help="dfstream runs: one before the naive run, the rest after; the median counts (2)",
    )
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", type=Path, help="write JSON here and a Markdown table beside it")
    return p


def _run_dfstream(
    config: AnalysisConfig, loaded: LoadedModel
) -> tuple[Analysis, ResourceClock, ScoreCollector]:
    collector = ScoreCollector()
    run = Analysis(config, sinks=[collector], model=loaded)
    with ResourceClock() as clock:
        (summary,) = run.run().summaries
    if summary.error:
        raise DfstreamError(summary.error)
    return run, clock, collector


def _bare(loaded: LoadedModel, args: argparse.Namespace) -> tuple[float, float]:
    backend = create_backend(args.backend, loaded, device=args.device)
    return bare_backend_rates(
        backend, batch=args.batch, stride=args.stride, seconds=args.bare_seconds
    )


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    """Run both sides and the bare backend; return every figure."""
    detector: DetectorKind = args.detector or ("yunet" if args.detector_model else "none")
    if args.model == "default":
        loaded = load_default_model(None, window=args.window)
    else:
        loaded = bench_model(args.model, window=args.window)
    config = AnalysisConfig(
        sources=(str(args.video),),
        untrained=True,
        detector=detector,
        detector_model=args.detector_model,
        detect_every=1,
        window=args.window,
        stride=args.stride,
        batch=args.batch,
        backend=args.backend,
        device=args.device,
        max_seconds=args.max_seconds,
    )
    # Load on a shared machine drifts: dfstream runs before and after the (long) naive run and
    # the bare backend is timed before and after too; the medians bracket the naive run.
    bare_runs = [_bare(loaded, args)]
    runs = [_run_dfstream(config, loaded)]
    with ResourceClock() as naive_clock:
        naive = run_naive(
            args.video,
            backend=runs[0][0].backend,
            detector=make_detector(
                detector, model_path=args.detector_model, cache_dir=None, notice=lambda _m: None
            ),
            analyzer=pipeline_settings(config, loaded).analyzer,
            window=args.window,
            stride=args.stride,
        )
    runs += [_run_dfstream(config, loaded) for _ in range(args.dfstream_runs - 1)]
    bare_runs.append(_bare(loaded, args))
    bare = statistics.median(rate for rate, _cpu in bare_runs)
    bare_cpu_per_crop = statistics.median(cpu for _rate, cpu in bare_runs)
    walls = [clock.wall_s for _run, clock, _c in runs]
    wall = statistics.median(walls)
    run, clock, collector = runs[0]
    fast = stage_metrics(run, clock.wall_s, collector)
    ours = {(track, frame): s for (_sid, track, frame), s in collector.by_window().items()}
    diff = compare_scores(naive.scores, ours)
    for _run, _clock, other in runs[1:]:  # every dfstream run must give the same scores
        again = {(t, f): s for (_sid, t, f), s in other.by_window().items()}
        repeat = compare_scores(ours, again)
        diff["max_abs_score_diff"] = max(
            float(diff["max_abs_score_diff"]), float(repeat["max_abs_score_diff"])
        )
        diff["windows_only_dfstream"] += repeat["windows_only_dfstream"]
    crops_per_s = fast["crops"] / wall if wall > 0 else 0.0
    cpu = statistics.median(clock.cpu_s for _run, clock, _c in runs)
    same = (
        diff["windows_only_naive"] == 0
        and diff["windows_only_dfstream"] == 0
        and diff["windows_compared"] > 0
        and float(diff["max_abs_score_diff"]) <= TOLERANCE
    )
    return {
        "command": "python -m benchmarks.compare " + shlex.join(sys.argv[1:]),
        "video": str(args.video),
        "settings": {
            "window": args.window,
            "stride": args.stride,
            "batch": args.batch,
            "detector": detector,
            "detect_every": 1,
            "model": args.model,
            "backend": run.backend.describe(),
            "max_seconds": args.max_seconds,
        },
        "frames": fast["frames"],
        "windows": fast["windows"],
        "speedup": naive.wall_s / wall if wall > 0 else 0.0,
        "dfstream_wall_s": wall,
        "dfstream_wall_s_runs": walls,
        "naive_wall_s": naive.wall_s,
        "cpu_speedup": naive_clock.cpu_s / cpu if cpu > 0 else 0.0,
        "dfstream_cpu_s": cpu,
        "naive_cpu_s": naive_clock.cpu_s,
        "dfstream_crops_per_s": crops_per_s,
        "naive_crops_per_s": naive.crops_per_s,
        "dfstream_crops": fast["crops"],
        "naive_crops": naive.crops_embedded,
        "naive_windows": naive.windows,
        "bare_backend_crops_per_s": bare,
        "bare_backend_crops_per_s_runs": [rate for rate, _cpu in bare_runs],
        "efficiency": crops_per_s / bare if bare > 0 else 0.0,
        "efficiency_cpu": bare_cpu_per_crop * fast["crops"] / cpu if cpu > 0 else 0.0,
        **diff,
        "scores_match": same,
        "tolerance": TOLERANCE,
        "dfstream": fast,
        "cpu": run.pipeline.cpu_account(),
        "machine": machine_info(run.backend),
    }


def table_rows(r: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table."""
    header = ["figure", "dfstream", "naive", "ratio / note"]
    rows = [
        [
            "wall time s",
            fmt(r["dfstream_wall_s"], 2),
            fmt(r["naive_wall_s"], 2),
            f"speedup {r['speedup']:.2f}x",
        ],
        [
            "CNN crops",
            str(r["dfstream_crops"]),
            str(r["naive_crops"]),
            f"{r['naive_crops'] / max(1, r['dfstream_crops']):.1f}x less CNN work",
        ],
        [
            "crops/s",
            fmt(r["dfstream_crops_per_s"]),
            fmt(r["naive_crops_per_s"]),
            f"bare backend {fmt(r['bare_backend_crops_per_s'])}",
        ],
        [
            "windows scored",
            str(r["windows"]),
            str(r["naive_windows"]),
            f"{r['windows_compared']} compared",
        ],
        [
            "max abs score diff",
            "",
            "",
            f"{r['max_abs_score_diff']:.2e}" + (" (match)" if r["scores_match"] else " (MISMATCH)"),
        ],
        [
            "efficiency",
            fmt(r["efficiency"], 2),
            "",
            f"crops/s ÷ bare backend (by CPU time: {r['efficiency_cpu']:.2f})",
        ],
        [
            "CPU time s",
            fmt(r["dfstream_cpu_s"], 1),
            fmt(r["naive_cpu_s"], 1),
            f"{r['cpu_speedup']:.2f}x less CPU",
        ],
    ]
    rows += [[stage, figure, "", value] for stage, figure, value in cpu_account_rows(r["cpu"])]
    return header, rows


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring for the exit status."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    console = Console(highlight=False)
    try:
        if not args.video.is_file():
            raise DfstreamError(f"{args.video}: no such video file")
        result = run_compare(args)
    except DfstreamError as exc:
        print(f"benchmarks.compare: error: {exc}", file=sys.stderr)
        return exc.exit_code
    s = result["settings"]
    title = (
        f"dfstream vs naive: {Path(result['video']).name}, {result['frames']} frames, "
        f"T={s['window']} stride {s['stride']}, {s['model']}"
        f"{'' if s['model'] == 'default' else ' (untrained)'}, {s['backend']}, "
        f"detector {s['detector']}"
    )
    header, rows = table_rows(result)
    console.print(rich_table(title, header, rows))
    if args.json is not None:
        md = write_outputs(args.json, result, title=title, header=header, rows=rows)
        console.print(f"wrote {args.json} and {md}")
    return 0 if result["scores_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
