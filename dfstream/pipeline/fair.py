"""Fair batching across streams: one bounded crop queue per stream, gathered round-robin.

Each analyzer writes into its own ``StreamQueue``; the inference thread takes one message from
each non-empty stream in turn (starting one stream further every round) until the batch is
full or the batch wait is over. A stream that produces many crops therefore gets at most its
share of each batch while other streams have work, and cannot starve a quiet one; order within
a stream is kept, which is all that control messages (track and stream ends) need.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from dfstream.pipeline.queues import Backpressure, BoundedQueue

T = TypeVar("T")


class StreamQueue(BoundedQueue[T]):
    """A ``BoundedQueue`` that wakes the gathering thread after every put."""

    def __init__(
        self,
        maxsize: int,
        policy: Backpressure,
        stop: threading.Event,
        *,
        wake: Callable[[], None],
    ) -> None:
        super().__init__(maxsize, policy, stop)
        self._wake = wake

    def put(self, item: T) -> bool:
        """Enqueue under the policy, then wake the gatherer."""
        queued = super().put(item)
        self._wake()
        return queued

    def put_control(self, item: T) -> None:
        """Enqueue a message that must arrive, then wake the gatherer."""
        super().put_control(item)
        self._wake()


class FairGather(Generic[T]):
    """Per-stream queues and a round-robin ``gather`` that builds batches from all of them."""

    def __init__(self, stop: threading.Event, *, is_data: Callable[[T], bool]) -> None:
        """``is_data`` tells batch items (crops) from control messages, which do not count
        towards the batch size."""
        self._stop = stop
        self._is_data = is_data
        self._cond = threading.Condition()
        self._queues: list[StreamQueue[T]] = []
        self._next = 0

    def add_stream(self, maxsize: int, *, stop: threading.Event | None = None) -> StreamQueue[T]:
        """A new stream's queue (WAIT: crops are never dropped once cut); any thread.

        ``stop`` (default: the gatherer's) unblocks the stream's producer when set."""
        q: StreamQueue[T] = StreamQueue(
            maxsize, Backpressure.WAIT, stop or self._stop, wake=self._wake
        )
        with self._cond:
            self._queues = [*self._queues, q]
        return q

    def remove_stream(self, q: StreamQueue[T]) -> None:
        """Forget an ended stream's queue (its end message has been taken); any thread."""
        with self._cond:
            self._queues = [other for other in self._queues if other is not q]

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _any_waiting(self) -> bool:
        return any(q.qsize() for q in self._queues)

    def _round(self, items: list[T], room: int) -> tuple[int, int]:
        """Take at most one message per stream, starting one stream later than last round;
        returns (messages taken, data items taken)."""
        taken = data = 0
        queues = self._queues  # replaced, never mutated, by add/remove: a consistent list
        count = len(queues)
        start = self._next % max(1, count)
        self._next = (start + 1) % max(1, count)
        for offset in range(count):
            if data >= room:
                break
            try:
                item = queues[(start + offset) % count].get_nowait()
            except queue.Empty:
                continue
            items.append(item)
            taken += 1
            data += int(self._is_data(item))
        return taken, data

    def gather(self, max_items: int, wait_s: float, *, idle_s: float = 0.2) -> list[T]:
        """Up to ``max_items`` data items (plus any control messages met on the way).

        Waits up to ``idle_s`` for the first message (returns [] when none came, so that the
        caller can check for a stop), then up to ``wait_s`` more for the batch to fill.
        """
        items: list[T] = []
        data = 0
        start = time.monotonic()
        deadline: float | None = None
        while data < max_items:
            taken, got = self._round(items, max_items - data)
            data += got
            if taken:
                if deadline is None:
                    deadline = time.monotonic() + wait_s
                continue
            now = time.monotonic()
            limit = deadline if deadline is not None else start + idle_s
            if now >= limit:
                break
            with self._cond:
                if not self._any_waiting():
                    self._cond.wait(limit - now)
        return items
