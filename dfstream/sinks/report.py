"""``--report OUT.json``: a JSON report of the run and, beside it, ``OUT.png``, a plot of each
face's score over time with the threshold line.

The report holds, per source and per face track, the window score series (media time, frame
index, raw and smoothed score), the verdict changes, timings (wall time, media time, latency
percentiles) and the run's settings. Both files are opened when the run is prepared, so a path
that cannot be written fails before any decoding; they are written when the run ends, also after
Ctrl-C or a failed source.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from dfstream import __version__
from dfstream.errors import OutputError
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.sinks.base import Sink
from dfstream.sources import redact
from dfstream.types import Event, ScoreEvent, StatusEvent, StreamSummary, Verdict, VerdictEvent

REPORT_FORMAT = "dfstream-report"
REPORT_VERSION = 1
MAX_PLOTTED_SOURCES = 8


def plot_path(path: Path) -> Path:
    """The PNG beside a report: ``OUT.json`` -> ``OUT.png`` (other names get ``.png`` added)."""
    return path.with_suffix(".png") if path.suffix.lower() == ".json" else Path(f"{path}.png")


def _open(path: Path, mode: str) -> IO[Any]:
    if path.is_dir():
        raise OutputError(f"--report {path}: is a folder; give a file name such as report.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open(mode, encoding=None if "b" in mode else "utf-8")
    except OSError as exc:
        raise OutputError(f"--report {path}: cannot write there ({exc.strerror})") from exc


class _Series:
    """Window scores of one track, as columns."""

    def __init__(self) -> None:
        self.media_time: list[float] = []
        self.frame_index: list[int] = []
        self.score: list[float] = []
        self.smoothed: list[float] = []

    def add(self, event: ScoreEvent) -> None:
        self.media_time.append(round(event.media_time, 4))
        self.frame_index.append(event.frame_index)
        self.score.append(round(event.score, 6))
        self.smoothed.append(round(event.smoothed, 6))


class ReportSink(Sink):
    """Collects events during the run; writes the JSON report and its plot on ``close``."""

    name = "report"

    def __init__(
        self,
        json_file: IO[str],
        png_file: IO[bytes],
        *,
        path: Path,
        header: Mapping[str, Any],
        scoring: ScoringSettings,
    ) -> None:
        """Use files opened by ``ReportSink.open``."""
        self._json_file = json_file
        self._png_file = png_file
        self.path = path
        self.png_path = plot_path(path)
        self._header = dict(header)
        self._scoring = scoring
        self._order: list[str] = []
        self._series: dict[str, dict[int, _Series]] = defaultdict(dict)
        self._latency: dict[str, list[float]] = defaultdict(list)
        self._verdicts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._status: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._summaries: dict[str, StreamSummary] = {}
        self._output_failures: list[dict[str, Any]] = []
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, header: Mapping[str, Any], scoring: ScoringSettings) -> ReportSink:
        """Open ``path`` and its PNG now, or raise ``OutputError`` before any decoding."""
        json_file = _open(path, "w")
        try:
            png_file = _open(plot_path(path), "wb")
        except OutputError:
            json_file.close()
            raise
        return cls(json_file, png_file, path=path, header=header, scoring=scoring)

    def _stream(self, stream_id: str) -> str:
        if stream_id not in self._order:
            self._order.append(stream_id)
        return stream_id

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent):
            sid = self._stream(event.stream_id)
            self._series[sid].setdefault(event.track_id, _Series()).add(event)
            self._latency[sid].append(event.latency_ms)
        elif isinstance(event, VerdictEvent):
            self._verdicts[self._stream(event.stream_id)].append(
                {k: v for k, v in event.to_json().items() if k not in ("type", "stream")}
            )
        elif isinstance(event, StatusEvent) and event.sink is not None:
            self._output_failures.append(
                {"sink": event.sink, "reason": event.reason, "wall_time": event.wall_time}
            )
        elif isinstance(event, StatusEvent):
            self._status[self._stream(event.stream_id)].append(
                {k: v for k, v in event.to_json().items() if k not in ("type", "stream")}
            )
        elif isinstance(event, StreamSummary):
            self._summaries[self._stream(event.stream_id)] = event

    def build(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "dfstream_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **self._header,
            "plot": self.png_path.name,
            "sources": [self._source(sid) for sid in self._order],
            "output_failures": self._output_failures,
        }

    def _source(self, sid: str) -> dict[str, Any]:
        summary = self._summaries.get(sid)
        latencies = self._latency.get(sid, [])
        timings: dict[str, Any] = {}
        if summary is not None:
            media = summary.media_duration_s
            timings = {
                "wall_s": round(summary.duration_s, 3),
                "media_s": None if media is None else round(media, 4),
                "realtime_factor": (
                    round(media / summary.duration_s, 3) if media and summary.duration_s else None
                ),
                "frames_decoded": summary.frames_decoded,
                "frames_analyzed": summary.frames_analyzed,
                "crops_embedded": summary.crops_embedded,
                "windows_scored": summary.windows_scored,
            }
        if latencies:
            p50, p95 = np.percentile(latencies, [50, 95])
            timings["latency_ms"] = {
                "p50": round(float(p50), 2),
                "p95": round(float(p95), 2),
                "max": round(max(latencies), 2),
            }
        by_track = sorted(self._series.get(sid, {}).items())
        longest = max((len(s.score) for _, s in by_track), default=0)
        floor = max(1.0, self._scoring.min_track_fraction * longest)
        tracks = []
        for track_id, series in by_track:
            mean = float(np.mean(series.score))
            tracks.append(
                {
                    "track": track_id,
                    "windows": len(series.score),
                    "mean_score": round(mean, 6),
                    "max_score": round(max(series.score), 6),
                    "first_media_time": series.media_time[0],
                    "last_media_time": series.media_time[-1],
                    "verdict": self._scoring.classify(mean, Verdict.UNCERTAIN).value,
                    "in_final_verdict": len(series.score) >= floor,
                    "series": vars(series),
                }
            )
        source = summary.source if summary else sid
        return {
            "stream": redact(sid),
            "source": redact(source),
            "name": redact(summary.name if summary else sid),
            "verdict": summary.verdict.value if summary else None,
            "score": None if summary is None or summary.score is None else round(summary.score, 6),
            "error": summary.error if summary else "run ended before this source finished",
            "timings": timings,
            "verdict_changes": self._verdicts.get(sid, []),
            "status": self._status.get(sid, []),
            "tracks": tracks,
        }

    def abort(self) -> None:
        """Close and remove both files without writing (the run never started)."""
        self._closed = True
        for handle, path in ((self._json_file, self.path), (self._png_file, self.png_path)):
            handle.close()
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Write the JSON and the PNG (once)."""
        if self._closed:
            return
        self._closed = True
        report = self.build()
        try:
            with self._json_file:
                json.dump(report, self._json_file, indent=1)
                self._json_file.write("\n")
            with self._png_file:
                plot_report(report, self._png_file, threshold=self._scoring.threshold)
        except OSError as exc:
            raise OutputError(f"--report {self.path}: writing failed ({exc.strerror})") from exc


# -- the plot ------------------------------------------------------------------------------

_VERDICT_COLORS = {"REAL": "tab:green", "FAKE": "tab:red", "UNCERTAIN": "goldenrod"}


def plot_report(report: Mapping[str, Any], out: IO[bytes], *, threshold: float) -> None:
    """Draw ``report`` (as built by ``ReportSink.build``) into ``out`` as a PNG: one panel per
    source, each face's smoothed score over media time (window scores as dots), the threshold
    dashed. matplotlib is imported here, with the Agg backend, so that it loads only when a
    report is written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(report.get("sources", []))[:MAX_PLOTTED_SOURCES] or [None]
    fig, axes = plt.subplots(
        len(sources), 1, figsize=(8, 2.6 * len(sources) + 0.4), squeeze=False, dpi=90
    )
    try:
        for ax, source in zip(axes[:, 0], sources, strict=True):
            _panel(ax, source, threshold=threshold)
        if report.get("untrained"):
            fig.text(
                0.5, 0.5, "UNTRAINED MODEL", fontsize=34, color="red", alpha=0.15,
                ha="center", va="center", rotation=20,
            )  # fmt: skip
        fig.suptitle(f"dfstream: score over time ({report.get('backend', '')})", fontsize=10)
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)


def _panel(ax: Any, source: Mapping[str, Any] | None, *, threshold: float) -> None:
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("P(fake)")
    ax.set_xlabel("media time (s)")
    ax.grid(alpha=0.3)
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    if source is None:
        ax.set_title("no source finished", fontsize=9)
        return
    for track in source["tracks"]:
        series = track["series"]
        (line,) = ax.plot(
            series["media_time"], series["smoothed"], linewidth=1.6,
            label=f"face #{track['track']} (mean {track['mean_score']:.2f})",
        )  # fmt: skip
        ax.scatter(series["media_time"], series["score"], s=6, color=line.get_color(), alpha=0.35)
    verdict = source.get("verdict") or "-"
    score = source.get("score")
    title = f"{source['name']}: {verdict}" + ("" if score is None else f" ({score:.2f})")
    ax.set_title(title, fontsize=9, color=_VERDICT_COLORS.get(verdict, "black"))
    media = (source.get("timings") or {}).get("media_s")
    if media:
        ax.set_xlim(0.0, media)
    if not source["tracks"]:
        ax.text(0.5, 0.5, "no faces scored", transform=ax.transAxes, ha="center", color="gray")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
