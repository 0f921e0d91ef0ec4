"""``dfstream export``: write the ONNX files of a model, check them and print their parity.

    dfstream export (--weights W | --untrained [--seed N]) --out DIR [--precision fp32|fp16]

Writes ``cnn.onnx`` (dynamic batch), ``head.onnx`` (fixed T, dynamic batch) and
``dfstream-onnx.json`` (spec, weights identity, precision) into DIR, checks both files with
``onnx.checker`` and prints the largest absolute difference between ONNX Runtime and torch fp32 on
random crops. ``--max-diff`` makes a parity above it an error (exit 5); by default it is 1e-4 for
fp32 and 5e-2 for fp16.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from dfstream.cli.args import Parser, add_model_arguments, model_from_args
from dfstream.errors import BackendUnavailable, UsageError

DEFAULT_MAX_DIFF = {"fp32": 1e-4, "fp16": 5e-2}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream export``."""
    p = Parser(
        prog="dfstream export",
        description="Export a model's CNN and temporal head to ONNX, check them with "
        "onnx.checker and print their parity against torch fp32.",
    )
    add_model_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the ONNX files")
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="fp16 computes in fp16 behind fp32 inputs/outputs (for TensorRT strongly typed "
        "engines); default fp32",
    )
    p.add_argument("--crops", type=int, default=8, help="random crops for the parity check")
    p.add_argument("--max-diff", type=float, help="fail (exit 5) when parity exceeds this")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str]) -> int:
    """Export, check, measure parity; exit 0, or 5 when the parity is above ``--max-diff``."""
    from dfstream.backends.export import describe_meta, export_onnx, parity

    args = build_parser().parse_args(argv)
    if args.crops < 1:
        raise UsageError(f"--crops: expected a whole number >= 1 but got {args.crops}")
    loaded = model_from_args(args)
    console = Console(highlight=False, soft_wrap=True)
    meta = export_onnx(loaded, args.out, precision=args.precision)
    result = parity(loaded, args.out, meta, crops=args.crops, seed=args.seed)
    limit = args.max_diff if args.max_diff is not None else DEFAULT_MAX_DIFF[args.precision]
    ok = result.worst <= limit
    if args.json:
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    **describe_meta(meta),
                    "checker": "passed",
                    "features_max_abs": result.features_max_abs,
                    "scores_max_abs": result.scores_max_abs,
                    "max_diff": limit,
                    "ok": ok,
                }
            )
        )
    else:
        console.print(
            f"exported {loaded.origin} to {args.out} ({args.precision}, T={meta.spec.window}, "
            f"head {meta.spec.head_mode}, opset {meta.onnx_opset})"
        )
        console.print(f"  {meta.cnn_file}, {meta.head_file}: onnx.checker passed")
        console.print(
            f"  parity vs torch fp32 on {result.crops} random crops / {result.windows} windows: "
            f"features max |diff| {result.features_max_abs:.3g}, "
            f"scores max |diff| {result.scores_max_abs:.3g} (limit {limit:g})"
        )
    if not ok:
        raise BackendUnavailable(
            f"ONNX parity {result.worst:.3g} exceeds {limit:g}: the export does not reproduce "
            "the torch model; report this with `dfstream doctor` output"
        )
    return 0
