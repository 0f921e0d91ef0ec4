"""The sink interface: receive events from the inference thread, then close."""

from __future__ import annotations

from collections.abc import Iterable

from dfstream.types import Event


class Sink:
    """Consumes pipeline events. ``handle`` must be quick: it runs on the inference thread.

    The base class is also the null sink: it ignores everything.
    """

    def handle(self, event: Event) -> None:
        """Receive one event."""

    def close(self) -> None:
        """Finalise outputs; called once, also after errors and interrupts."""


class SinkGroup(Sink):
    """Fans events out to several sinks; closes all of them even if one fails."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)

    def handle(self, event: Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    def close(self) -> None:
        first_error: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as exc:  # noqa: BLE001 - close the others, then re-raise
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
