"""``dfstream scan SOURCES... [--ray auto|ADDRESS]``: analyse an archive of videos, each once.

Locally the workers are processes on this machine; with ``--ray`` they are actors on a Ray
cluster. Everything else (inputs, scheduling and retries, outputs, progress, resume) is the
same code (``dfstream.scan``). Exit codes: 0 every video analysed, 3 some video failed twice
(or none was found, or the cluster cannot be reached), 1 with ``--fail-on-fake`` when a video
is FAKE, 130 interrupted (what was done is kept: rerun to resume), as listed by ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from dfstream.cli.args import (
    Parser,
    add_model_arguments,
    default_cache_dir,
    default_model_override,
    positive_float,
    positive_int,
    probability,
)
from dfstream.config import BACKENDS, DETECTORS, PRECISIONS, AnalysisConfig
from dfstream.errors import ExitCode, UsageError
from dfstream.scan.executor import Executor, ProcessExecutor, local_specs
from dfstream.scan.inputs import collect
from dfstream.scan.progress import ScanProgress
from dfstream.scan.results import REPORT_NAME, VERDICTS_NAME, ScanResults
from dfstream.scan.schedule import Done, Failed, Report, Scheduler
from dfstream.scan.worker import WorkerSpec

DEFAULT_OUT = Path("dfstream-scan")
EPILOG = """exit codes:
  0    every video was analysed
  1    a video is FAKE and --fail-on-fake was given
  2    usage error
  3    a video failed every try (--attempts; see report.json), none was found, or --ray
       cannot be used
  4    weights missing, unsafe, or not fitting the model
  5    backend or device unavailable, or an internal error
  6    an output in --out cannot be written
  130  interrupted (Ctrl-C / SIGTERM): what was done is kept; rerun to resume
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream scan``."""
    p = Parser(
        prog="dfstream scan",
        description="Analyse every video of an archive once, on worker processes here or on "
        "the actors of a Ray cluster (--ray); rerun the same command to resume.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="video file, folder (recursive), glob ('**' crosses folders), CSV list (a "
        "video/path column, else the first) or text list (.txt/.lst: one path per line)",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help=f"output folder: results.jsonl, {VERDICTS_NAME}, {REPORT_NAME} (default "
        f"{DEFAULT_OUT}); videos already in it are skipped",
    )  # fmt: skip
    p.add_argument("--fresh", action="store_true", help="forget what --out holds; start over")
    p.add_argument(
        "--events", action="store_true", help="also write each video's score and verdict events"
    )
    p.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="run the workers on a Ray cluster: auto (the one this machine is part of) or "
        "HOST:PORT of its head (needs pip install 'dfstream[ray]')",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=positive_int,
        help="number of workers (default: one per GPU, else CPU cores / --cpus-per-worker)",
    )  # fmt: skip
    p.add_argument(
        "--cpus-per-worker", type=positive_int, default=2, metavar="N",
        help="CPU cores per worker, also its torch threads (default 2)",
    )  # fmt: skip
    p.add_argument(
        "--attempts", type=positive_int, default=2,
        help="tries per video before it is reported failed (default 2)",
    )  # fmt: skip
    p.add_argument(
        "--video-timeout", type=positive_float, metavar="S", help="give up a video after S s"
    )
    p.add_argument("--fail-on-fake", action="store_true", help="exit 1 when a video is FAKE")
    add_model_arguments(p)
    p.add_argument("--detector", choices=DETECTORS, default="auto", help="face detector")
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model file")
    p.add_argument("--detect-every", type=positive_int, default=5, help="detect every k-th frame")
    p.add_argument("--analysis-fps", type=positive_float, help="analyse at most F frames/s")
    p.add_argument("--stride", type=positive_int, default=5, help="new crops between windows")
    p.add_argument("--batch", type=positive_int, default=16, help="crops per CNN batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="CNN precision")
    p.add_argument(
        "--threshold",
        type=probability,
        help="FAKE at or above this score (default: the model's calibrated threshold, else 0.5)",
    )
    p.add_argument("--max-seconds", type=positive_float, help="analyse S s of each video")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def spec_from_args(args: argparse.Namespace) -> WorkerSpec:
    """How every worker analyses, from parsed arguments: every ``AnalysisConfig`` field that
    has a flag of the same name here, plus the cache folders."""
    names = {f.name for f in dataclasses.fields(AnalysisConfig)} - {"sources"}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    try:
        config = AnalysisConfig(
            **values,
            default_weights=default_model_override(),
            model_cache=default_cache_dir("models"),
            onnx_cache=default_cache_dir("onnx"),
        )
        return WorkerSpec(config=config, events=args.events, video_timeout=args.video_timeout)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def make_executor(args: argparse.Namespace, spec: WorkerSpec, ray: ModuleType | None) -> Executor:
    """Ray actors on the cluster ``ray`` joined (``--ray``), else local worker processes."""
    if ray is not None:
        from dfstream.cluster.scan import RayExecutor

        return RayExecutor(
            ray, spec, workers=args.workers, cpus_per_worker=args.cpus_per_worker, address=args.ray
        )
    specs = local_specs(spec, workers=args.workers, cpus_per_worker=args.cpus_per_worker)
    return ProcessExecutor(specs)


class _Stop:
    """First SIGINT/SIGTERM: stop handing out videos and finish the outputs. Second: leave."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            os._exit(ExitCode.INTERRUPTED)
        self.event.set()

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def summary_table(report: dict[str, Any], results: ScanResults) -> Table:
    """Verdict counts, failures with their reasons, and where the outputs are."""
    table = Table(title="scan", show_header=False, title_justify="left")
    table.add_row("videos", str(report["videos"]))
    for verdict, count in report["verdicts"].items():
        table.add_row(verdict, str(count))
    table.add_row("failed", str(report["failed"]))
    for failure in report["failures"][:10]:
        reason, video = failure["reason"], failure["video"]
        table.add_row("", reason if reason.startswith(video) else f"{video}: {reason}")
    run = report["last_run"]
    if run.get("videos_per_s"):
        table.add_row(
            "this run",
            f"{run['analysed']} analysed, {run['videos_per_s']:.2f} videos/s, "
            f"{run['crops_per_s'] or 0:.0f} crops/s, {run['executor']}",
        )
    table.add_row("outputs", f"{results.path}, {VERDICTS_NAME}, {REPORT_NAME}")
    return table


def scan(argv: Sequence[str]) -> int:
    """``dfstream scan``: run and return the exit code."""
    args = build_parser().parse_args(argv)
    spec = spec_from_args(args)
    inputs = collect(args.sources)
    console = Console(stderr=True, highlight=False)
    for note in inputs.notes:
        console.print(f"dfstream: {note}", markup=False)
    ray = None
    if args.ray is not None:  # before any output: an unreachable cluster changes nothing
        from dfstream.cluster.connect import connect

        ray = connect(args.ray)
    stop = _Stop()
    stop.install()
    executor: Executor | None = None
    todo_count = 0
    results = ScanResults.open(args.out, fresh=args.fresh)
    progress = ScanProgress(console, total=0)
    lost: list[str] = []
    try:
        todo = [v.key for v in inputs.videos if v.key not in results.done]
        todo_count = len(todo)
        skipped = len(inputs.videos) - len(todo)
        console.print(
            f"dfstream: {len(inputs.videos)} video(s), {skipped} already in {results.path}, "
            f"{len(todo)} to analyse",
            markup=False,
        )
        for path in inputs.missing:
            results.write_failed(Failed(path, ("no such file or folder",), ()))
        if todo:
            executor = make_executor(args, spec, ray)
            if spec.config.untrained:
                console.print("dfstream: UNTRAINED model: scores are meaningless")
            results.write_start({"executor": executor.description, "videos": len(todo)})
            progress = ScanProgress(console, total=len(todo))

            def report(item: Report) -> None:
                if isinstance(item, Done):
                    results.write_done(item)
                else:
                    results.write_failed(item)
                progress.add(item)

            def on_lost(worker: str, reason: str) -> None:
                lost.append(reason)
                progress.note(reason)

            with progress:
                Scheduler(
                    todo, executor, report=report, on_lost=on_lost, attempts=args.attempts
                ).run(stop.event)
    finally:
        if executor is not None:
            executor.close()
        rates = progress.rates()
        final = results.finish(
            {
                "executor": executor.description if executor else "none",
                "to_analyse": todo_count,
                "analysed": progress.done,
                "failed": progress.failed,
                "wall_s": round(progress.elapsed_s, 3),
                "lost_workers": lost,
                "interrupted": stop.event.is_set(),
                **{k: None if v is None else round(v, 4) for k, v in rates.items()},
            }
        )
        results.close()
    Console(highlight=False).print(summary_table(final, results))
    if stop.event.is_set():
        return ExitCode.INTERRUPTED
    if args.fail_on_fake and final["verdicts"].get("FAKE"):
        return ExitCode.FAKE
    return ExitCode.SOURCE if final["failed"] else ExitCode.OK


def main(argv: list[str]) -> int:
    """The scan command's entry point for ``dfstream.cli.main``."""
    return int(scan(argv))
