"""The sink contract: what a consumer of pipeline events implements, and how a run talks to it.

* ``Sink`` receives events (``handle``) on the inference thread and is closed once (``close``).
  The base class is also the null sink.
* ``FrameSink`` is the protocol of sinks that also need frames (the overlay video, a GUI
  preview): ``on_frame`` sees every decoded frame with the tracked boxes the pipeline uses on
  it, on the stream's analyzer thread; ``on_track_end`` says that every crop of a track has been
  scored. A sink that implements both methods gets them; nothing else is needed.
* ``ThreadedSink`` is the base for sinks whose work is slow (network, encoding): ``handle``
  only queues, a worker thread calls ``process`` for each event, errors are captured and
  reported on the next ``handle`` or at ``close``, which drains the queue first.
* ``SinkGroup`` fans events out to its sinks and isolates failures: a sink that raises is
  closed and dropped, a ``status`` event naming it and the reason goes to the others, and the
  run ends with exit code 6 (``ExitCode.OUTPUT``) once every other output was finalised.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from dfstream.cputime import SINK_THREAD, name_thread
from dfstream.errors import OutputError
from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.types import Event, Frame, StatusEvent, TrackBoxes

if TYPE_CHECKING:
    from dfstream.sources import SourceSpec


class Sink:
    """Consumes pipeline events. ``handle`` must be quick: it runs on the inference thread.

    ``name`` says which output this is in messages (``jsonl``, ``report``, ``overlay`` ...).
    The base class is also the null sink: it ignores everything.
    """

    name: ClassVar[str] = "sink"

    def stream_added(self, stream_id: str, spec: SourceSpec) -> None:
        """A source joined the run (before any of its events or frames); optional hook."""

    def handle(self, event: Event) -> None:
        """Receive one event."""

    def close(self) -> None:
        """Finalise outputs; called once, also after errors and interrupts."""


@runtime_checkable
class FrameSink(Protocol):
    """A sink that also needs the frames themselves (overlay video, GUI preview).

    ``on_frame`` runs on the stream's analyzer thread for every decoded frame, sampled or not,
    after the frame's crops were queued; it may wait briefly (bounded) but must never block for
    good. ``on_track_end`` runs on the inference thread once all of a track's crops are scored.
    """

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        """A decoded frame and the (track id, box) pairs of the faces on it."""

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        """Every window of ``track_id`` has been scored; none will follow."""


class SinkFailed(OutputError):
    """A sink raised: which one, and why (exit code 6)."""

    def __init__(self, sink: str, reason: str) -> None:
        super().__init__(f"output {sink} failed: {reason}")
        self.sink = sink
        self.reason = reason


def describe_failure(exc: BaseException) -> str:
    """One line for an exception raised by a sink: an ``OutputError``'s own message, otherwise
    its type and message."""
    if isinstance(exc, SinkFailed):
        return exc.reason
    if isinstance(exc, OutputError):
        return " ".join(str(exc).split())
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CLOSE = object()


class ThreadedSink(Sink):
    """A sink that does its work on its own thread behind a bounded queue.

    Subclasses implement ``process(event)`` (and optionally ``finish()``, called on the worker
    after the last event, e.g. to flush). ``handle`` never blocks under ``DROP_OLDEST`` (the
    default: a slow network endpoint must not slow the analysis; drops are counted in
    ``dropped``) and waits for room under ``WAIT``. An exception in the worker stops it; the
    next ``handle`` or ``close`` raises it, so the ``SinkGroup`` reports the sink as failed.
    Call ``start()`` once the sink is ready (usually at the end of its ``open`` classmethod).
    """

    def __init__(
        self,
        *,
        maxsize: int = 256,
        policy: Backpressure = Backpressure.DROP_OLDEST,
        close_timeout_s: float = 10.0,
    ) -> None:
        self._stop = threading.Event()
        self._queue: BoundedQueue[object] = BoundedQueue(maxsize, policy, self._stop)
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._close_timeout_s = close_timeout_s
        self.error: BaseException | None = None
        self._closed = False

    @property
    def dropped(self) -> int:
        """Events dropped because the worker fell behind (``DROP_OLDEST`` only)."""
        return self._queue.dropped

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def process(self, event: Event) -> None:
        """Do the work for one event, on the worker thread."""
        raise NotImplementedError

    def finish(self) -> None:
        """Called on the worker thread after the last event (flush, say goodbye)."""

    def handle(self, event: Event) -> None:
        """Queue ``event`` for the worker; raise the worker's error if it has failed."""
        self.submit(event)

    def submit(self, item: object) -> None:
        """Queue any work item for ``process`` (a sink may queue what it derives from events,
        e.g. an alert); raise the worker's error if it has failed."""
        if self.error is not None:
            raise SinkFailed(self.name, describe_failure(self.error))
        self._queue.put(item)

    def _run(self) -> None:
        name_thread(SINK_THREAD)  # its CPU is the sinks' in ``dfstream bench``
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is _CLOSE:
                    break
                self.process(item)  # type: ignore[arg-type]
            self.finish()
        except BaseException as exc:  # noqa: BLE001 - reported by handle()/close()
            self.error = exc

    def close(self) -> None:
        """Let the worker drain what is queued, call ``finish``, and stop; raise its error."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put_control(_CLOSE)
            self._thread.join(self._close_timeout_s)
            if self._thread.is_alive():
                self._stop.set()
                raise SinkFailed(
                    self.name, f"did not finish within {self._close_timeout_s:g} s at close"
                )
        if self.error is not None:
            raise SinkFailed(self.name, describe_failure(self.error))


@dataclass(frozen=True)
class SinkFailure:
    """A sink that failed during a run: its name and the reason, in one line."""

    sink: str
    reason: str


class SinkGroup(Sink):
    """Fans events (and frames, to frame sinks) out to several sinks, isolating failures.

    A sink that raises from ``handle``, ``on_frame`` or ``on_track_end`` is closed and taken
    out of the group; a ``StatusEvent`` with state ``sink_failed`` naming it goes to the others
    and to ``on_failure``; ``failures`` lists it at the end. ``close`` closes every sink, also
    when some fail, and records those failures the same way. Thread-safe: frames arrive on
    analyzer threads while events arrive on the inference thread.
    """

    name = "sinks"

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        on_failure: Callable[[SinkFailure], None] | None = None,
    ) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.failures: list[SinkFailure] = []
        self._on_failure = on_failure
        self._lock = threading.RLock()

    def _frame_sinks(self) -> list[FrameSink]:
        with self._lock:
            return [s for s in self.sinks if isinstance(s, FrameSink)]  # type: ignore[misc]

    @property
    def wants_frames(self) -> bool:
        """True when some sink needs frames (the pipeline skips the frame fan-out otherwise)."""
        return bool(self._frame_sinks())

    def add(self, sink: Sink) -> None:
        """Add a sink while running (it sees the events from now on)."""
        with self._lock:
            self.sinks.append(sink)

    def _fail(self, sink: Sink, exc: BaseException, *, close: bool = True) -> None:
        """Take a failed sink out of the group, close it, and record the failure."""
        with self._lock:
            if sink not in self.sinks:
                return
            self.sinks.remove(sink)
        if close:
            try:
                sink.close()
            except Exception as again:  # noqa: BLE001 - already failed; keep the first reason
                del again
        self._record(SinkFailure(sink.name, describe_failure(exc)))

    def _record(self, failure: SinkFailure) -> None:
        """Keep ``failure``, tell the sinks still open with a status event, and the callback."""
        self.failures.append(failure)
        status = StatusEvent(
            stream_id="",
            state="sink_failed",
            reason=failure.reason,
            wall_time=time.time(),
            sink=failure.sink,
        )
        self._deliver(status)
        if self._on_failure is not None:
            self._on_failure(failure)

    def _deliver(self, event: Event) -> None:
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            try:
                sink.handle(event)
            except Exception as exc:  # noqa: BLE001 - isolated: this sink fails, others go on
                self._fail(sink, exc)

    def handle(self, event: Event) -> None:
        """Send ``event`` to every working sink."""
        self._deliver(event)

    def stream_added(self, stream_id: str, spec: SourceSpec) -> None:
        """Tell every working sink that a source joined the run."""
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            try:
                sink.stream_added(stream_id, spec)
            except Exception as exc:  # noqa: BLE001 - isolated like handle()
                self._fail(sink, exc)

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        """Send a frame to every working frame sink."""
        for sink in self._frame_sinks():
            try:
                sink.on_frame(frame, tracks)
            except Exception as exc:  # noqa: BLE001 - isolated like handle()
                self._fail(sink, exc)  # type: ignore[arg-type]

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        """Tell every working frame sink that a track's windows are all scored."""
        for sink in self._frame_sinks():
            try:
                sink.on_track_end(stream_id, track_id)
            except Exception as exc:  # noqa: BLE001 - isolated like handle()
                self._fail(sink, exc)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close every sink, the most recently added first, so that the earliest outputs
        (JSONL) still record a later one failing to finalise. Failures are recorded in
        ``failures``, never raised here."""
        with self._lock:
            sinks = list(self.sinks)
        for sink in reversed(sinks):
            with self._lock:
                if sink not in self.sinks:
                    continue
                self.sinks.remove(sink)
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - finalise every other output first
                self._record(SinkFailure(sink.name, describe_failure(exc)))
