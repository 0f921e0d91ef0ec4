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
from dfstream.config import AnalyzeConfig
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
  dfstream export ...        ONNX export of a model + parity check (see export --help)
  dfstream engine build ...  TensorRT engines from the ONNX export (see engine --help)
  dfstream doctor            versions, devices, and which backends work here (and why not)
  dfstream bench [--quick]   throughput, per-stage rates and latency of the whole pipeline
                             on a generated clip (see dfstream bench --help)
"""

# Subcommands, each a module with ``main(argv) -> int``; imported only when used.
SUBCOMMANDS: dict[str, str] = {
    "bench": "dfstream.bench",
    "export": "dfstream.export_cli",
    "engine": "dfstream.engine_cli",
    "doctor": "dfstream.doctor",
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


def _reconnect(text: str) -> int | None:
    from dfstream.sources import parse_reconnect

    try:
        return parse_reconnect(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream SOURCE...``."""
    p = _Parser(
        prog="dfstream",
        description="Streaming deepfake analysis of video files, folders and live streams: "
        "finds and tracks faces and scores each one over sliding windows.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="video file, folder of videos, rtsp:// rtsps:// http(s):// URL (HLS .m3u8 too), "
        "udp://HOST:PORT (MPEG-TS), or webcam, webcam:N, /dev/videoN",
    )
    p.add_argument(
        "--sources",
        dest="source_list",
        type=Path,
        metavar="FILE",
        help="read more sources from FILE, one per line ('#' comments allowed)",
    )
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
        "--analysis-fps",
        type=_positive_float,
        help="analyse at most F frames/s (default: all frames of files, 10 fps of live sources)",
    )
    p.add_argument("--window", type=_positive_int, help="frames per window T (default: model's)")
    p.add_argument("--stride", type=_positive_int, default=5, help="new crops between windows")
    p.add_argument("--batch", type=_positive_int, default=16, help="crops per CNN batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--backend",
        default="auto",
        help="auto, torch, onnx or tensorrt (default auto: TensorRT, else torch CUDA, else the "
        "fastest CPU option for the batch size; the summary says which and why)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="CNN precision: auto = fp16 on CUDA/TensorRT, bf16 on CPUs with native bf16, "
        "else fp32 (default auto; fp32 is the reference)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads of torch or ONNX Runtime inference (default: one per core)",
    )
    p.add_argument(
        "--onnx-cache", type=Path, help="ONNX export cache (default ~/.cache/dfstream/onnx)"
    )
    p.add_argument("--engine-dir", type=Path, help="TensorRT engine folder (default engines/)")
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="torch on CUDA: replay CUDA graphs per batch shape",
    )
    p.add_argument("--threshold", type=_probability, default=0.5, help="FAKE above this score")
    p.add_argument("--jsonl", metavar="PATH|-", help="write events as JSON lines ('-' = stdout)")
    p.add_argument(
        "--overlay",
        type=Path,
        metavar="OUT.mp4",
        help="write the video with score-coloured face boxes and a score timeline (H.264 MP4; "
        "one file per source, named OUT-<source>.mp4, when there are several)",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="OUT.json",
        help="write a JSON report (score series, verdicts, timings, settings) and OUT.png, "
        "a plot of each face's score over time",
    )
    p.add_argument(
        "--max-seconds", type=_positive_float, help="stop each source after S seconds of video"
    )
    p.add_argument("--no-dashboard", action="store_true", help="plain log lines, no dashboard")
    p.add_argument(
        "--fail-on-fake", action="store_true", help="exit 1 when any source is judged FAKE"
    )
    live = p.add_argument_group(
        "live sources (RTSP, HTTP/HLS, UDP, webcams)",
        "Sources: rtsp:// rtsps:// http(s):// (files, HLS .m3u8), udp:// (MPEG-TS), webcam,\n"
        "webcam:N, /dev/videoN (v4l2; avfoundation on macOS; dshow on Windows: webcam:NAME).\n"
        "Live frames wait in a small queue that drops the oldest frame when analysis\n"
        "falls behind (files never drop); live sources are analysed at 10 fps unless\n"
        "--analysis-fps is given. A source that fails at start-up is reported and\n"
        "skipped; once connected, outages are retried with exponential backoff + jitter.",
    )
    live.add_argument(
        "--open-timeout", type=_positive_float, default=10.0, metavar="S",
        help="give up connecting after S seconds (default 10)",
    )  # fmt: skip
    live.add_argument(
        "--read-timeout", type=_positive_float, default=10.0, metavar="S",
        help="a read waiting S seconds for data counts as a disconnect (default 10)",
    )  # fmt: skip
    live.add_argument(
        "--stall-timeout", type=_positive_float, default=10.0, metavar="S",
        help="connected but no frame for S seconds: report stalled and reconnect (default 10)",
    )  # fmt: skip
    live.add_argument(
        "--reconnect", type=_reconnect, default=None, metavar="N|forever",
        help="reconnect attempts per outage (default forever; files never reconnect)",
    )  # fmt: skip
    live.add_argument(
        "--rtsp-transport", choices=("tcp", "udp"), default="tcp",
        help="RTP transport for rtsp:// (default tcp: no packet loss through NAT/firewalls)",
    )  # fmt: skip
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"dfstream {__version__}")
    return p


def default_cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/dfstream/<kind>``, else ``~/.cache/dfstream/<kind>`` (CLI edge only)."""
    root = os.environ.get("XDG_CACHE_HOME")
    return (Path(root) if root else Path.home() / ".cache") / "dfstream" / kind


def config_from_args(args: argparse.Namespace) -> AnalyzeConfig:
    """Build the run's frozen config from parsed arguments."""
    from dfstream.sources import read_source_list

    sources = list(args.sources)
    if args.source_list is not None:
        sources += read_source_list(args.source_list)
    if not sources:
        raise UsageError("no sources: pass a file, folder, URL or webcam, or --sources FILE")
    try:
        return AnalyzeConfig(
            sources=tuple(sources),
            weights=args.weights,
            untrained=args.untrained,
            seed=args.seed,
            detector=args.detector,
            detector_model=args.detector_model,
            model_cache=default_cache_dir("models"),
            detect_every=args.detect_every,
            analysis_fps=args.analysis_fps,
            window=args.window,
            stride=args.stride,
            batch=args.batch,
            device=args.device,
            backend=args.backend,
            precision=args.precision,
            threads=args.threads,
            onnx_cache=args.onnx_cache or default_cache_dir("onnx"),
            engine_dir=args.engine_dir,
            cuda_graphs=args.cuda_graphs,
            threshold=args.threshold,
            jsonl=args.jsonl,
            overlay=args.overlay,
            report=args.report,
            max_seconds=args.max_seconds,
            dashboard=not args.no_dashboard,
            fail_on_fake=args.fail_on_fake,
            debug=args.debug,
            open_timeout=args.open_timeout,
            read_timeout=args.read_timeout,
            stall_timeout=args.stall_timeout,
            reconnect=args.reconnect,
            rtsp_transport=args.rtsp_transport,
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
    from dfstream.sinks.console import summary_table
    from dfstream.sinks.dashboard import live_view

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    to_stdout = config.jsonl == "-"
    err = Console(stderr=True, highlight=False)
    out = err if to_stdout else Console(highlight=False)
    interrupts = _Interrupts()
    interrupts.install()
    # With the dashboard, notices go through its console so that they print above it.
    dashboard = config.dashboard and out.is_terminal
    run = prepare(config, console=out if dashboard else err)
    interrupts.on_first = run.pipeline.stop
    if interrupts.count:  # Ctrl-C while the model was loading: stop before any decoding
        run.pipeline.stop()
    if run.loaded.untrained and not dashboard:  # the dashboard shows a banner instead
        err.print("dfstream: UNTRAINED model: scores are meaningless (pipeline check only)")
    snapshots = lambda: [s.snapshot() for s in run.pipeline.states.values()]  # noqa: E731
    view = live_view(
        snapshots,
        out,
        dashboard=dashboard,
        backend=run.backend.describe(),
        untrained=run.loaded.untrained,
        scoring=run.pipeline.settings.scoring,
    )
    with view:
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


def _redact(text: str) -> str:
    from dfstream.sources import redact

    return redact(text)


def _run_subcommand(name: str, argv: list[str]) -> int:
    module = importlib.import_module(SUBCOMMANDS[name])
    return int(module.main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; never lets an expected error out as a traceback.

    Run as a program (``argv`` None), an interrupted run leaves with ``os._exit`` once every
    output is finalised and flushed: the interpreter's own teardown (torch, threads still
    blocked in FFmpeg on a dead socket) can take seconds, and Ctrl-C must end within 5 s.
    """
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None and code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return _run_subcommand(argv[0], argv[1:])
        return analyze(argv)
    except DfstreamError as exc:
        if debug:
            traceback.print_exc()
        print(f"dfstream: error: {_redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 5
        if debug:
            traceback.print_exc()
        print(
            f"dfstream: internal error: {type(exc).__name__}: {_redact(str(exc))} (rerun with "
            "--debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 5
