"""What the desktop window shows, computed from the session's messages and the runs' snapshots.

No Tk here: the window asks the ``ViewModel`` for rows (source, state, progress, ETA, fps,
drops, verdict), the banner of the selected source (text and colours), its per-face score
series and threshold, and the one-line message (an error, or what just happened), and only
draws them. The tests drive it with real event objects and snapshots.

Rows before a run are *ready* (sources opened but not analysed); Start turns them into the
run's placeholders (*starting*, while the model loads) until the run's snapshots name its
streams; the rows of finished runs stay, with their whole-video verdicts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dfstream.errors import DfstreamError
from dfstream.gui.session import EventArrived, Failed, Finished, Message, Notice, Saved, Started
from dfstream.pipeline.state import StreamSnapshot
from dfstream.sinks.dashboard import format_eta
from dfstream.sources import parse_source, redact
from dfstream.types import ScoreEvent, StatusEvent, StreamSummary, Verdict, VerdictEvent

VERDICT_COLOURS: dict[Verdict, tuple[str, str]] = {
    Verdict.REAL: ("#2e7d32", "#ffffff"),
    Verdict.FAKE: ("#c62828", "#ffffff"),
    Verdict.UNCERTAIN: ("#f9a825", "#000000"),
    Verdict.NO_FACES: ("#616161", "#ffffff"),
}
"""(background, foreground) of the banner for each verdict."""
IDLE_COLOURS = ("#37474f", "#ffffff")
ERROR_COLOURS = ("#4e342e", "#ffffff")
MAX_POINTS = 4000
"""Window scores kept per face for the plot (a long live stream keeps the latest)."""


def short_name(source: str) -> str:
    """A source as the list shows it before its stream reports its own name: the parser's
    short name (a file's name, a redacted URL), or the redacted text it cannot parse."""
    try:
        return parse_source(source).name
    except (DfstreamError, ValueError):
        return redact(source)


_STATE_NAMES = {"starting": "opening", "connected": "analysing", "ended": "done"}


@dataclass
class _Row:
    key: str
    source: str
    name: str
    run_id: int | None = None
    stream_id: str | None = None
    state: str = "ready"
    snapshot: StreamSnapshot | None = None
    verdict: Verdict | None = None
    score: float | None = None
    summary: StreamSummary | None = None
    error: str | None = None
    order: int = 1 << 30
    """Place within its run: the source's position among the run's snapshots."""
    series: dict[int, deque[tuple[float, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class RowView:
    """One line of the sources list."""

    key: str
    name: str
    state: str
    progress: float | None
    """Fraction done, 0..1, for files; None for live sources or before decoding starts."""
    progress_text: str
    eta: str
    fps: str
    drops: str
    verdict: str
    verdict_kind: Verdict | None
    final: bool
    error: str | None


@dataclass(frozen=True)
class BannerView:
    """The verdict banner of the selected source."""

    title: str
    detail: str
    background: str
    foreground: str


@dataclass
class _Run:
    threshold: float
    untrained: bool = False
    model: str = ""
    backend: str = ""
    run_dir: Path | None = None
    finished: bool = False


class ViewModel:
    """The window's state (see the module docstring); every method is quick and Tk-free."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._runs: dict[int, _Run] = {}
        self._next = 0
        self.message: str | None = None
        self.message_is_error = False
        self.status = ""
        self.current_run: int | None = None

    # -- sources and runs -------------------------------------------------------------------

    def add_pending(self, sources: Iterable[str]) -> list[str]:
        """Sources opened while nothing runs: rows in state *ready*; returns their keys."""
        keys = []
        for source in sources:
            self._next += 1
            key = f"p{self._next}"
            self._rows[key] = _Row(key, source, short_name(source))
            keys.append(key)
        return keys

    def pending_sources(self) -> list[str]:
        """The sources of the *ready* rows, in order (what Start analyses)."""
        return [r.source for r in self._rows.values() if r.run_id is None]

    def remove(self, key: str) -> None:
        """Forget a row that is not part of a running analysis."""
        row = self._rows.get(key)
        if row is not None and (row.run_id is None or self._runs[row.run_id].finished):
            del self._rows[key]

    def run_starting(self, run_id: int, *, threshold: float | None) -> None:
        """Start was pressed: the ready rows become run ``run_id``'s placeholders
        (``threshold`` None = the model's: 0.5 until the run says which it uses)."""
        self._runs[run_id] = _Run(threshold=0.5 if threshold is None else threshold)
        self.current_run = run_id
        for row in self._rows.values():
            if row.run_id is None:
                row.run_id, row.state = run_id, "starting"
        self.set_message(None)

    @property
    def running(self) -> bool:
        """True from Start until the run's end (or its failure to start)."""
        return self.current_run is not None and not self._runs[self.current_run].finished

    def threshold(self, key: str | None) -> float:
        """The FAKE threshold the row's run uses (0.5 before any run)."""
        row = self._rows.get(key or "")
        if row is None or row.run_id is None:
            return 0.5
        return self._runs[row.run_id].threshold

    def untrained(self, key: str | None) -> bool:
        """True when the row's run scores with the untrained model."""
        row = self._rows.get(key or "")
        return bool(row and row.run_id is not None and self._runs[row.run_id].untrained)

    def saveable(self, key: str | None) -> tuple[int, Path] | None:
        """(run id, output folder) of the selected row's finished run, else of the latest
        finished run; None before any run ended."""
        row = self._rows.get(key or "")
        if row is not None and row.run_id is not None:
            run = self._runs[row.run_id]
            if run.finished and run.run_dir is not None:
                return row.run_id, run.run_dir
        for run_id, run in reversed(self._runs.items()):
            if run.finished and run.run_dir is not None:
                return run_id, run.run_dir
        return None

    def set_message(self, text: str | None, *, error: bool = False) -> None:
        """The one-line message of the window (None: none)."""
        self.message, self.message_is_error = text, error

    # -- what the session says --------------------------------------------------------------

    def apply(self, message: Message) -> None:
        """Take one message of the session into account."""
        run = self._runs.get(message.run_id)
        if run is None:
            return
        if isinstance(message, EventArrived):
            self._apply_event(message.run_id, message.event)
        elif isinstance(message, Started):
            run.untrained, run.model, run.backend = (
                message.untrained,
                message.model,
                message.backend,
            )
            if message.threshold is not None:
                run.threshold = message.threshold
            self.status = f"model: {message.model} · {message.backend}"
        elif isinstance(message, Notice):
            self.status = message.text
        elif isinstance(message, Failed):
            run.finished = True
            for row in self._rows.values():
                if row.run_id == message.run_id and row.stream_id is None:
                    row.run_id, row.state = None, "ready"  # not analysed: Start can retry
            self.set_message(message.message, error=True)
        elif isinstance(message, Finished):
            self._finish(run, message)
        elif isinstance(message, Saved):
            if message.error:
                self.set_message(message.error, error=True)
            else:
                self.set_message(f"Saved {', '.join(message.files)} to {message.folder}")

    def _finish(self, run: _Run, message: Finished) -> None:
        run.finished, run.run_dir = True, message.run_dir
        for summary in message.summaries:
            self._apply_event(message.run_id, summary)
        for row in self._rows.values():
            if row.run_id != message.run_id:
                continue
            if row.stream_id is None:  # stopped before the run was built: not analysed
                row.run_id, row.state = None, "ready"
            elif row.summary is None and row.state != "failed":
                row.state = "stopped"
        problems = [f"output {f.sink} failed: {f.reason}" for f in message.sink_failures]
        if message.error:
            self.set_message(message.error, error=True)
        elif problems:
            self.set_message("; ".join(problems), error=True)
        elif message.stopped:
            self.set_message("Stopped: every output was finalised (File > Save outputs).")
        elif not self.message_is_error:
            self.set_message("Done: File > Save outputs keeps the report, video and JSONL.")

    def _row_for(self, run_id: int, stream_id: str) -> _Row:
        key = f"r{run_id}:{stream_id}"
        row = self._rows.get(key)
        if row is None:
            for old in [k for k, r in self._rows.items() if r.run_id == run_id and not r.stream_id]:
                del self._rows[old]  # the run's placeholders give way to its streams
            row = self._rows[key] = _Row(
                key, stream_id, short_name(stream_id), run_id=run_id, stream_id=stream_id
            )
            row.state = "opening"
        return row

    def _apply_event(self, run_id: int, event: object) -> None:
        if isinstance(event, ScoreEvent):
            row = self._row_for(run_id, event.stream_id)
            points = row.series.setdefault(event.track_id, deque(maxlen=MAX_POINTS))
            points.append((event.media_time, event.score))
            if row.summary is None:
                row.score = event.smoothed
        elif isinstance(event, VerdictEvent):
            row = self._row_for(run_id, event.stream_id)
            if row.summary is None:
                row.verdict, row.score = event.verdict, event.score
        elif isinstance(event, StreamSummary):
            row = self._row_for(run_id, event.stream_id)
            row.summary, row.verdict, row.score = event, event.verdict, event.score
            row.source, row.name = event.source, event.name
            row.error = event.error
            kept = row.state in ("stopped", "removed")  # the summary of what was seen
            row.state = "failed" if event.error else (row.state if kept else "done")
        elif isinstance(event, StatusEvent):
            if event.sink is not None:
                self.set_message(f"output {event.sink} failed: {event.reason}", error=True)
                return
            row = self._row_for(run_id, event.stream_id)
            if row.summary is None:
                row.state = (
                    event.reason
                    if event.reason in ("stopped", "removed")
                    else (_STATE_NAMES.get(event.state, event.state))
                )
                if event.state == "failed":
                    row.error = event.reason

    def apply_snapshots(self, run_id: int, snapshots: Sequence[StreamSnapshot]) -> None:
        """Take the run's latest snapshots (counters, progress, live verdicts)."""
        if run_id not in self._runs:
            return
        for index, snap in enumerate(snapshots):
            row = self._row_for(run_id, snap.stream_id)
            row.snapshot, row.source, row.name, row.order = snap, snap.source, snap.name, index
            if row.summary is None and row.state not in ("stopped", "removed", "failed"):
                row.state = _STATE_NAMES.get(snap.state, snap.state)
                if snap.frames_decoded and snap.score is not None:
                    row.verdict, row.score = snap.verdict, snap.score
            if snap.error and not row.error:
                row.error = snap.error

    # -- what the window draws ---------------------------------------------------------------

    def _ordered(self) -> list[_Row]:
        """Runs in the order they started, each in its sources' order; ready rows last."""
        rows = list(self._rows.values())
        return sorted(rows, key=lambda r: (1 << 30 if r.run_id is None else r.run_id, r.order))

    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [row.key for row in self._ordered()]

    def rows(self) -> list[RowView]:
        """Every row of the sources list, in display order."""
        return [self._view(row) for row in self._ordered()]

    def row(self, key: str | None) -> RowView | None:
        """One row, or None when ``key`` is unknown."""
        row = self._rows.get(key or "")
        return None if row is None else self._view(row)

    def _view(self, row: _Row) -> RowView:
        snap, final = row.snapshot, row.summary is not None
        progress, progress_text, eta, fps, drops = None, "", "", "", ""
        if snap is not None:
            drops = str(snap.dropped)
            if snap.elapsed_s > 0 and snap.frames_analyzed:
                fps = f"{snap.frames_analyzed / snap.elapsed_s:.1f}"
            if snap.live or not snap.media_duration_s:
                progress_text = f"{snap.last_media_time:.1f} s" if snap.frames_decoded else ""
            else:
                done = 1.0 if row.state == "done" else snap.last_media_time / snap.media_duration_s
                progress = min(1.0, max(0.0, done))
                progress_text = f"{100 * progress:.0f}%"
                if not final and row.state not in ("stopped", "failed") and progress > 0:
                    eta = format_eta(snap.elapsed_s * (1.0 - progress) / progress)
        verdict = "" if row.verdict is None else row.verdict.value.replace("_", " ")
        if row.verdict is not None and row.score is not None:
            verdict += f" {row.score:.2f}"
        return RowView(
            key=row.key,
            name=row.name,
            state=row.state,
            progress=progress,
            progress_text=progress_text,
            eta=eta,
            fps=fps,
            drops=drops,
            verdict=verdict,
            verdict_kind=row.verdict,
            final=final,
            error=row.error,
        )

    def banner(self, key: str | None) -> BannerView:
        """The banner for the selected row (or a hint when there is none)."""
        row = self._rows.get(key or "")
        if row is None:
            return BannerView(
                "Open a video, photo, folder or stream",
                "then press Start (Ctrl+R)",
                *IDLE_COLOURS,
            )
        name = row.name
        if row.error:
            return BannerView("ERROR", f"{name}: {row.error}", *ERROR_COLOURS)
        if row.verdict is None:
            title = {"ready": "READY", "starting": "LOADING MODEL"}.get(row.state, "ANALYSING")
            return BannerView(title, name, *IDLE_COLOURS)
        title = row.verdict.value.replace("_", " ")
        if row.summary is not None and row.verdict is Verdict.NO_FACES:
            how = "no face was scored in it (Preferences: try another face detector)"
        elif row.summary is not None:
            final, windows = row.summary.score, row.summary.windows_scored
            how = "whole video"
            if final is not None:
                how = f"whole video: score {final:.2f} over {windows} windows"
        else:
            now = "" if row.score is None else f", score {row.score:.2f}"
            how = f"{'so far' if row.state != 'stopped' else 'when stopped'}{now}"
        detail = f"{name} · {how}"
        if self.untrained(row.key):
            detail += " · UNTRAINED model: scores are meaningless"
        return BannerView(title, detail, *VERDICT_COLOURS[row.verdict])

    def series(self, key: str | None) -> dict[int, tuple[list[float], list[float]]]:
        """Per face track of the row: (media times, window scores) for the plot."""
        row = self._rows.get(key or "")
        if row is None:
            return {}
        return {
            track: ([t for t, _ in points], [s for _, s in points])
            for track, points in sorted(row.series.items())
        }

    def stream_of(self, key: str | None) -> tuple[int, str] | None:
        """(run id, stream id) of a row of the current run, for the preview."""
        row = self._rows.get(key or "")
        if row is None or row.run_id is None or row.stream_id is None:
            return None
        return row.run_id, row.stream_id

    def face_scores(self, key: str | None) -> dict[int, float]:
        """Latest smoothed score of each face of the row (box colours of the preview)."""
        row = self._rows.get(key or "")
        if row is None or row.snapshot is None:
            return {}
        return {face.track_id: face.smoothed for face in row.snapshot.faces}
