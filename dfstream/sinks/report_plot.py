"""The report's PNG: each face's score over media time, one panel per source, with the
threshold line. Rendered with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from dfstream.sinks.report import MAX_PLOTTED_SOURCES

_VERDICT_COLORS = {"REAL": "tab:green", "FAKE": "tab:red", "UNCERTAIN": "goldenrod"}


def _short(source: str) -> str:
    return source if "://" in source else source.rstrip("/").rsplit("/", 1)[-1]


def plot_report(report: Mapping[str, Any], out: IO[bytes], *, threshold: float) -> None:
    """Draw ``report`` (as built by ``ReportSink.build``) into ``out`` as a PNG."""
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
    title = f"{_short(source['source'])}: {verdict}" + ("" if score is None else f" ({score:.2f})")
    ax.set_title(title, fontsize=9, color=_VERDICT_COLORS.get(verdict, "black"))
    media = (source.get("timings") or {}).get("media_s")
    if media:
        ax.set_xlim(0.0, media)
    if not source["tracks"]:
        ax.text(0.5, 0.5, "no faces scored", transform=ax.transAxes, ha="center", color="gray")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
