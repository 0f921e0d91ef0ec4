"""``python -m benchmarks.scan_overhead``: what a scan worker costs per video, in-process, as a
local worker process, and as a Ray actor, measured side by side in one run.

The same generated clips go through one worker of each kind, one video at a time and
interleaved (each clip through every worker in turn, so load drift hits all alike): in this
process (``ScanWorker`` called directly: the analysis alone), behind ``ProcessExecutor`` (one
spawned process, pipes), and behind ``RayExecutor`` (one actor of a local Ray instance started
here by ``ray.init`` and shut down at the end). For each it reports the start-up time (until
the worker has its model loaded), the median seconds per video as the worker measured it and as
the driver saw it (submit to result), their difference (the executor's overhead per video),
and crops/s per worker. A second table times what the worker avoids by keeping one persistent
analysis: building a new ``Analysis`` per video around the already loaded model, per backend.
Writes JSON and a Markdown table with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.report import fmt, markdown_table, rich_table, write_outputs
from dfstream.config import AnalysisConfig
from dfstream.scan.executor import Executor, Finished, ProcessExecutor
from dfstream.scan.worker import Job, ScanWorker, WorkerSpec
from dfstream.tools.benchkit import machine_info
from dfstream.tools.synth import write_synthetic_clip


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.scan_overhead``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.scan_overhead", description=__doc__)
    p.add_argument("--videos", type=int, default=10, help="clips per executor (10)")
    p.add_argument("--seconds", type=float, default=1.6, help="seconds per clip (1.6)")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--backend", default="torch")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each worker (1)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    p.add_argument("--json", type=Path, help="write JSON here and a Markdown table beside it")
    return p


def _until_ready(executor: Executor, timeout_s: float = 600.0) -> float:
    started = time.perf_counter()
    while not executor.idle():
        executor.wait(0.05)
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError("the worker did not start")
    return time.perf_counter() - started


class _Tally:
    """Per-video figures of one executor."""

    def __init__(self, name: str, startup_s: float, run_one: Any) -> None:
        self.name, self.startup_s, self.run_one = name, startup_s, run_one
        self.worker_s: list[float] = []
        self.driver_s: list[float] = []
        self.crops = 0

    def run(self, clip: Path) -> None:
        started = time.perf_counter()
        result = self.run_one(str(clip))
        self.driver_s.append(time.perf_counter() - started)
        if not result.ok:
            raise RuntimeError(f"{clip}: {result.error}")
        self.worker_s.append(result.seconds)
        self.crops += result.crops

    def row(self) -> dict[str, Any]:
        overhead = [d - w for d, w in zip(self.driver_s, self.worker_s, strict=True)]
        return {
            "executor": self.name,
            "startup_s": self.startup_s,
            "videos": len(self.worker_s),
            "median_worker_video_s": statistics.median(self.worker_s),
            "median_driver_video_s": statistics.median(self.driver_s),
            "median_overhead_ms": 1000 * statistics.median(overhead),
            "crops_per_s_per_worker": self.crops / sum(self.worker_s),
            "crops": self.crops,
        }


def _through(executor: Executor) -> Any:
    def run_one(video: str) -> Any:
        (worker,) = executor.idle()
        executor.submit(worker, Job(video))
        while True:
            for outcome in executor.wait(1.0):
                if isinstance(outcome, Finished):
                    return outcome.result
                raise RuntimeError(f"worker lost: {outcome}")

    return run_one


@contextlib.contextmanager
def _local_ray(temp_dir: Path) -> Iterator[Any]:
    import os

    # A throwaway local instance: without this, ray.init() turns on token authentication and
    # writes a token to ~/.ray/auth_token, which later `ray start` clusters then pick up.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        _temp_dir=str(temp_dir),
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def executor_rows(spec: WorkerSpec, clips: list[Path], *, with_ray: bool) -> list[dict[str, Any]]:
    """One row per executor kind (see the module docstring). The workers are started one
    after the other, then every clip goes through each of them in turn (one analysis at a
    time), so that the machine's load drifts over all of them alike."""
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        worker = ScanWorker(spec, name="in-process")
        stack.callback(worker.close)
        tallies = [
            _Tally("in-process", time.perf_counter() - started, lambda v: worker.analyze(Job(v)))
        ]
        local = ProcessExecutor([spec])
        stack.callback(local.close)
        tallies.append(_Tally("local process", _until_ready(local), _through(local)))
        if with_ray:
            from dfstream.cluster.scan import RayExecutor

            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dfray-", dir="/tmp"))
            ray = stack.enter_context(_local_ray(Path(tmp)))
            actors = RayExecutor(ray, spec, workers=1, cpus_per_worker=spec.threads or 1)
            stack.callback(actors.close)
            tallies.append(_Tally("ray actor", _until_ready(actors), _through(actors)))
        for index, clip in enumerate(clips):
            for turn in range(len(tallies)):  # rotate who goes first
                tallies[(index + turn) % len(tallies)].run(clip)
        return [tally.row() for tally in tallies]


def build_rows(config: AnalysisConfig, clip: Path, backends: list[str]) -> list[dict[str, Any]]:
    """Seconds to build an ``Analysis`` around a loaded model, per backend (median of 3, after
    a first build that fills the ONNX export cache)."""
    from dfstream.api import Analysis, load_model

    loaded = load_model(config)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for backend in backends:
            cfg = replace(config, sources=(str(clip),), backend=backend, onnx_cache=Path(cache))  # type: ignore[arg-type]
            times = []
            for _ in range(4):
                started = time.perf_counter()
                run = Analysis(cfg, model=loaded)
                times.append(time.perf_counter() - started)
                run.close()
            rows.append({"backend": backend, "first_build_s": times[0],
                         "median_build_s": statistics.median(times[1:])})  # fmt: skip
    return rows


def _ray_version() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    return str(ray.__version__)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write JSON and Markdown with ``--json``."""
    args = build_parser().parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        clips = [
            write_synthetic_clip(Path(tmp) / f"clip{i}.mp4", seconds=args.seconds)
            for i in range(args.videos)
        ]
        config = AnalysisConfig(
            untrained=True, detector="none", window=args.window, stride=args.stride,
            batch=args.batch, backend=args.backend, threads=args.threads,
        )  # fmt: skip
        spec = WorkerSpec(config=config, threads=args.threads)
        rows = executor_rows(spec, clips, with_ray=not args.no_ray)
        builds = build_rows(config, clips[0], ["torch", "onnx"])
    header = ["executor", "start-up s", "video s (worker)", "video s (driver)",
              "overhead ms/video", "crops/s per worker"]  # fmt: skip
    table = [
        [r["executor"], fmt(r["startup_s"], 2), fmt(r["median_worker_video_s"], 3),
         fmt(r["median_driver_video_s"], 3), fmt(r["median_overhead_ms"], 1),
         fmt(r["crops_per_s_per_worker"], 1)]
        for r in rows
    ]  # fmt: skip
    build_header = ["backend", "first Analysis build s", "later builds s (median)"]
    build_table = [[b["backend"], fmt(b["first_build_s"], 3), fmt(b["median_build_s"], 3)]
                   for b in builds]  # fmt: skip
    console.print(rich_table("scan worker cost per video", header, table))
    console.print(rich_table("per-video Analysis build (what a persistent one saves)",
                             build_header, build_table))  # fmt: skip
    if args.json:
        result = {
            "command": shlex.join(
                [sys.executable, "-m", "benchmarks.scan_overhead", *(argv or sys.argv[1:])]
            ),
            "settings": vars(args) | {"json": str(args.json)},
            "executors": rows,
            "analysis_builds": builds,
            "machine": machine_info(),
            "ray": _ray_version(),
        }
        md = write_outputs(args.json, result, title="Scan worker cost per video",
                           header=header, rows=table)  # fmt: skip
        with md.open("a") as fh:
            fh.write("\n## Per-video Analysis build around a loaded model\n\n")
            fh.write(markdown_table(build_header, build_table))
        console.print(f"wrote {args.json} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
