"""Handing videos to workers, retrying, and deciding when a video has failed: the part of a scan
that is the same whatever the executor.

Each video is a unit of work with at most ``attempts`` tries (2 by default). A try ends in one
of three ways: the worker returns a result (done), returns an error (the video failed on that
worker), or dies holding it (the process was killed, the node was lost). The last two cost a
try and the video goes back to the queue marked "not on that worker", so the retry runs
elsewhere when another worker exists. A video whose tries are spent is reported ``Failed``
with the reasons of each try, and the scan goes on. A video is never running on two workers
at once, and a result arrives once per video: the output holds each video exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dfstream.errors import DfstreamError
from dfstream.scan.executor import Executor, Finished, Lost
from dfstream.scan.worker import Job, JobResult


@dataclass(frozen=True)
class Done:
    """A video analysed to its end, on its ``attempts``-th try."""

    result: JobResult
    attempts: int


@dataclass(frozen=True)
class Failed:
    """A video that failed every try: one reason per try, the workers that tried it."""

    video: str
    reasons: tuple[str, ...]
    workers: tuple[str, ...]

    @property
    def reason(self) -> str:
        """The last try's reason (the earlier ones are in ``reasons``)."""
        return self.reasons[-1] if self.reasons else "unknown"

    def describe(self) -> str:
        """``VIDEO: reason`` in one line (the reason alone when it names the video)."""
        reason = self.reason
        return reason if reason.startswith(self.video) else f"{self.video}: {reason}"


Report = Done | Failed


class NoWorkers(DfstreamError):
    """Videos are waiting but no worker has been running for ``stall_s`` seconds."""


RETRY_ELSEWHERE_WAIT_S = 30.0
"""How long a retry waits for another worker before it may run where it failed."""


@dataclass
class _Pending:
    video: str
    reasons: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    """Where each try ran, as the output names it (with its node)."""
    tried_on: list[str] = field(default_factory=list)
    """The executor's names of the workers that tried it (a retry avoids them)."""
    queued_at: float = field(default_factory=time.monotonic)


class Scheduler:
    """Runs ``videos`` on ``executor``'s workers (see the module docstring).

    ``report`` is called on this thread with each ``Done`` or ``Failed`` video, as soon as it
    is known, and ``on_lost`` with each lost worker's name and reason.
    """

    def __init__(
        self,
        videos: Iterable[str],
        executor: Executor,
        *,
        report: Callable[[Report], None],
        on_lost: Callable[[str, str], None] = lambda _worker, _reason: None,
        attempts: int = 2,
        stall_s: float = 300.0,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts: expected >= 1 but got {attempts}")
        self._queue: deque[_Pending] = deque(_Pending(v) for v in videos)
        self._running: dict[str, _Pending] = {}
        self._executor = executor
        self._report = report
        self._on_lost = on_lost
        self._attempts = attempts
        self._stall_s = stall_s

    @property
    def remaining(self) -> int:
        """Videos not yet done nor failed."""
        return len(self._queue) + len(self._running)

    def _pick(self, worker: str, only_worker: bool) -> _Pending | None:
        """The first queued video that has not already failed on ``worker``; any video when
        ``worker`` is the only one ("elsewhere" does not exist), or when a retry has waited
        ``RETRY_ELSEWHERE_WAIT_S`` for the others (they may never start: no free node)."""
        now = time.monotonic()
        for pending in self._queue:
            if (
                only_worker
                or worker not in pending.tried_on
                or now - pending.queued_at > RETRY_ELSEWHERE_WAIT_S
            ):
                self._queue.remove(pending)
                return pending
        return None

    def _assign(self) -> None:
        idle = self._executor.idle()
        only = self._executor.alive() <= 1
        for worker in idle:
            if not self._queue:
                return
            pending = self._pick(worker, only)
            if pending is None:
                continue
            self._running[pending.video] = pending
            self._executor.submit(worker, Job(pending.video, attempt=len(pending.reasons) + 1))

    def _retry_or_fail(self, pending: _Pending, worker: str, reason: str, where: str) -> None:
        pending.reasons.append(reason)
        pending.tried_on.append(worker)
        pending.workers.append(where)
        if len(pending.reasons) >= self._attempts:
            self._report(Failed(pending.video, tuple(pending.reasons), tuple(pending.workers)))
        else:
            pending.queued_at = time.monotonic()
            self._queue.appendleft(pending)  # retried first: its result is overdue

    def _handle(self, outcome: Finished | Lost) -> None:
        if isinstance(outcome, Lost):
            held = "; its video goes back to the queue" if outcome.job is not None else ""
            self._on_lost(outcome.worker, outcome.reason + held)
            if outcome.job is not None:
                pending = self._running.pop(outcome.job.video)
                self._retry_or_fail(pending, outcome.worker, outcome.reason, outcome.worker)
            return
        pending = self._running.pop(outcome.job.video)
        result = outcome.result
        if result.ok:
            self._report(Done(result, attempts=len(pending.reasons) + 1))
        else:
            self._retry_or_fail(pending, outcome.worker, result.error or "failed", result.worker)

    def run(self, stop: threading.Event | None = None, *, poll_s: float = 0.2) -> bool:
        """Work until every video is reported or ``stop`` is set; True when all were.

        Raises ``NoWorkers`` when videos wait and no worker ran for ``stall_s`` seconds, and
        the executor's ``WorkerStartError`` when workers cannot load their model."""
        stop = stop or threading.Event()
        last_progress = time.monotonic()
        while self.remaining and not stop.is_set():
            self._assign()
            outcomes = self._executor.wait(poll_s)
            for outcome in outcomes:
                self._handle(outcome)
            if outcomes or self._running or self._executor.idle():
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._stall_s:
                raise NoWorkers(
                    f"{self.remaining} video(s) waiting but no worker has run for "
                    f"{self._stall_s:g} s ({self._executor.description}): are there nodes with "
                    "the resources a worker asks for?"
                )
        return not self.remaining
