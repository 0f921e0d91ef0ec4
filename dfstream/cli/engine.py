"""``dfstream engine build``: TensorRT engines for a model, built from its ONNX export.

    dfstream engine build (--weights W | --untrained [--seed N]) [--precision fp16|fp32]
                          [--max-batch N] [--opt-batch N] [--engine-dir DIR] [--force]

Engines and their key (TensorRT version, GPU compute capability, precision, shapes, weights
identity) go to ``engines/`` by default. Engines that already fit are kept ("up to date"); engines
that do not fit are rebuilt only with ``--force``, otherwise refused with what does not fit. The
build itself is written against the TensorRT 10/11 documentation and has not been run here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from dfstream.cli.args import Parser, add_model_arguments, default_cache_dir, model_from_args
from dfstream.errors import BackendUnavailable, UsageError


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream engine``."""
    p = Parser(
        prog="dfstream engine",
        description="Build TensorRT engines (NVIDIA GPU + TensorRT needed) from the ONNX export.",
    )
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    b = sub.add_parser("build", help="build (or check) the engines of a model")
    add_model_arguments(b)
    b.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default fp16")
    b.add_argument("--max-batch", type=int, default=64, help="largest batch (default 64)")
    b.add_argument("--opt-batch", type=int, help="batch TensorRT tunes for (default max-batch)")
    b.add_argument("--engine-dir", type=Path, default=Path("engines"), help="default engines/")
    b.add_argument("--onnx-cache", type=Path, help="ONNX export cache (default ~/.cache/...)")
    b.add_argument("--device", default="cuda", help="cuda or cuda:N (default cuda)")
    b.add_argument("--force", action="store_true", help="rebuild engines that do not fit")
    b.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: list[str]) -> int:
    """Build or verify the engines; exit 0, 5 when TensorRT/GPU is missing or a build fails."""
    args = build_parser().parse_args(argv)
    if args.max_batch < 1 or (args.opt_batch is not None and args.opt_batch < 1):
        raise UsageError("--max-batch/--opt-batch: expected whole numbers >= 1")
    import torch

    from dfstream.backends.engines import (
        EnginePaths,
        build_engines,
        check_engines,
        refuse_message,
        wanted_key,
    )
    from dfstream.backends.export import cached_export
    from dfstream.backends.tensorrt_backend import TRT_NEEDS, import_tensorrt
    from dfstream.backends.torch_backend import resolve_torch_device

    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"dfstream engine build: torch sees no CUDA GPU; {TRT_NEEDS}")
    device = resolve_torch_device(args.device)
    loaded = model_from_args(args)
    major, minor = torch.cuda.get_device_capability(device)
    key = wanted_key(
        loaded,
        tensorrt_version=str(trt.__version__),
        compute_capability=f"{major}.{minor}",
        precision=args.precision,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
    )
    paths = EnginePaths.of(args.engine_dir, key)
    problems = check_engines(paths, key)
    console = Console(highlight=False, soft_wrap=True)
    if not problems:
        console.print(f"engines up to date: {paths.cnn}, {paths.head} ({paths.key.name})")
        return 0
    if problems != ["not built yet"] and not args.force:
        raise BackendUnavailable(
            refuse_message(paths, problems, "dfstream engine build ... --force")
        )
    onnx_cache = args.onnx_cache or default_cache_dir("onnx")
    with torch.cuda.device(device):
        build_engines(
            trt,
            paths,
            key,
            lambda prec: cached_export(loaded, onnx_cache, precision=prec, notice=console.print),
            notice=console.print,
        )
    console.print(f"built {paths.cnn} and {paths.head}; key in {paths.key}")
    return 0
