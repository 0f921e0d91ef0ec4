"""A scan's outputs, in one folder: ``results.jsonl`` (merged, resumable), ``verdicts.csv`` and
``report.json``.

``results.jsonl`` gets, per video, one block written at once: its ``score`` and ``verdict``
events when asked for (``--events``), then one ``summary`` line (the analysis command's
summary object plus ``video``, ``worker``, ``attempts``, ``seconds``), or one ``failed`` line
(``video``, ``reason``, ``reasons``, ``workers``). Every line has ``video``, the absolute path.
A ``scan`` line opens each run (settings, executor). Blocks are appended and flushed as results
arrive, so a killed scan loses only the videos in flight.

Resuming: opening the folder again reads the file, keeps every complete block, cuts off a
partial one at the end (a scan killed mid-write), and the videos with a ``summary`` are
skipped. Failed videos are tried again by a rerun (``--fresh`` starts over). ``verdicts.csv``
and ``report.json`` are rewritten from the whole file at the end of every run, so they cover
every run so far.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from typing import IO, Any

from dfstream.errors import OutputError
from dfstream.scan.schedule import Done, Failed

RESULTS_NAME = "results.jsonl"
VERDICTS_NAME = "verdicts.csv"
REPORT_NAME = "report.json"
REPORT_FORMAT = "dfstream-scan-report"
CSV_FIELDS = (
    "video", "status", "verdict", "score", "windows", "tracks", "frames_decoded",
    "crops", "media_duration_s", "seconds", "attempts", "worker", "error",
)  # fmt: skip
_BLOCK_ENDS = ("summary", "failed", "scan")


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


def read_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The complete blocks of ``path`` as parsed lines, and the byte length they take (what
    follows is a block cut off mid-write)."""
    if not path.exists():
        return [], 0
    lines: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    offset = end = 0
    with path.open("rb") as fh:
        for raw in fh:
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break
            try:
                data = json.loads(raw)
            except ValueError:
                break
            lines.append(data)
            if data.get("type") in _BLOCK_ENDS:
                kept += lines
                lines = []
                end = offset
    return kept, end


class ScanResults:
    """The output folder of a scan (see the module docstring)."""

    def __init__(self, folder: Path, stream: IO[str], lines: list[dict[str, Any]]) -> None:
        """Use ``ScanResults.open``."""
        self.folder = folder
        self._stream = stream
        self.done: set[str] = {d["video"] for d in lines if d.get("type") == "summary"}
        """Videos with a summary from an earlier run: a rerun skips them."""
        self.previous_failures = {d["video"] for d in lines if d.get("type") == "failed"}

    @classmethod
    def open(cls, folder: Path, *, fresh: bool = False) -> ScanResults:
        """Open (or create) ``folder``; ``fresh`` forgets earlier runs. Raises ``OutputError``."""
        path = folder / RESULTS_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if fresh:
                for name in (RESULTS_NAME, VERDICTS_NAME, REPORT_NAME):
                    (folder / name).unlink(missing_ok=True)
            lines, end = read_results(path)
            if path.exists() and path.stat().st_size != end:
                os.truncate(path, end)  # drop the block a killed scan was writing
            stream = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"--out {folder}: cannot write there ({exc.strerror})") from exc
        return cls(folder, stream, lines)

    @property
    def path(self) -> Path:
        """The merged JSONL file."""
        return self.folder / RESULTS_NAME

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError as exc:
            raise OutputError(f"{self.path}: writing failed ({exc.strerror or exc})") from exc

    def write_start(self, info: dict[str, Any]) -> None:
        """The ``scan`` line that opens a run."""
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._write(_dumps({"type": "scan", "video": None, "started": stamp, **info}))

    def write_done(self, done: Done) -> None:
        """A video's events (if any) and summary, as one block."""
        result = done.result
        block = []
        for event in result.events:
            block.append(_dumps({**event, "stream": result.video, "video": result.video}))
        summary = dict(result.summary or {})
        summary.update(
            stream=result.video,
            video=result.video,
            worker=result.worker,
            attempts=done.attempts,
            seconds=round(result.seconds, 3),
        )
        block.append(_dumps(summary))
        self._write("".join(block))
        self.done.add(result.video)

    def write_failed(self, failed: Failed) -> None:
        """A video that failed every try."""
        self._write(
            _dumps(
                {
                    "type": "failed",
                    "video": failed.video,
                    "reason": failed.reason,
                    "reasons": list(failed.reasons),
                    "workers": list(failed.workers),
                    "attempts": len(failed.reasons),
                }
            )
        )

    def close(self) -> None:
        """Close the JSONL file."""
        self._stream.close()

    def finish(self, run: dict[str, Any]) -> dict[str, Any]:
        """Rewrite ``verdicts.csv`` and ``report.json`` from every run so far; returns the
        report. ``run`` describes this run (executor, timings)."""
        lines, _ = read_results(self.path)
        final: dict[str, dict[str, Any]] = {}
        for data in lines:
            kind, video = data.get("type"), str(data.get("video"))
            if kind == "summary" or (
                kind == "failed" and final.get(video, {}).get("type") != "summary"
            ):
                final[video] = data  # a later success replaces an earlier failure
        rows = [_csv_row(data) for data in final.values()]
        verdicts = Counter(str(r["verdict"]) for r in rows if r["status"] == "done")
        failures = [
            {k: d[k] for k in ("video", "reason", "reasons", "workers")}
            for d in final.values()
            if d["type"] == "failed"
        ]
        report = {
            "format": REPORT_FORMAT,
            "version": 1,
            "videos": len(rows),
            "done": len(rows) - len(failures),
            "failed": len(failures),
            "verdicts": dict(sorted(verdicts.items())),
            "untrained": any(d.get("untrained") for d in final.values()),
            "failures": failures,
            "last_run": run,
            "results": str(self.path),
        }
        self._replace(VERDICTS_NAME, lambda fh: _write_csv(fh, rows))
        self._replace(REPORT_NAME, lambda fh: fh.write(json.dumps(report, indent=2) + "\n"))
        return report

    def _replace(self, name: str, write: Any) -> None:
        target = self.folder / name
        tmp = target.with_name(name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                write(fh)
            tmp.replace(target)
        except OSError as exc:
            raise OutputError(f"{target}: writing failed ({exc.strerror or exc})") from exc


def _csv_row(data: dict[str, Any]) -> dict[str, Any]:
    if data["type"] == "failed":
        return {
            "video": data["video"],
            "status": "failed",
            "attempts": data.get("attempts"),
            "worker": " ".join(data.get("workers", [])),
            "error": data.get("reason"),
        }
    return {
        "video": data["video"],
        "status": "done",
        "verdict": data.get("verdict"),
        "score": data.get("score"),
        "windows": data.get("windows_scored"),
        "tracks": data.get("tracks"),
        "frames_decoded": data.get("frames_decoded"),
        "crops": data.get("crops_embedded"),
        "media_duration_s": data.get("media_duration_s"),
        "seconds": data.get("seconds"),
        "attempts": data.get("attempts"),
        "worker": data.get("worker"),
        "error": data.get("error"),
    }


def _write_csv(fh: IO[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r["video"]):
        writer.writerow(row)
