"""Which opener opens which ``SourceKind``, and ``open_source``, the one way to open a source.

The built-in kinds register themselves when ``dfstream.sources`` is imported (``file.py``:
files and folders; ``live.py``: RTSP, HTTP, HLS, UDP, webcams). A new kind is one module with an
``Opener`` plus one ``register_source(kind, opener)`` call, and its ``SourceKind`` member and
URL scheme in ``dfstream.sources.spec``.
"""

from __future__ import annotations

import threading

from dfstream.errors import SourceError
from dfstream.sources.base import LiveSettings, Opener, Source, StatusCallback
from dfstream.sources.spec import SourceKind, SourceSpec, parse_source

_OPENERS: dict[SourceKind, Opener] = {}


def register_source(kind: SourceKind, opener: Opener, *, replace: bool = False) -> None:
    """Make ``opener`` the one that opens ``kind``; a second registration of the same kind is a
    mistake unless ``replace`` says it is meant (e.g. a test double)."""
    if not isinstance(kind, SourceKind):
        raise TypeError(f"kind: expected a SourceKind but got {kind!r}")
    if kind in _OPENERS and not replace and _OPENERS[kind] is not opener:
        raise ValueError(f"{kind.value}: an opener is already registered (pass replace=True)")
    _OPENERS[kind] = opener


def registered_kinds() -> tuple[SourceKind, ...]:
    """The kinds that have an opener, in ``SourceKind`` order."""
    return tuple(kind for kind in SourceKind if kind in _OPENERS)


def open_source(
    spec: SourceSpec | str,
    *,
    stream_id: str | None = None,
    live: LiveSettings | None = None,
    on_status: StatusCallback | None = None,
    stop: threading.Event | None = None,
) -> Source:
    """Open one source (a string is parsed first); ``stream_id`` defaults to its display form.

    Live sources use ``live`` settings (timeouts, reconnect), report connection changes to
    ``on_status`` and end on ``stop``. Raises ``SourceError`` with a one-line message for
    anything that cannot be opened.
    """
    if isinstance(spec, str):
        spec = parse_source(spec)
    opener = _OPENERS.get(spec.kind)
    if opener is None:
        raise SourceError(f"{spec.display}: no opener is registered for {spec.kind.value} sources")
    return opener(
        spec,
        stream_id=spec.display if stream_id is None else stream_id,
        live=live or LiveSettings(),
        on_status=on_status,
        stop=stop,
    )
