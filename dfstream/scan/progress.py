"""The progress of a scan: a bar with ETA and throughput on a terminal, plain lines otherwise.

Throughput counts this run only (videos skipped because an earlier run did them are not work
done now): videos per second, face crops per second, and the median seconds per video, the
figures the cost model of ``docs/scale-out.md`` is made of.
"""

from __future__ import annotations

import statistics
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dfstream.scan.schedule import Done, Failed, Report

PLAIN_INTERVAL_S = 10.0


class ScanProgress:
    """Counts finished videos and shows them (see the module docstring).

    ``total`` is the number of videos this run analyses; use it as a context manager.
    """

    def __init__(self, console: Console, *, total: int, interval_s: float = PLAIN_INTERVAL_S):
        self.console = console
        self.total = total
        self.done = 0
        self.failed = 0
        self.crops = 0
        self.seconds: list[float] = []
        self.started = time.monotonic()
        self._interval_s = interval_s
        self._last_line = self.started
        self._bar: Progress | None = None
        self._task = None
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]scan"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task("scan", total=total, rate="")

    def __enter__(self) -> ScanProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def rates(self) -> dict[str, float | None]:
        """This run's throughput: videos/s, crops/s, median seconds per video."""
        elapsed = max(self.elapsed_s, 1e-9)
        finished = self.done + self.failed
        return {
            "videos_per_s": finished / elapsed if finished else None,
            "crops_per_s": self.crops / elapsed if self.done else None,
            "median_video_s": statistics.median(self.seconds) if self.seconds else None,
        }

    def rate_text(self, *, markup: bool = True) -> str:
        """``0.8 videos/s · 31 crops/s`` (empty before the first video)."""
        rates = self.rates()
        if rates["videos_per_s"] is None:
            return ""
        text = f"{rates['videos_per_s']:.2f} videos/s"
        if rates["crops_per_s"] is not None:
            text += f" · {rates['crops_per_s']:.0f} crops/s"
        if self.failed:
            failed = f"{self.failed} failed"
            text += f" · [red]{failed}[/red]" if markup else f" · {failed}"
        return text

    def eta_s(self) -> float | None:
        """Seconds left at this run's pace (None before the first video)."""
        finished = self.done + self.failed
        if not finished:
            return None
        return (self.total - finished) * self.elapsed_s / finished

    def add(self, report: Report) -> None:
        """Count one finished video (done or failed) and refresh the display."""
        if isinstance(report, Done):
            self.done += 1
            self.crops += report.result.crops
            self.seconds.append(report.result.seconds)
        else:
            self.failed += 1
            self.console.print(f"dfstream: {_short(report)}", highlight=False, soft_wrap=True)
        self._show()

    def note(self, message: str) -> None:
        """A line above the bar (a worker lost, a notice)."""
        self.console.print(f"dfstream: {message}", highlight=False, soft_wrap=True)

    def _show(self) -> None:
        finished = self.done + self.failed
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=finished, rate=self.rate_text())
            return
        now = time.monotonic()
        if now - self._last_line < self._interval_s and finished < self.total:
            return
        self._last_line = now
        eta = self.eta_s()
        eta_text = "-" if eta is None else f"{eta:.0f} s"
        self.console.print(
            f"scan: {finished}/{self.total} videos, {self.rate_text(markup=False) or 'starting'}, "
            f"ETA {eta_text}",
            highlight=False,
            markup=False,
        )


def _short(failed: Failed) -> str:
    return f"failed after {len(failed.reasons)} tries: {failed.describe()}"
