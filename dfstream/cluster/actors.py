"""The Ray actor that analyses live sources on a cluster node, and what it sends back.

A ``StreamActor`` runs an ordinary ``dfstream.Analysis`` of its source on the node Ray placed
it on, and buffers the run's events. The driver long-polls it (``poll``): each answer is a
``StreamPoll`` of plain, picklable data, the events themselves (frozen dataclasses of strings and
numbers) and a snapshot of the stream for the dashboard, so the driver's sinks (dashboard,
JSONL, report, metrics or alerts) see exactly the events a local run gives them.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, replace
from typing import Any

from dfstream import __version__
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.errors import DfstreamError
from dfstream.pipeline.state import StreamSnapshot
from dfstream.scan.worker import one_line, set_threads
from dfstream.types import Event

MAX_BUFFERED = 20_000
"""Events an actor keeps for a driver that stopped polling; beyond, the oldest are dropped."""


@dataclass(frozen=True)
class StreamPoll:
    """What a stream actor has to say since the last poll: its events, a snapshot of each of
    its streams, whether its analysis has ended, and why, if it failed."""

    events: tuple[Event, ...]
    snapshots: tuple[StreamSnapshot, ...]
    done: bool
    error: str | None = None
    dropped: int = 0


class StreamActor:
    """Analyses one source (as typed: a URL, a file, a folder) with an ``Analysis``.

    ``start`` returns where it runs (node id, host, dfstream version, backend, the report
    header) or the one-line error that kept the analysis from being built (bad weights, say),
    with its exit code.
    """

    def __init__(self, config: AnalysisConfig, source: str, threads: int | None) -> None:
        import ray

        from dfstream.api import Analysis

        set_threads(threads)
        self.node = ray.get_runtime_context().get_node_id()
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._dropped = 0
        self._error: tuple[int, str] | None = None
        self.run: Any = None
        try:
            self.run = Analysis(
                replace(config, sources=(source,), threads=threads),
                on_event=self._add,
                on_notice=lambda _message: None,
            )
        except DfstreamError as exc:
            self._error = (int(exc.exit_code), str(exc))

    def _add(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            if len(self._events) > MAX_BUFFERED:
                del self._events[0]
                self._dropped += 1
            self._cond.notify_all()

    def start(self) -> dict[str, Any]:
        """Start analysing; returns where, on what, or why not (see the class docstring)."""
        info: dict[str, Any] = {
            "node": self.node,
            "host": socket.gethostname(),
            "version": __version__,
            "error": self._error,
            "backend": None,
            "header": None,
        }
        if self.run is not None:
            from dfstream.sinks.build import report_header

            info["backend"] = self.run.backend.describe()
            info["header"] = report_header(
                self.run.config, OutputConfig(), self.run.model, self.run.backend
            )
            self.run.start()
        return info

    def poll(self, wait_s: float = 0.5) -> StreamPoll:
        """The events since the last poll, waiting up to ``wait_s`` for the first one."""
        run = self.run
        if run is None:
            return StreamPoll((), (), True, self._error[1] if self._error else None)
        with self._cond:
            if not self._events and run.running:
                self._cond.wait(wait_s)
            events, self._events = tuple(self._events), []
            dropped, self._dropped = self._dropped, 0
        error = None
        done = not run.running
        if done:
            try:
                run.join(timeout=0)
            except Exception as exc:  # noqa: BLE001 - sent to the driver as one line
                error = one_line(exc)
            with self._cond:  # events emitted while the run finished
                events, self._events = events + tuple(self._events), []
        return StreamPoll(events, tuple(run.snapshots()), done, error, dropped)

    def stop(self) -> None:
        """Stop the analysis; it finalises and its last events come with the next polls."""
        if self.run is not None:
            self.run.stop()
