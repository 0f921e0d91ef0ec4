"""JSON Lines output: one event per line, flushed per line, so a killed run loses nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from dfstream.errors import OutputError
from dfstream.sinks.base import Sink
from dfstream.types import Event


class JsonlSink(Sink):
    """Writes ``event.to_json()`` objects to a file or to standard output (``-``)."""

    def __init__(self, stream: TextIO, *, owned: bool) -> None:
        self._stream = stream
        self._owned = owned

    @classmethod
    def open(cls, target: str) -> JsonlSink:
        """Open ``target`` for writing now, so a bad path fails before any decoding."""
        if target == "-":
            return cls(sys.stdout, owned=False)
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(path.open("w", encoding="utf-8", buffering=1), owned=True)
        except OSError as exc:
            raise OutputError(f"--jsonl {target}: cannot write there ({exc.strerror})") from exc

    def handle(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()
        if self._owned:
            self._stream.close()
