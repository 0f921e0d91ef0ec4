"""Bounded queues with an explicit backpressure policy.

``WAIT`` (files): the producer blocks until there is room, so nothing is lost.
``DROP_OLDEST`` (live sources): the producer never blocks; when full, the oldest item is dropped
and counted, so latency cannot pile up behind a slow consumer. Control messages (end of stream)
use ``put_control``, which is never dropped.
"""

from __future__ import annotations

import enum
import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")

STOP_GRACE_S = 1.0
"""How long an end message waits for room once the pipeline stops, before dropping data."""


class Backpressure(str, enum.Enum):
    """What a full queue does to its producer."""

    WAIT = "wait"
    DROP_OLDEST = "drop_oldest"


class BoundedQueue(Generic[T]):
    """A ``queue.Queue`` with a policy, a drop counter and a stop event that unblocks waiters."""

    def __init__(self, maxsize: int, policy: Backpressure, stop: threading.Event) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize: expected >= 1 but got {maxsize}")
        self._queue: queue.Queue[T] = queue.Queue(maxsize)
        self.policy = policy
        self.dropped = 0
        self._stop = stop
        self._lock = threading.Lock()

    def put(self, item: T) -> bool:
        """Enqueue under the policy; False when the pipeline is stopping and it was not queued."""
        if self.policy is Backpressure.DROP_OLDEST:
            self._put_dropping(item)
            return True
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def put_control(self, item: T) -> None:
        """Enqueue a message that must arrive (end of stream). Under WAIT it waits for room
        while the pipeline runs; under DROP_OLDEST, or once stopping, it drops a data item."""
        if self.policy is Backpressure.WAIT:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            # Stopping: consumers drain until the end message, so room usually comes at once;
            # dropping the oldest item would leave a gap (a missing frame in an overlay).
            try:
                self._queue.put(item, timeout=STOP_GRACE_S)
                return
            except queue.Full:
                pass
        self._put_dropping(item)

    def _put_dropping(self, item: T) -> None:
        with self._lock:
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        continue

    def get(self, timeout: float | None = None) -> T:
        """Dequeue; raises ``queue.Empty`` after ``timeout``."""
        return self._queue.get(timeout=timeout)

    def get_nowait(self) -> T:
        """Dequeue without waiting; raises ``queue.Empty``."""
        return self._queue.get_nowait()

    def qsize(self) -> int:
        """Approximate number of queued items."""
        return self._queue.qsize()
