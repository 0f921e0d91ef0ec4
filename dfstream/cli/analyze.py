"""``dfstream SOURCE...``: analyse files, folders and live streams from the command line.

Builds the run's ``AnalysisConfig`` and ``OutputConfig`` from the arguments, runs it through
the library API (``dfstream.Analysis``) with the dashboard or plain progress lines, prints the
summary table and decides the exit code (``dfstream.errors.ExitCode``).
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console

from dfstream import __version__
from dfstream.cli.args import (
    EXIT_CODES_HELP,
    Parser,
    default_cache_dir,
    default_model_override,
    positive_float,
    positive_int,
    probability,
)
from dfstream.config import BACKENDS, DETECTORS, PRECISIONS, AnalysisConfig, OutputConfig
from dfstream.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from dfstream.api import RunResult
    from dfstream.cluster.live import RayAnalysis

EPILOG = (
    EXIT_CODES_HELP
    + """

other commands:
  dfstream export ...        ONNX export of a model + parity check (see export --help)
  dfstream engine build ...  TensorRT engines from the ONNX export (see engine --help)
  dfstream doctor            versions, devices, and which backends work here (and why not)
  dfstream scan SOURCE...    analyse an archive, each video once, resumable; --ray for a
                             Ray cluster (see dfstream scan --help)
  dfstream gui [SOURCE...]   the desktop app: pick videos, photos, a folder or a stream
  dfstream bench [--quick]   throughput, per-stage rates and latency of the whole pipeline
                             on a generated clip (see dfstream bench --help)
"""
)


def _reconnect(text: str) -> int | None:
    from dfstream.sources import parse_reconnect

    try:
        return parse_reconnect(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream SOURCE...``."""
    p = Parser(
        prog="dfstream",
        description="Streaming deepfake analysis of video files, folders and live streams: "
        "finds and tracks faces and scores each one over sliding windows.",
        epilog=EPILOG,
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
    model.add_argument(
        "--weights",
        type=Path,
        help="dfstream checkpoint or public model_*.pt (default: the model shipped with "
        "dfstream; $DFSTREAM_DEFAULT_MODEL replaces it)",
    )
    model.add_argument(
        "--untrained",
        action="store_true",
        help="random model (deterministic per --seed): for pipeline checks; outputs say untrained",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --untrained (default 0)")
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        default="auto",
        help="face detector: auto = YuNet when its model is found, else Haar; none = whole "
        "frame is the face (default auto)",
    )
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model file")
    p.add_argument(
        "--detect-every", type=positive_int, default=5, help="detect every k-th analysed frame"
    )
    p.add_argument(
        "--detect-size",
        type=positive_int,
        default=640,
        help="longest side in px of the frame the detector sees (640; 320 halves its cost on"
        " HD video with large faces and misses small ones)",
    )
    p.add_argument(
        "--analysis-fps",
        type=positive_float,
        help="analyse at most F frames/s (default: all frames of files, 10 fps of live sources)",
    )
    p.add_argument(
        "--no-relink",
        action="store_true",
        help="keep the tracker's ids: do not give a face that comes back within 2 s, near where "
        "it was lost and looking alike, its old track id",
    )
    p.add_argument("--window", type=positive_int, help="frames per window T (default: model's)")
    p.add_argument("--stride", type=positive_int, default=5, help="new crops between windows")
    p.add_argument("--batch", type=positive_int, default=16, help="crops per CNN batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto, torch, onnx or tensorrt (default auto: TensorRT, else torch CUDA, else the "
        "fastest CPU option for the batch size; the summary says which and why)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="CNN precision: auto = fp16 on CUDA/TensorRT, bf16 on CPUs with native bf16, "
        "else fp32 (default auto; fp32 is the reference)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
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
    p.add_argument(
        "--threshold",
        type=probability,
        help="FAKE at or above this score (default: the threshold calibrated for the model, "
        "stored in its checkpoint, else 0.5)",
    )
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
        "--max-seconds", type=positive_float, help="stop each source after S seconds of video"
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
        "--open-timeout", type=positive_float, default=10.0, metavar="S",
        help="give up connecting after S seconds (default 10)",
    )  # fmt: skip
    live.add_argument(
        "--read-timeout", type=positive_float, default=10.0, metavar="S",
        help="a read waiting S seconds for data counts as a disconnect (default 10)",
    )  # fmt: skip
    live.add_argument(
        "--stall-timeout", type=positive_float, default=10.0, metavar="S",
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
    ops = p.add_argument_group(
        "operations: metrics and alerts",
        "Prometheus metrics per stream (frames, corrupt frames, reconnects, state, verdict,\n"
        "score, latency, batch sizes) and one alert per FAKE episode, with a JPEG of the face\n"
        "(see the README, 'Metrics and alerts').",
    )
    ops.add_argument(
        "--metrics-port", type=int, metavar="N",
        help="serve Prometheus metrics on http://HOST:N/metrics (0 = any free port)",
    )  # fmt: skip
    ops.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="HOST",
        help="address the metrics server binds (default 127.0.0.1: the metrics name sources)",
    )  # fmt: skip
    ops.add_argument(
        "--webhook", metavar="URL",
        help="POST a JSON alert to URL when a stream's verdict turns FAKE",
    )  # fmt: skip
    ops.add_argument(
        "--mqtt", metavar="URL",
        help="publish the same alert to mqtt://[user:pass@]host[:port]/topic (QoS 1)",
    )  # fmt: skip
    ops.add_argument(
        "--alert-recover", action="store_true",
        help="also alert when a FAKE stream's verdict changes back",
    )  # fmt: skip
    cluster = p.add_argument_group(
        "on a Ray cluster (pip install 'dfstream[ray]'; see docs/scale-out.md)",
        "Each source is analysed by an actor on a cluster node; events come back here.",
    )
    cluster.add_argument(
        "--ray", metavar="ADDRESS", help="auto, or HOST:PORT of the cluster's head"
    )
    cluster.add_argument(
        "--ray-place", action="append", default=[], type=_place_rule, metavar="RULE",
        help="MATCH=label:KEY=VALUE | MATCH=prefer:KEY=VALUE | MATCH=resource:NAME[:N]; "
        "MATCH is * or part of the source (repeatable; default: spread over the nodes)",
    )  # fmt: skip
    cluster.add_argument(
        "--ray-cpus", type=positive_float, default=1.0, metavar="N",
        help="CPUs each stream's actor reserves (and its torch threads; default 1)",
    )  # fmt: skip
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"dfstream {__version__}")
    return p


def _place_rule(text: str) -> object:
    from dfstream.cluster.placement import parse_rule

    try:
        return parse_rule(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--ray-place {text}: ")) from exc


def outputs_from_args(args: argparse.Namespace) -> OutputConfig:
    """The run's outputs from parsed arguments."""
    try:
        return OutputConfig(
            jsonl=args.jsonl,
            overlay=args.overlay,
            report=args.report,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            webhook=args.webhook,
            mqtt=args.mqtt,
            alert_recover=args.alert_recover,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    """The run's frozen analysis config from parsed arguments."""
    from dfstream.sources import read_source_list

    sources = list(args.sources)
    if args.source_list is not None:
        sources += read_source_list(args.source_list)
    if not sources:
        raise UsageError("no sources: pass a file, folder, URL or webcam, or --sources FILE")
    try:
        return AnalysisConfig(
            sources=tuple(sources),
            weights=args.weights,
            untrained=args.untrained,
            default_weights=default_model_override(),
            seed=args.seed,
            detector=args.detector,
            detector_model=args.detector_model,
            model_cache=default_cache_dir("models"),
            detect_every=args.detect_every,
            detect_size=args.detect_size,
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
            max_seconds=args.max_seconds,
            open_timeout=args.open_timeout,
            read_timeout=args.read_timeout,
            stall_timeout=args.stall_timeout,
            reconnect=args.reconnect,
            rtsp_transport=args.rtsp_transport,
            relink=not args.no_relink,
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
            os._exit(ExitCode.INTERRUPTED)
        self.on_first()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def analyze(argv: Sequence[str]) -> int:
    """``dfstream SOURCE...``: run and return the exit code."""
    from dfstream.api import Analysis
    from dfstream.sinks.base import SinkFailure
    from dfstream.sinks.console import EventLog, summary_table
    from dfstream.sinks.dashboard import live_view

    args = build_parser().parse_args(argv)
    config, outputs = config_from_args(args), outputs_from_args(args)
    to_stdout = outputs.jsonl == "-"
    err = Console(stderr=True, highlight=False)
    out = err if to_stdout else Console(highlight=False)
    interrupts = _Interrupts()
    interrupts.install()
    # With the dashboard, notices go through its console so that they print above it.
    dashboard = not args.no_dashboard and out.is_terminal
    console = out if dashboard else err

    def notice(message: str) -> None:
        console.print(f"dfstream: {message}", highlight=False)

    def sink_failed(failure: SinkFailure) -> None:
        console.print(
            f"dfstream: error: output {failure.sink} failed: {failure.reason}",
            highlight=False,
            soft_wrap=True,
        )

    run: Analysis | RayAnalysis
    if args.ray is not None:
        from dfstream.cluster.live import RayAnalysis

        run = RayAnalysis(
            config,
            address=args.ray,
            placement=args.ray_place,
            cpus=args.ray_cpus,
            outputs=outputs,
            sinks=[EventLog(console)],
            on_notice=notice,
            on_sink_failure=sink_failed,
        )
    else:
        run = Analysis(
            config,
            outputs=outputs,
            sinks=[EventLog(console)],
            on_notice=notice,
            on_sink_failure=sink_failed,
        )
    interrupts.on_first = run.stop
    if interrupts.count:  # Ctrl-C while the model was loading: stop before any decoding
        run.stop()
    untrained = run.model.untrained
    if untrained and not dashboard:  # the dashboard shows a banner instead
        err.print("dfstream: UNTRAINED model: scores are meaningless (pipeline check only)")
    view = live_view(
        run.snapshots,
        out,
        dashboard=dashboard,
        backend=run.backend.describe(),
        untrained=untrained,
        scoring=run.settings.scoring,
        model=run.model.name,
    )
    with view:
        run.start()
        while run.running:  # short waits: signal handlers run on this thread
            try:
                run.join(timeout=0.2)
            except TimeoutError:
                continue
        result = run.join()
    table = summary_table(
        result.summaries,
        backend=run.backend.describe(),
        untrained=untrained,
        model=run.model.name,
        threshold=run.settings.scoring.describe_threshold(),
    )
    out.print(table)
    return exit_code_for(result, interrupted=bool(interrupts.count), fail_on_fake=args.fail_on_fake)


def exit_code_for(result: RunResult, *, interrupted: bool, fail_on_fake: bool) -> ExitCode:
    """The exit code of a finished run, the first that applies: interrupted (130), an output
    failed (6), a fake with ``--fail-on-fake`` (1), a source failed (3), else 0."""
    if interrupted:
        return ExitCode.INTERRUPTED
    if result.sink_failures:
        return ExitCode.OUTPUT
    if fail_on_fake and result.any_fake:
        return ExitCode.FAKE
    if result.source_errors:
        return ExitCode.SOURCE
    return ExitCode.OK


def main(argv: list[str]) -> int:
    """The analysis command's entry point for ``dfstream.cli.main``."""
    return int(analyze(argv))
