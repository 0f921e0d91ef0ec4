"""JSON Lines output: one event per line, flushed per line, so a killed run loses nothing."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TextIO

from dfstream.errors import OutputError
from dfstream.sinks.base import Sink
from dfstream.types import Event


class JsonlSink(Sink):
    """Writes ``event.to_json()`` objects to a file or to standard output (``-``).

    A write that fails (disk full, a closed pipe) raises ``OutputError``: the sink group takes
    this output out of the run, the others go on, and the run exits with code 6."""

    name = "jsonl"

    def __init__(self, stream: TextIO, *, owned: bool, target: str = "-") -> None:
        self._stream = stream
        self._owned = owned
        self._target = target

    @classmethod
    def open(cls, target: str) -> JsonlSink:
        """Open ``target`` for writing now, so a bad path fails before any decoding."""
        if target == "-":
            return cls(sys.stdout, owned=False)
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(path.open("w", encoding="utf-8", buffering=1), owned=True, target=target)
        except OSError as exc:
            raise OutputError(f"--jsonl {target}: cannot write there ({exc.strerror})") from exc

    def handle(self, event: Event) -> None:
        try:
            self._stream.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
            self._stream.flush()
        except OSError as exc:
            raise OutputError(
                f"--jsonl {self._target}: writing failed ({exc.strerror or exc})"
            ) from exc

    def close(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputError(
                f"--jsonl {self._target}: writing failed ({exc.strerror or exc})"
            ) from exc
        finally:
            if self._owned:
                with contextlib.suppress(OSError):  # the flush above reported the failure
                    self._stream.close()
