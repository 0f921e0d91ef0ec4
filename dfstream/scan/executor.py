"""Where scan workers run: the ``Executor`` interface and the local process pool.

An executor owns a set of workers (each a ``ScanWorker`` with its model loaded) and does three
things: says which workers are idle, hands one a ``Job``, and reports what happened (``wait``):
a ``Finished`` job with its ``JobResult``, or a ``Lost`` worker (its process or node died) with
the job it held. It replaces a lost worker by a new one under a new name, so that a retry can go
"elsewhere". The scheduler (``dfstream.scan.schedule``) does the rest, the same for every
executor: this one (``ProcessExecutor``, processes on this machine) and the Ray actors of
``dfstream.cluster.scan``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

from dfstream.errors import DfstreamError, ExitCode
from dfstream.scan.worker import Job, JobResult, ScanWorker, WorkerSpec


@dataclass(frozen=True)
class Finished:
    """A worker finished a job (the video may still have failed: see ``result.error``)."""

    worker: str
    job: Job
    result: JobResult


@dataclass(frozen=True)
class Lost:
    """A worker died (process killed, node lost) holding ``job`` (None when it was idle)."""

    worker: str
    job: Job | None
    reason: str


Outcome = Finished | Lost


class WorkerStartError(DfstreamError):
    """A worker could not load its model or backend: the scan cannot run (the exit code is the
    original error's: 4 for weights, 5 for a backend)."""

    def __init__(self, message: str, exit_code: int = int(ExitCode.BACKEND)) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


class Executor(ABC):
    """Runs ``ScanWorker`` instances somewhere (see the module docstring)."""

    description: str = "executor"

    @abstractmethod
    def idle(self) -> list[str]:
        """The workers ready to take a job now."""

    @abstractmethod
    def alive(self) -> int:
        """Workers running or starting."""

    @abstractmethod
    def submit(self, worker: str, job: Job) -> None:
        """Give an idle worker a job."""

    @abstractmethod
    def wait(self, timeout: float) -> list[Outcome]:
        """What happened within ``timeout`` seconds (an empty list when nothing did).

        Raises ``WorkerStartError`` when a worker cannot load its model."""

    @abstractmethod
    def close(self) -> None:
        """Stop every worker (jobs in flight are abandoned)."""


def _serve(spec: WorkerSpec, name: str, conn: multiprocessing.connection.Connection) -> None:
    """A worker process: load the model, then analyse each job received until ``None``."""
    # Ctrl-C reaches the whole process group: the driver decides, workers carry on until told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = ScanWorker(spec, name=name)
    except DfstreamError as exc:
        conn.send(("error", int(exc.exit_code), str(exc)))
        return
    conn.send(("ready", worker.backend))
    try:
        while True:
            job = conn.recv()
            if job is None:
                break
            conn.send(("done", worker.analyze(job)))
    except (EOFError, OSError):
        pass  # the driver went away
    finally:
        worker.close()


@dataclass
class _Process:
    name: str
    index: int
    process: Any
    conn: multiprocessing.connection.Connection
    ready: bool = False
    job: Job | None = None
    backend: str = ""


@dataclass
class ProcessExecutor(Executor):
    """Scan workers as processes on this machine (``spawn``ed: no torch state is forked).

    ``specs`` holds one ``WorkerSpec`` per worker (they differ in device and threads only).
    A worker that dies is replaced, at most ``max_replacements`` times in all, so a video that
    kills every worker cannot loop for ever (the scheduler stops retrying it after two tries).
    """

    specs: list[WorkerSpec]
    max_replacements: int = 16
    _procs: dict[str, _Process] = field(default_factory=dict, init=False)
    _counter: int = field(default=0, init=False)
    _replaced: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        for index in range(len(self.specs)):
            self._spawn(index)
        self.description = f"local: {len(self.specs)} worker process(es)"

    def _spawn(self, index: int) -> None:
        self._counter += 1
        name = f"local-{self._counter}"
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(self.specs[index], name, theirs), name=name, daemon=True
        )
        process.start()
        theirs.close()
        self._procs[name] = _Process(name, index, process, ours)

    def idle(self) -> list[str]:
        return [p.name for p in self._procs.values() if p.ready and p.job is None]

    def alive(self) -> int:
        return len(self._procs)

    @property
    def backends(self) -> list[str]:
        """What each ready worker runs on (``backend.describe()``)."""
        return [p.backend for p in self._procs.values() if p.ready]

    def submit(self, worker: str, job: Job) -> None:
        proc = self._procs[worker]
        proc.job = job
        proc.conn.send(job)

    def _lost(self, proc: _Process, reason: str) -> Lost:
        del self._procs[proc.name]
        proc.conn.close()
        if proc.process.is_alive():
            proc.process.kill()
        proc.process.join(timeout=5)
        if self._replaced < self.max_replacements:
            self._replaced += 1
            self._spawn(proc.index)
        return Lost(proc.name, proc.job, reason)

    def wait(self, timeout: float) -> list[Outcome]:
        by_handle: dict[Any, _Process] = {}
        for proc in self._procs.values():
            by_handle[proc.conn] = proc
            by_handle[proc.process.sentinel] = proc
        outcomes: list[Outcome] = []
        for handle in multiprocessing.connection.wait(list(by_handle), timeout):
            proc = by_handle[handle]
            if proc.name not in self._procs:
                continue  # already handled through its other handle
            try:
                message = proc.conn.recv() if proc.conn.poll() else None
            except (EOFError, OSError):
                message = None
            if message is None:
                if not proc.process.is_alive() or handle is proc.conn:
                    proc.process.join(timeout=5)
                    code = proc.process.exitcode
                    outcomes.append(self._lost(proc, f"worker process died (exit code {code})"))
                continue
            kind = message[0]
            if kind == "error":
                raise WorkerStartError(message[2], message[1])
            if kind == "ready":
                proc.ready, proc.backend = True, message[1]
            elif kind == "done":
                job, proc.job = proc.job, None
                assert job is not None
                outcomes.append(Finished(proc.name, job, message[1]))
        return outcomes

    def close(self) -> None:
        for proc in self._procs.values():
            with contextlib.suppress(OSError):
                proc.conn.send(None)
        for proc in self._procs.values():
            proc.process.join(timeout=3 if proc.job is None else 0)
            if proc.process.is_alive():
                proc.process.kill()
                proc.process.join(timeout=5)
            proc.conn.close()
        self._procs.clear()


def local_specs(spec: WorkerSpec, *, workers: int | None, cpus_per_worker: int) -> list[WorkerSpec]:
    """One spec per local worker: one per CUDA GPU (``cuda:N``) when torch sees GPUs and the
    device allows them, else ``cores // cpus_per_worker`` CPU workers with that many threads
    (at least one); ``workers`` overrides the count."""
    import os

    device = spec.config.device
    gpus = 0
    if device in ("auto", "cuda") or device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and device in ("auto", "cuda"):
        count = workers or gpus
        return [
            replace(spec, config=replace(spec.config, device=f"cuda:{i % gpus}"))
            for i in range(count)
        ]
    cores = os.cpu_count() or 1
    count = workers or max(1, cores // cpus_per_worker)
    return [replace(spec, threads=spec.threads or cpus_per_worker) for _ in range(count)]
