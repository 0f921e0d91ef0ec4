"""The ``index`` and ``preprocess`` commands: argument namespace in, files and a summary out."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rich.console import Console

from training.cache import CropSettings
from training.datasets import build_index
from training.manifest import read_manifest, write_manifest
from training.preprocess import DetectorChoice, default_workers, run_preprocess


def cmd_index(args: argparse.Namespace, console: Console) -> int:
    """Index the given datasets into ``--out``; one warning line per listed-but-missing file."""
    entries = build_index(
        ffpp=args.ffpp,
        dfdc=args.dfdc,
        celebdf=args.celebdf,
        real=args.real,
        fake=args.fake,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        warn=lambda msg: console.print(f"training: warning: {msg}", highlight=False),
    )
    write_manifest(args.out, entries)
    counts = Counter((e.split, e.label) for e in entries)
    parts = ", ".join(f"{split} {label} {n}" for (split, label), n in sorted(counts.items()))
    console.print(f"training: {len(entries)} videos -> {args.out} ({parts})", highlight=False)
    return 0


def cmd_preprocess(args: argparse.Namespace, console: Console, *, model_cache: Path) -> int:
    """Crop every manifest video into the cache ``--out`` (resumable)."""
    entries = read_manifest(args.manifest)
    excluded = sum(e.split == "excluded" for e in entries)
    if excluded:
        console.print(f"training: {excluded} videos of split 'excluded' are not cropped")
        entries = [e for e in entries if e.split != "excluded"]
    settings = CropSettings(
        size=args.size,
        margin=args.margin,
        color_order=args.color_order,
        frames=args.frames,
        run_length=args.run_length,
        detector=args.detector,
        detect_every=args.detect_every,
    )
    choice = DetectorChoice(args.detector, args.detector_model, model_cache)
    workers = args.workers if args.workers is not None else default_workers()
    counts = run_preprocess(entries, args.out, settings, choice, workers=workers, console=console)
    console.print(
        f"training: {counts['done']} videos cropped ({counts['crops']} crops), "
        f"{counts['skipped']} already cached, {counts['failed']} failed -> {args.out}",
        highlight=False,
    )
    return 3 if counts["failed"] else 0
