"""``dfstream bench``: throughput of the whole pipeline on a generated clip.

Runs a synthetic H.264 clip through the real pipeline (PyAV decode, whole-frame "detector",
crops, an untrained ResNeXt50+LSTM on the chosen backend, window scoring) and prints frames/s
and crops/s. Needs no network, weights or data.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dfstream.app import prepare
from dfstream.config import AnalyzeConfig
from dfstream.synth import write_synthetic_clip


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream bench``."""
    p = argparse.ArgumentParser(
        prog="dfstream bench",
        description="Measure end-to-end throughput on a generated clip with an untrained model.",
    )
    p.add_argument("--quick", action="store_true", help="a short run (well under 60 s)")
    p.add_argument("--seconds", type=float, default=None, help="clip length in seconds")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=16)
    return p


def main(argv: list[str]) -> int:
    """Run the benchmark and print its table."""
    args = build_parser().parse_args(argv)
    seconds = args.seconds or (4.0 if args.quick else 20.0)
    console = Console(highlight=False)
    with tempfile.TemporaryDirectory(prefix="dfstream-bench-") as tmp:
        clip = write_synthetic_clip(Path(tmp) / "clip.mp4", seconds=seconds)
        config = AnalyzeConfig(
            sources=(str(clip),),
            untrained=True,
            detector="none",
            backend=args.backend,
            device=args.device,
            batch=args.batch,
            window=20,
            stride=5,
        )
        run = prepare(config, console=console)
        started = time.perf_counter()
        (summary,) = run.execute()
        elapsed = time.perf_counter() - started
    table = Table(title=f"dfstream bench ({run.backend.describe()}, untrained model)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("clip", f"{seconds:.0f} s, 320x240, 25 fps, H.264")
    table.add_row("frames", str(summary.frames_decoded))
    table.add_row("crops embedded", str(summary.crops_embedded))
    table.add_row("windows scored", str(summary.windows_scored))
    table.add_row("wall time s", f"{elapsed:.2f}")
    table.add_row("frames/s", f"{summary.frames_decoded / elapsed:.1f}")
    table.add_row("crops/s", f"{summary.crops_embedded / elapsed:.1f}")
    table.add_row("mean batch", f"{run.pipeline.batch_stats.mean_size:.1f}")
    table.add_row("machine", f"{platform.machine()}, {platform.python_version()}")
    console.print(table)
    return 0 if summary.error is None else 3
