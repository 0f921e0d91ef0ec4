"""What every dfstream command shares: one argument parser class (a usage error is one line and
exit code 2), value checkers, the model flags of ``export`` and ``engine``, and the cache
folders (this package is the edge: the only place that reads environment variables)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from dfstream.errors import ExitCode, UsageError

if TYPE_CHECKING:  # torch is imported only when a command loads a model
    from dfstream.model.checkpoint import LoadedModel

EXIT_CODES_HELP = "exit codes:\n" + "\n".join(
    f"  {int(code):<4} {code.meaning}" for code in ExitCode
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises ``UsageError`` (one line, exit code 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 but got {text}")
    return value


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0 but got {text}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] but got {text}")
    return value


def default_cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/dfstream/<kind>``, else ``~/.cache/dfstream/<kind>``."""
    root = os.environ.get("XDG_CACHE_HOME")
    return (Path(root) if root else Path.home() / ".cache") / "dfstream" / kind


def default_model_override() -> Path | None:
    """``$DFSTREAM_DEFAULT_MODEL``: a checkpoint that replaces the shipped default model (for
    a newer model, or tests), else None (the shipped file)."""
    from dfstream.model.shipped import DEFAULT_MODEL_ENV

    value = os.environ.get(DEFAULT_MODEL_ENV)
    return Path(value).expanduser() if value else None


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--weights W | --untrained [--seed N] [--window T]``, shared by export and engine."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--weights", type=Path, help="dfstream checkpoint or public model_*.pt")
    group.add_argument("--untrained", action="store_true", help="deterministic random model")
    p.add_argument("--seed", type=int, default=0, help="seed of --untrained (default 0)")
    p.add_argument("--window", type=int, help="frames per window T (default: the model's)")


def model_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model named by ``add_model_arguments`` flags (neither: the default model)."""
    from dfstream.model.checkpoint import LoadedModel, load_weights, untrained_model
    from dfstream.model.shipped import load_default_model

    if args.window is not None and args.window < 1:
        raise UsageError(f"--window: expected a whole number >= 1 but got {args.window}")
    if args.weights is not None:
        return load_weights(args.weights, window=args.window)
    if args.untrained:
        loaded = untrained_model(seed=args.seed)
        if args.window is not None:
            spec = loaded.spec.replace(window=args.window)
            return LoadedModel(loaded.model, spec, loaded.kind, loaded.origin, loaded.info)
        return loaded
    return load_default_model(default_model_override(), window=args.window)
