"""The ``dfstream`` command: argument parsing, signals, one-line errors and exit codes.

This is the only module that catches ``DfstreamError``, reads environment variables, or decides
an exit code. Exit codes (also in ``--help`` and the README):

    0  done (whatever the verdicts)
    1  a fake was found and --fail-on-fake was given
    2  usage error (bad flag or value)
    3  a source could not be opened or decoded (the other sources still ran)
    4  weights missing, unsafe or not fitting the model
    5  inference backend or device unavailable, or an internal error
    6  an output file cannot be written
    130 interrupted (Ctrl-C / SIGTERM) after finalising outputs
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from rich.console import Console

from dfstream import __version__
from dfstream.errors import DfstreamError, UsageError

EXIT_OK = 0
EXIT_FAKE = 1
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    done (whatever the verdicts)
  1    a fake was found and --fail-on-fake was given
  2    usage error
  3    a source could not be opened or decoded (other sources still ran)
  4    weights missing, unsafe, or not fitting the model
  5    backend/device unavailable or internal error
  6    an output file cannot be written
  130  interrupted (outputs are still finalised)

other commands:
  dfstream bench [--quick]   throughput, per-stage rates and latency of the whole pipeline
                             on a generated clip (see dfstream bench --help)
"""

# Subcommands, each a module with ``main(argv) -> int``; imported only when used.
SUBCOMMANDS: dict[str, str] = {
    "bench": "dfstream.bench",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 but got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0 but got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] but got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream SOURCE...``."""
    p = _Parser(
        prog="dfstream",
        description="Streaming deepfake analysis of video files, folders and live streams: "
        "finds and tracks faces and scores each one over sliding windows.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="video file or folder of videos")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, help="dfstream checkpoint or public model_*.pt")
    model.add_argument(
        "--untrained",
        action="store_true",
        help="random model (deterministic per --seed): for pipeline checks; outputs say untrained",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --untrained (default 0)")
    p.add_argument(
        "--detector",
        choices=("auto", "yunet", "haar", "none"),
        default="auto",
        help="face detector: auto = YuNet when its model is found, else Haar; none = whole "
        "frame is the face (default auto)",
    )
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model file")
    p.add_argument(
        "--detect-every", type=_positive_int, default=5, help="detect every k-th analysed frame"
    )
    p.add_argument(
        "--analysis-fps", type=_positive_float, help="analyse at most F frames/s (default: all)"
    )
    p.add_argument("--window", type=_positive_int, help="frames per window T (default: model's)")
    p.add_argument("--stride", type=_positive_int, default=5, help="new crops between windows")
    p.add_argument("--batch", type=_positive_int, default=16, help="crops per CNN batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backend", default="auto", help="inference backend (default auto)")
    p.add_argument("--threshold", type=_probability, default=0.5, help="FAKE above this score")
    p.add_argument("--jsonl", metavar="PATH|-", help="write events as JSON lines ('-' = stdout)")
    p.add_argument(
        "--max-seconds", type=_positive_float, help="stop each source after S seconds of video"
    )
    p.add_argument("--no-dashboard", action="store_true", help="plain log lines, no dashboard")
    p.add_argument(
        "--fail-on-fake", action="store_true", help="exit 1 when any source is judged FAKE"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"dfstream {__version__}")
    return p


def _model_cache() -> Path:
    from dfstream.faces import default_model_cache

    return default_model_cache(xdg_cache_home=os.environ.get("XDG_CACHE_HOME"))


def config_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Build the run's frozen config from parsed arguments."""
    from dfstream.config import AnalyzeConfig

    try:
        return AnalyzeConfig(
            sources=tuple(args.sources),
            weights=args.weights,
            untrained=args.untrained,
            seed=args.seed,
            detector=args.detector,
            detector_model=args.detector_model,
            model_cache=_model_cache(),
            detect_every=args.detect_every,
            analysis_fps=args.analysis_fps,
            window=args.window,
            stride=args.stride,
            batch=args.batch,
            device=args.device,
            backend=args.backend,
            threshold=args.threshold,
            jsonl=args.jsonl,
            max_seconds=args.max_seconds,
            dashboard=not args.no_dashboard,
            fail_on_fake=args.fail_on_fake,
            debug=args.debug,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


class _Interrupts:
    """First SIGINT/SIGTERM: stop sources and finish normally. Second: leave at once."""

    def __init__(self) -> None:
        self.count = 0
        self.on_first: Callable[[], None] = lambda: None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            os._exit(EXIT_INTERRUPTED)
        self.on_first()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def analyze(argv: Sequence[str]) -> int:
    """``dfstream SOURCE...``: run and return the exit code."""
    from dfstream.app import prepare
    from dfstream.sinks.console import ProgressLog, summary_table

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    to_stdout = config.jsonl == "-"
    err = Console(stderr=True, highlight=False)
    out = err if to_stdout else Console(highlight=False)
    interrupts = _Interrupts()
    interrupts.install()
    run = prepare(config, console=err)
    interrupts.on_first = run.pipeline.stop
    if run.loaded.untrained:
        err.print("dfstream: UNTRAINED model: scores are meaningless (pipeline check only)")
    snapshots = lambda: [s.snapshot() for s in run.pipeline.states.values()]  # noqa: E731
    with ProgressLog(snapshots, err):
        summaries = run.execute()
    out.print(
        summary_table(summaries, backend=run.backend.describe(), untrained=run.loaded.untrained)
    )
    if interrupts.count:
        return EXIT_INTERRUPTED
    if config.fail_on_fake and any(s.verdict.value == "FAKE" for s in summaries):
        return EXIT_FAKE
    if any(s.error for s in summaries):
        return EXIT_SOURCE
    return EXIT_OK


def _run_subcommand(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SUBCOMMANDS[name])
    return int(module.main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; never lets an expected error out as a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return _run_subcommand(argv[0], argv[1:])
        return analyze(argv)
    except DfstreamError as exc:
        if debug:
            traceback.print_exc()
        print(f"dfstream: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 5
        if debug:
            traceback.print_exc()
        print(
            f"dfstream: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 5
