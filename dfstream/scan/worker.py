"""A scan worker: keeps its model (and backend) loaded and analyses one video at a time.

The same class runs in a local worker process (``dfstream.scan.executor``) and inside a Ray
actor (``dfstream.cluster.scan``). It holds one persistent ``dfstream.Analysis`` and adds each
video to it as a source (``Analysis.add_source``), so the backend is built once per worker, not
once per video: with ONNX Runtime a session costs 0.25-1.3 s here, as long as analysing a short
clip (``benchmarks/scan_overhead.py`` measures both ways). Videos never overlap inside one
worker, so every batch holds the crops of one video only and a video's scores do not depend on
which worker, or which executor, analysed it. The analysis is rebuilt every ``recycle_every``
videos (and after an internal failure), which bounds the per-source bookkeeping it keeps.

Everything a worker returns is plain data (``JobResult``: strings, numbers and the events'
JSON dictionaries), so it crosses process and node boundaries by pickling.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from dfstream.config import AnalysisConfig
from dfstream.errors import DfstreamError, SourceError
from dfstream.types import Event, ScoreEvent, StreamSummary, VerdictEvent


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """How every worker of a scan analyses: the analysis config (its ``sources`` are ignored),
    the CPU threads of torch and OpenCV (the cores the worker was given), whether results carry
    the score and verdict events, and an optional per-video time limit in seconds."""

    config: AnalysisConfig
    threads: int | None = None
    events: bool = False
    video_timeout: float | None = None
    recycle_every: int = 256

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"WorkerSpec.threads: expected >= 1 but got {self.threads}")
        if self.video_timeout is not None and self.video_timeout <= 0:
            raise ValueError(f"WorkerSpec.video_timeout: expected > 0 but got {self.video_timeout}")


@dataclass(frozen=True)
class Job:
    """One video to analyse (its absolute path) and which attempt this is (1 or 2)."""

    video: str
    attempt: int = 1


@dataclass(frozen=True)
class JobResult:
    """What a worker made of one video: its summary (the JSONL ``summary`` object) and, when
    asked for, its score and verdict events; or the reason it failed, in one line."""

    video: str
    worker: str
    summary: dict[str, Any] | None
    events: tuple[dict[str, Any], ...]
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the video was analysed to its end."""
        return self.error is None

    @property
    def crops(self) -> int:
        """Face crops the CNN embedded for this video."""
        return int(self.summary.get("crops_embedded", 0)) if self.summary else 0


def one_line(exc: BaseException) -> str:
    """An exception as one line: a dfstream error's own message, else its type and message."""
    text = " ".join(str(exc).split())
    if isinstance(exc, DfstreamError):
        return text
    return f"internal error: {type(exc).__name__}: {text}" if text else type(exc).__name__


def set_threads(threads: int | None) -> None:
    """Give torch and OpenCV ``threads`` threads (the cores this worker owns)."""
    if threads is None:
        return
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


class ScanWorker:
    """Analyses videos one at a time with a model loaded once (see the module docstring).

    ``name`` identifies the worker in the output (host and process, plus the Ray node).
    Loading the model can raise ``DfstreamError`` (weights missing, backend unavailable): that
    is the scan's error, not a video's.
    """

    def __init__(self, spec: WorkerSpec, *, name: str | None = None) -> None:
        from dfstream.api import load_model

        self.spec = spec
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        set_threads(spec.threads)
        self._config: AnalysisConfig = replace(spec.config, sources=(), threads=spec.threads)
        self.model = load_model(self._config)
        self.notices: list[str] = []
        self._cond = threading.Condition()
        self._summaries: dict[str, StreamSummary] = {}
        self._events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._run: Any = None
        self._count = 0
        self.backend = self._analysis().backend.describe()

    def _notice(self, message: str) -> None:
        if len(self.notices) < 20:
            self.notices.append(message)

    def _route(self, event: Event) -> None:
        """Called on the inference thread with every event: keep what belongs to a video."""
        sid = getattr(event, "stream_id", "")
        if not sid:
            return
        with self._cond:
            if isinstance(event, StreamSummary):
                self._summaries[sid] = event
                self._cond.notify_all()
            elif self.spec.events and isinstance(event, ScoreEvent | VerdictEvent):
                self._events[sid].append(event.to_json())

    def _analysis(self) -> Any:
        """The running persistent analysis, (re)built when needed."""
        from dfstream.api import Analysis

        run = self._run
        if run is not None and run.running and self._count < self.spec.recycle_every:
            return run
        self._close_run()
        run = Analysis(
            self._config,
            persistent=True,
            model=self.model,
            on_event=self._route,
            on_notice=self._notice,
        )
        run.start()
        self._run, self._count = run, 0
        return run

    def _close_run(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        run.stop()
        try:
            run.join(timeout=30)
        except Exception as exc:  # noqa: BLE001 - the next analysis starts afresh
            self._notice(f"previous analysis ended with {one_line(exc)}")

    def analyze(self, job: Job) -> JobResult:
        """Analyse ``job.video`` to its end; a failure is returned as ``error``, never raised."""
        started = time.perf_counter()
        summary: dict[str, Any] | None = None
        events: list[dict[str, Any]] = []
        try:
            if not os.path.isfile(job.video):
                raise SourceError(
                    f"{job.video}: not found on worker {self.name} (every worker must see the "
                    "archive at the same path)"
                )
            final, events = self._analyze_one(job.video)
            summary = final.to_json()
            error = final.error
        except Exception as exc:  # noqa: BLE001 - reported as this video's failure
            error = one_line(exc)
            if not isinstance(exc, DfstreamError):
                self._close_run()  # an internal failure: start the next video afresh
        return JobResult(
            video=job.video,
            worker=self.name,
            summary=summary,
            events=tuple(events),
            error=error,
            seconds=time.perf_counter() - started,
        )

    def _analyze_one(self, video: str) -> tuple[StreamSummary, list[dict[str, Any]]]:
        run = self._analysis()
        self._count += 1
        (sid,) = run.add_source(video)
        limit = self.spec.video_timeout
        deadline = None if limit is None else time.monotonic() + limit
        timed_out = False
        with self._cond:
            while sid not in self._summaries:
                if not run.running:
                    run.join()  # re-raises the pipeline's failure
                    raise RuntimeError("the analysis ended before the video did")
                if deadline is not None and not timed_out and time.monotonic() > deadline:
                    timed_out = True
                    run.remove_source(sid)
                self._cond.wait(0.2)
            final = self._summaries.pop(sid)
            events = self._events.pop(sid, [])
        if timed_out:
            final = replace(final, error=f"timed out after {limit:g} s (--video-timeout)")
        return final, events

    def close(self) -> None:
        """Stop the analysis and release the backend."""
        self._close_run()
