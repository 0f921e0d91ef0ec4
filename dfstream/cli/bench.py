"""``dfstream bench``: throughput and latency of the whole pipeline, stage by stage.

Runs a generated H.264 clip (or ``--video``) through the real pipeline (``app.prepare`` and
``Pipeline``: PyAV decode, detector, crops, the CNN + LSTM on the chosen backend, window
scoring) with an untrained model, and prints one table: per-stage rates (decode fps, detect
ms/frame, embed crops/s, head windows/s, measured inside each stage), end-to-end rates,
decode-to-score latency percentiles, CPU and peak memory, the bare references (PyAV decoding
alone, the backend alone at the same batch size) and the machine. ``--json`` writes the same
figures. Needs no network, weights or data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from dfstream.api import Analysis
from dfstream.cli.args import Parser, default_model_override, positive_float, positive_int
from dfstream.config import AnalysisConfig
from dfstream.errors import OutputError, UsageError
from dfstream.model.shipped import load_default_model
from dfstream.sources import open_source
from dfstream.tools.benchkit import (
    BENCH_MODELS,
    ResourceClock,
    ScoreCollector,
    bare_backend_rates,
    bare_decode_fps,
    bench_model,
    cpu_account_rows,
    machine_info,
    paced_opener,
    stage_metrics,
)
from dfstream.tools.synth import write_synthetic_clip

CLIP_SIZE = (320, 240)
CLIP_FPS = 25


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream bench``."""
    p = Parser(
        prog="dfstream bench",
        description=(
            "Measure the pipeline stage by stage on a generated 320x240 25 fps clip with an "
            "untrained model (no network, weights or data needed)."
        ),
        epilog="The machine's other load skews every figure: compare runs made side by side.",
    )
    p.add_argument("--quick", action="store_true", help="a short run: at most ~60 s on 2 cores")
    p.add_argument("--seconds", type=positive_float, help="clip length (default 6, quick 3)")
    p.add_argument("--video", type=Path, help="benchmark this file instead of a generated clip")
    p.add_argument("--streams", type=positive_int, default=1, help="concurrent copies (1)")
    p.add_argument(
        "--realtime", action="store_true", help="play the clip in real time, as a camera would"
    )
    p.add_argument("--backend", default="auto", help="inference backend (auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (auto)")
    p.add_argument("--batch", type=positive_int, default=16, help="CNN batch size (16)")
    p.add_argument(
        "--window", type=positive_int, help="window T (20; with --model default: the model's)"
    )
    p.add_argument("--stride", type=positive_int, default=5, help="window stride (5)")
    p.add_argument(
        "--detector",
        default="none",
        choices=("none", "haar", "yunet", "auto"),
        help="face detector (none: the whole frame is the face; the generated clip has none)",
    )
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model")
    p.add_argument("--detect-every", type=positive_int, default=5, help="detector period (5)")
    p.add_argument(
        "--detect-size", type=positive_int, default=640, help="detector's frame size, px (640)"
    )
    p.add_argument(
        "--model",
        default="resnext50",
        choices=(*BENCH_MODELS, "default"),
        help="default: the shipped default model (its own size and T unless --window is given);"
        " otherwise an untrained model of that backbone: resnext50, efficientnet_lite0 (at its"
        " 224 px), small, or tiny (benchmarks pipeline overhead)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch intra-op threads (default: torch's own choice, as dfstream uses)",
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    return p


def run_bench(args: argparse.Namespace, clip: Path, console: Console) -> dict[str, Any]:
    """Run the benchmark on ``clip`` and return every figure."""
    if args.model == "default":
        model = load_default_model(default_model_override(), window=args.window)
        args.window = model.spec.window
    else:
        args.window = args.window or 20
        model = bench_model(args.model, window=args.window)
    config = AnalysisConfig(
        sources=(str(clip),) * args.streams,
        untrained=True,
        detector=args.detector,
        detector_model=args.detector_model,
        detect_every=args.detect_every,
        detect_size=args.detect_size,
        backend=args.backend,
        device=args.device,
        batch=args.batch,
        window=args.window,
        stride=args.stride,
        max_seconds=args.seconds if args.video is not None else None,
    )
    collector = ScoreCollector()
    run = Analysis(
        config,
        sinks=[collector],
        on_notice=lambda msg: console.print(f"dfstream: {msg}", highlight=False),
        model=model,
        opener=paced_opener() if args.realtime else open_source,
    )
    # The machine's load drifts: time the backend alone before and after, keep the median.
    bare_s = 1.5 if args.quick else 4.0
    bare_runs = [
        bare_backend_rates(run.backend, batch=args.batch, stride=args.stride, seconds=bare_s)
    ]
    _frames, before = bare_decode_fps(clip, max_seconds=config.max_seconds)
    with ResourceClock() as clock:
        summaries = run.run().summaries
    result = stage_metrics(run, clock.wall_s, collector)
    result["cpu"] = run.pipeline.cpu_account()
    result["cpu_percent"] = clock.cpu_percent
    result["peak_rss_mb"] = ResourceClock.peak_rss_mb()
    frames, after = bare_decode_fps(clip, max_seconds=config.max_seconds)
    decode_fps = statistics.median([before, after])
    result["bare_decode_fps"] = decode_fps
    result["bare_decode_fps_runs"] = [before, after]
    result["frames_per_s_vs_bare_decode"] = (
        result["frames_per_s"] / args.streams / decode_fps if decode_fps else 0.0
    )
    bare_runs.append(
        bare_backend_rates(run.backend, batch=args.batch, stride=args.stride, seconds=bare_s)
    )
    bare = statistics.median(rate for rate, _cpu in bare_runs)
    result["bare_backend_crops_per_s"] = bare
    result["bare_backend_crops_per_s_runs"] = [rate for rate, _cpu in bare_runs]
    cpu_per_crop = statistics.median(cpu for _rate, cpu in bare_runs)
    result["efficiency_cpu"] = (
        cpu_per_crop * result["crops"] / clock.cpu_s if clock.cpu_s > 0 else 0.0
    )
    result["efficiency"] = result["crops_per_s"] / bare if bare else 0.0
    result["settings"] = {
        "clip": str(args.video) if args.video else "generated",
        "clip_frames": frames,
        "model": model.name if args.model == "default" else args.model,
        "trained": not model.untrained,
        "backend": run.backend.describe(),
        "batch": args.batch,
        "window": args.window,
        "stride": args.stride,
        "detector": args.detector,
        "detect_every": args.detect_every,
        "detect_size": args.detect_size,
        "streams": args.streams,
        "realtime": bool(args.realtime),
        "quick": bool(args.quick),
        "torch_threads": torch.get_num_threads(),
    }
    result["machine"] = machine_info(run.backend)
    result["exit_ok"] = all(s.error is None for s in summaries)
    return result


def render(result: dict[str, Any]) -> Table:
    """The figures as one table."""
    s, m = result["settings"], result["machine"]
    lat = result["latency_ms"]
    table = Table(
        title=(
            f"dfstream bench: {s['model']}{'' if s.get('trained') else ' (untrained)'}, "
            f"{s['backend']}, batch {s['batch']}, "
            f"T={s['window']} stride {s['stride']}, {s['streams']} stream(s)"
            + (", real time" if s["realtime"] else "")
        )
    )
    table.add_column("stage")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("decode", "frames/s in the decoder", f"{result['decode_fps']:.1f}"),
        ("detect", f"ms/frame ({s['detector']})", f"{result['detect_ms_per_frame']:.2f}"),
        ("embed", "crops/s in embed", f"{result['embed_crops_per_s']:.1f}"),
        ("head", "windows/s in score", f"{result['head_windows_per_s']:.1f}"),
        ("end to end", "frames/s", f"{result['frames_per_s']:.1f}"),
        ("", "crops/s", f"{result['crops_per_s']:.1f}"),
        ("", "windows scored", str(result["windows"])),
        ("", "mean CNN batch", f"{result['mean_batch']:.1f}"),
        ("", "wall time s", f"{result['wall_s']:.2f}"),
        ("latency", "p50/p95/p99 ms", "/".join(f"{v:.0f}" for v in lat.values())),
        ("process", "CPU % (100 = 1 core)", f"{result['cpu_percent']:.0f}"),
        ("", "peak RSS MiB", f"{result['peak_rss_mb']:.0f}"),
        ("bare", "PyAV decode f/s", f"{result['bare_decode_fps']:.1f}"),
        ("", "e2e ÷ bare decode", f"{result['frames_per_s_vs_bare_decode']:.2f}"),
        ("", "backend crops/s", f"{result['bare_backend_crops_per_s']:.1f}"),
        ("", "efficiency", f"{result['efficiency']:.2f}"),
        ("", "efficiency by CPU time", f"{result['efficiency_cpu']:.2f}"),
        ("machine", "CPU", f"{m['cpu']} ×{m['cpu_count']}, torch ×{m['torch_threads']}"),
        ("", "load average", " ".join(f"{v:.1f}" for v in m["load_average"] or ())),
        ("", "Python, torch", f"{m['python']}, {m['torch']}"),
        ("", "PyAV, OpenCV", f"{m['av']}, {m['opencv']}"),
    ]
    for row in rows:
        table.add_row(*row)
    table.add_section()
    for row in cpu_account_rows(result["cpu"]):
        table.add_row(*row)
    return table


def main(argv: list[str]) -> int:
    """Run the benchmark, print its table, optionally write JSON; 0 when every stream ran."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.video is not None and not args.video.is_file():
        raise UsageError(f"--video {args.video}: no such file")
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 6.0
        if args.video is not None and not args.quick:
            args.seconds = None
    console = Console(highlight=False)
    with tempfile.TemporaryDirectory(prefix="dfstream-bench-") as tmp:
        clip = args.video or write_synthetic_clip(
            Path(tmp) / "clip.mp4", seconds=args.seconds, size=CLIP_SIZE, fps=CLIP_FPS
        )
        result = run_bench(args, clip, console)
    console.print(render(result))
    untrained = "" if result["settings"]["trained"] else "Untrained model: scores are meaningless. "
    console.print(f"{untrained}The machine may be shared: figures are noisy.")
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            raise OutputError(f"--json {args.json}: cannot write ({exc.strerror})") from exc
    return 0 if result["exit_ok"] else 3
