"""The live terminal dashboard: a rich ``Live`` that renders stream snapshots about 4 times a
second, and the choice between it and plain progress lines.

The dashboard never touches the pipeline: ``Live`` calls ``Dashboard.__rich__`` on its own
refresh thread, which takes ``StreamState.snapshot()`` copies and renders them. Per stream it
shows the source (credentials redacted), connection state, input and analysed frames per second,
dropped frames, latency p50/p95 and the number of faces, a progress bar with ETA for files, and
per face the smoothed score, a sparkline of recent window scores and the verdict in colour.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dfstream.pipeline.scoring import ScoringSettings
from dfstream.pipeline.state import StreamSnapshot
from dfstream.sinks.console import ProgressLog, verdict_text
from dfstream.sources import redact
from dfstream.types import Verdict

SPARK_CHARS = "▁▂▃▄▅▆▇█"
REFRESH_PER_SECOND = 4
RATE_WINDOW_S = 5.0


def _name(snap: StreamSnapshot) -> str:
    """A stream as shown: its short name (a local file by its name), credentials redacted
    again in case a caller's snapshot carries them."""
    return redact(snap.name)


def sparkline(values: Sequence[float], width: int = 24) -> Text:
    """The last ``width`` scores in [0, 1] as block characters, each coloured by its value."""
    text = Text()
    for value in list(values)[-width:]:
        v = min(1.0, max(0.0, value))
        char = SPARK_CHARS[min(len(SPARK_CHARS) - 1, int(v * len(SPARK_CHARS)))]
        text.append(char, style="red" if v >= 0.5 else "green")
    return text


def format_eta(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for an ETA; ``-`` when unknown."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return "-"
    s = round(float(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


_STATE_STYLES = {"failed": "bold red", "ended": "dim", "stalled": "yellow", "corrupt": "yellow"}


class _Rates:
    """Frames per second over the last few seconds, from successive snapshot counters."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[tuple[float, int, int]]] = {}

    def update(self, snap: StreamSnapshot, now: float) -> tuple[float | None, float | None]:
        samples = self._samples.setdefault(snap.stream_id, deque())
        samples.append((now, snap.frames_decoded, snap.frames_analyzed))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
            samples.popleft()
        if snap.state in ("ended", "failed") or len(samples) < 2:
            if snap.elapsed_s > 0:  # whole-run averages once there is nothing live to measure
                return snap.frames_decoded / snap.elapsed_s, snap.frames_analyzed / snap.elapsed_s
            return None, None
        t0, d0, a0 = samples[0]
        span = now - t0
        if span <= 0:
            return None, None
        return (snap.frames_decoded - d0) / span, (snap.frames_analyzed - a0) / span


class Dashboard:
    """A renderable over live snapshots: pass it to ``Live(get_renderable=...)`` or print it."""

    def __init__(
        self,
        snapshots: Callable[[], Sequence[StreamSnapshot]],
        *,
        backend: str,
        untrained: bool,
        scoring: ScoringSettings | None = None,
        model: str | None = None,
    ) -> None:
        self._snapshots = snapshots
        self.backend = backend
        self.model = model
        self.untrained = untrained
        self.scoring = scoring or ScoringSettings()
        self._rates = _Rates()

    def __rich__(self) -> RenderableType:
        return self.render(self._snapshots())

    def render(self, snaps: Sequence[StreamSnapshot]) -> RenderableType:
        """The whole dashboard for these snapshots."""
        now = time.monotonic()
        parts: list[RenderableType] = []
        if self.untrained:
            parts.append(
                Text(
                    " UNTRAINED MODEL: scores are random, for pipeline checks only ",
                    style="bold white on red",
                    justify="center",
                )
            )
        parts.append(self._streams_table(snaps, now))
        parts.append(self._progress_table(snaps))
        for snap in snaps:
            if snap.faces:
                parts.append(self._faces_table(snap))
        header = Text.assemble(("dfstream", "bold"), f"  {self.backend}  ")
        if self.model:
            header.append(f"model {self.model}  ")
        header.append(f"threshold {self.scoring.threshold:.2f}  ")
        header.append(f"{len(snaps)} stream(s)", style="dim")
        return Panel(Group(*parts), title=header, title_align="left", border_style="blue")

    def _streams_table(self, snaps: Sequence[StreamSnapshot], now: float) -> Table:
        """One row of numbers per stream, and below it the progress (files) or media time."""
        table = Table(expand=True, box=None, pad_edge=False)
        table.add_column("source", overflow="fold", min_width=12, ratio=1)
        table.add_column("state", no_wrap=True)
        for name in ("in fps", "an fps", "drop", "lat ms", "faces"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for snap in snaps:
            in_fps, an_fps = self._rates.update(snap, now)
            latency = "-" if snap.latency_ms is None else "{:.0f}/{:.0f}".format(*snap.latency_ms)
            state_style = _STATE_STYLES.get(snap.state, "cyan")
            table.add_row(
                _name(snap),
                Text(snap.state, style=state_style),
                "-" if in_fps is None else f"{in_fps:.1f}",
                "-" if an_fps is None else f"{an_fps:.1f}",
                str(snap.dropped),
                latency,
                str(sum(f.active for f in snap.faces)),
                verdict_text(snap.verdict),
            )
        return table

    def _progress_table(self, snaps: Sequence[StreamSnapshot]) -> Table:
        """Per stream: a progress bar with ETA (files) or the media time seen (live)."""
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(ratio=1, overflow="ellipsis", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        for snap in snaps:
            name = Text(_name(snap), style="dim")
            if snap.live or not snap.media_duration_s:
                seen = f"live, {snap.last_media_time:.1f} s of video"
                if snap.corrupt_frames:  # dropped before analysis: why a live view may lag
                    seen += f", {snap.corrupt_frames} corrupt frames dropped"
                grid.add_row(name, Text(seen), "")
                continue
            done = 1.0 if snap.state == "ended" else snap.last_media_time / snap.media_duration_s
            done = min(1.0, max(0.0, done))
            eta = snap.elapsed_s * (1.0 - done) / done if done > 0 else None
            grid.add_row(
                name,
                ProgressBar(total=1.0, completed=done, width=24),
                f"{100 * done:3.0f}% ETA {format_eta(eta)}",
            )
        return grid

    def _faces_table(self, snap: StreamSnapshot) -> Table:
        title = f"faces in {_name(snap)}"
        table = Table(title=title, title_justify="left", box=None)
        table.add_column("face", min_width=10)
        table.add_column("score", justify="right")
        table.add_column("recent windows", min_width=24)
        table.add_column("verdict")
        for face in sorted(snap.faces, key=lambda f: (not f.active, f.track_id)):
            verdict = self.scoring.classify(face.smoothed, Verdict.UNCERTAIN)
            style = "" if face.active else "dim"
            table.add_row(
                Text(f"#{face.track_id}" + ("" if face.active else " (gone)"), style=style),
                Text(f"{face.smoothed:.3f}", style=style),
                sparkline(face.recent),
                verdict_text(verdict),
            )
        return table


class DashboardView:
    """Context manager that shows a ``Dashboard`` in a ``Live`` display for the run's length."""

    def __init__(self, dashboard: Dashboard, console: Console) -> None:
        self.dashboard = dashboard
        self._live = Live(
            get_renderable=lambda: dashboard,
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
            # Notices must be printed through ``console`` (they then appear above the live
            # display); redirecting the process's streams garbles the display in tmux.
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> DashboardView:
        self._live.start(refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()  # the final state stays on screen
        self._live.stop()


def live_view(
    snapshots: Callable[[], Sequence[StreamSnapshot]],
    console: Console,
    *,
    dashboard: bool,
    backend: str,
    untrained: bool,
    scoring: ScoringSettings | None = None,
    model: str | None = None,
) -> AbstractContextManager[object]:
    """The dashboard when asked for and ``console`` is a terminal, else plain progress lines."""
    if dashboard and console.is_terminal:
        board = Dashboard(
            snapshots, backend=backend, untrained=untrained, scoring=scoring, model=model
        )
        return DashboardView(board, console)
    return ProgressLog(snapshots, console)
