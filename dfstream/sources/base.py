"""What every source shares: the ``Source`` interface, the live settings and the opener type.

A ``Source`` turns one ``SourceSpec`` into decoded ``Frame`` s; an ``Opener`` makes one (see
``dfstream.sources.registry``: one opener per ``SourceKind``).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar

from dfstream.cputime import NO_CLOCK, StageClock
from dfstream.sources.spec import SourceSpec
from dfstream.types import Frame

_SourceT = TypeVar("_SourceT", bound="Source")

StatusCallback = Callable[[str, str], None]
"""Called with (state, reason) on connection changes: disconnected, stalled, corrupt,
reconnecting, connected. The reason is one line with credentials redacted."""


@dataclass(frozen=True, kw_only=True)
class LiveSettings:
    """Timeouts and reconnect policy of live sources (see README, "Live sources").

    ``reconnect`` is how many reconnect attempts one outage may take (None = forever);
    ``stall_timeout`` is how long a connected source may deliver no frame before it is reported
    stalled and reconnected. The effective FFmpeg read timeout is the smaller of
    ``read_timeout`` and ``stall_timeout``, so that a read blocked on a silent socket cannot
    hide a stall. Backoff before attempt k is ``min(backoff_max, backoff_base * 2**k)`` times a
    random factor in [0.5, 1] (jitter: many cameras behind one router do not retry in step).
    ``transport`` is the RTP transport of RTSP sources. ``keyframe_timeout`` is how long a new
    connection may deliver data without any keyframe (a client joins a camera's GOP wherever it
    is: 10 s GOPs are common) before it is reported ``corrupt``.
    """

    open_timeout: float = 10.0
    read_timeout: float = 10.0
    stall_timeout: float = 10.0
    reconnect: int | None = None
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    transport: str = "tcp"
    keyframe_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "open_timeout", "read_timeout", "stall_timeout", "backoff_base", "keyframe_timeout",
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0 but got {getattr(self, name)}")
        if self.reconnect is not None and self.reconnect < 0:
            raise ValueError(f"reconnect: expected >= 0 or None but got {self.reconnect}")
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"transport: expected tcp or udp but got {self.transport!r}")


class Source(ABC):
    """One stream of frames: a file, a camera or a network stream.

    ``frames()`` is meant to be iterated once and closes the source when it ends; to stop early,
    stop iterating (or close the iterator) and call ``close()``. Use it as a context manager.
    """

    stream_id: str
    source: str
    """What to show the user (credentials redacted)."""
    live: bool
    """Real time: frames are dropped rather than waited for when analysis falls behind."""
    fps: float | None
    media_duration_s: float | None
    width: int
    height: int
    clock: StageClock = NO_CLOCK
    """The reading thread's stage clock (``dfstream.cputime``): a source that decodes bills
    ``decode`` and ``convert`` to it, and calls ``clock.poll()`` before it closes a decoder (whose
    threads end with it). The reader sets it; nobody else needs to."""

    @property
    def decoder_threads(self) -> int | None:
        """Threads the decoder uses (FFmpeg's ``thread_count``), None where unknown."""
        return None

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Decoded frames in presentation order."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; safe to call more than once."""

    def __enter__(self: _SourceT) -> _SourceT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stream_id={self.stream_id!r}, source={self.source!r})"


class Opener(Protocol):
    """Opens one kind of source: validates and connects now, or raises a one-line
    ``SourceError``. ``on_status`` and ``stop`` matter to live sources only."""

    def __call__(
        self,
        spec: SourceSpec,
        *,
        stream_id: str,
        live: LiveSettings,
        on_status: StatusCallback | None,
        stop: threading.Event | None,
    ) -> Source:
        """The opened source."""
        ...
