"""Plain terminal output: periodic progress lines, notable events, and the final summary table.

Used when stdout is not a terminal or with ``--no-dashboard``. Everything goes to the console it
is given (standard error when JSONL goes to standard output).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dfstream.pipeline.state import StreamSnapshot
from dfstream.sinks.base import Sink
from dfstream.types import Event, StatusEvent, StreamSummary, Verdict, VerdictEvent

VERDICT_STYLES = {
    Verdict.REAL: "bold green",
    Verdict.FAKE: "bold red",
    Verdict.UNCERTAIN: "bold yellow",
    Verdict.NO_FACES: "dim",
}


def verdict_text(verdict: Verdict) -> Text:
    """A verdict in its colour."""
    return Text(verdict.value, style=VERDICT_STYLES[verdict])


def format_progress(snap: StreamSnapshot) -> str:
    """One progress line for a stream."""
    parts = [f"{snap.stream_id}: {snap.state}", f"{snap.frames_decoded} frames"]
    if snap.media_duration_s:
        pct = min(100.0, 100.0 * snap.last_media_time / snap.media_duration_s)
        parts.append(f"{pct:.0f}%")
    parts.append(f"{snap.crops_embedded} crops, {snap.windows_scored} windows")
    faces = [f for f in snap.faces if f.active]
    if faces:
        parts.append(", ".join(f"face {f.track_id} {f.smoothed:.2f}" for f in faces))
    if snap.dropped:
        parts.append(f"{snap.dropped} dropped")
    if snap.corrupt_frames:
        parts.append(f"{snap.corrupt_frames} corrupt")
    if snap.latency_ms:
        parts.append(f"latency p50 {snap.latency_ms[0]:.0f} / p95 {snap.latency_ms[1]:.0f} ms")
    parts.append(snap.verdict.value)
    return " | ".join(parts)


class ProgressLog:
    """Prints a progress line per running stream every ``interval`` seconds, on its own thread."""

    def __init__(
        self,
        snapshots: Callable[[], Sequence[StreamSnapshot]],
        console: Console,
        *,
        interval: float = 2.0,
    ) -> None:
        self._snapshots = snapshots
        self._console = console
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> ProgressLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _loop(self) -> None:
        while not self._done.wait(self._interval):
            for snap in self._snapshots():
                if snap.state not in ("ended", "failed"):
                    self._console.print(format_progress(snap), highlight=False, soft_wrap=True)


class EventLog(Sink):
    """Prints the events a person watching plain output wants to see as they happen."""

    name = "log"

    def __init__(self, console: Console) -> None:
        self._console = console

    def handle(self, event: Event) -> None:
        if isinstance(event, StatusEvent) and event.state == "sink_failed":
            self._console.print(
                f"dfstream: error: output {event.sink} failed: {event.reason}",
                highlight=False,
                soft_wrap=True,
            )
        elif isinstance(event, StatusEvent) and event.state == "failed":
            self._console.print(f"dfstream: error: {event.reason}", highlight=False, soft_wrap=True)
        elif isinstance(event, StatusEvent) and event.state not in ("connected", "ended"):
            reason = f" ({event.reason})" if event.reason else ""
            self._console.print(
                f"{event.stream_id}: {event.state}{reason}", highlight=False, soft_wrap=True
            )
        elif isinstance(event, VerdictEvent):
            self._console.print(
                f"{event.stream_id}: verdict {event.verdict.value} (score {event.score:.3f} "
                f"at {event.media_time:.1f} s)",
                highlight=False,
                soft_wrap=True,
            )


def compact_table(**options: Any) -> Table:
    """A rich table in dfstream's compact style: a rule under the header, no outer edge, one
    space between columns, so that ten columns of numbers fit an 80-column terminal."""
    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, **options
    )


def summary_table(
    summaries: Sequence[StreamSummary],
    *,
    backend: str,
    untrained: bool,
    model: str | None = None,
    threshold: str | None = None,
) -> Table:
    """The end-of-run table: one row per source; the title names the backend and the model,
    the caption the FAKE threshold and where it came from (``ScoringSettings.describe_threshold``).
    """
    title = f"dfstream summary ({backend})"
    if model:
        title += f" · model {model}"
    if untrained:
        title += " [UNTRAINED model: scores are meaningless]"
    caption = f"FAKE threshold {threshold}" if threshold else None
    # every column fits an 80-column terminal: numbers never wrap, a long source name folds
    table = compact_table(
        title=title, title_justify="left", caption=caption, caption_justify="left"
    )
    table.add_column("source", overflow="fold", min_width=12)
    for name, justify in (
        ("verdict", "left"),
        ("score", "right"),
        ("faces", "right"),
        ("frames", "right"),
        ("analysed", "right"),
        ("crops", "right"),
        ("windows", "right"),
        ("time s", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(
            s.name,
            Text("ERROR", style="bold red") if s.error else verdict_text(s.verdict),
            "-" if s.score is None else f"{s.score:.3f}",
            str(len(s.tracks)),
            str(s.frames_decoded),
            str(s.frames_analyzed),
            str(s.crops_embedded),
            str(s.windows_scored),
            f"{s.duration_s:.1f}",
        )
    skipped = sum(1 for s in summaries if s.skipped)
    if skipped:
        photos = "photo" if skipped == 1 else "photos"
        table.caption = f"{skipped} {photos} skipped: no face found"
        table.caption_justify = "left"
    return table
