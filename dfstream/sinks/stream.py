"""Sinks that hand events to library code: a callback, or an iterator fed by a bounded queue."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.sinks.base import Sink
from dfstream.types import Event

_END = object()


class CallbackSink(Sink):
    """Calls ``callback(event)`` for every event, on the inference thread (keep it quick)."""

    name = "callback"

    def __init__(self, callback: Callable[[Event], None]) -> None:
        self._callback = callback

    def handle(self, event: Event) -> None:
        self._callback(event)


class EventStream(Sink):
    """Events for an iterator on another thread, through a bounded queue that waits for room:
    a slow consumer slows the pipeline down instead of losing events. ``close`` (at the end of
    the run) ends the iteration once the queued events are taken."""

    name = "events"

    def __init__(self, *, maxsize: int = 1024) -> None:
        self._gone = threading.Event()  # the consumer stopped iterating: never wait for it
        self._queue: BoundedQueue[object] = BoundedQueue(maxsize, Backpressure.WAIT, self._gone)

    def handle(self, event: Event) -> None:
        if not self._gone.is_set():
            self._queue.put(event)

    def close(self) -> None:
        self._queue.put_control(_END)

    def iterate(self, *, done: threading.Event) -> Iterator[Event]:
        """Yield events until the run's end marker (or ``done`` with nothing left)."""
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if done.is_set() and self._queue.qsize() == 0:
                        return
                    continue
                if item is _END:
                    return
                yield item  # type: ignore[misc]
        finally:
            self._gone.set()
