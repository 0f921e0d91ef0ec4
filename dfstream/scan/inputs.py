"""What a scan analyses: SOURCES expanded to video files, each exactly once.

A SOURCE is one of

* a **folder**: every video file below it (recursive, sorted; ``VIDEO_EXTENSIONS``);
* a **glob** (``archive/2024-*/**/*.mp4``; ``**`` crosses folders);
* a **CSV file** (``.csv``): the column named ``video``, ``path``, ``file``, ``filename`` or
  ``source`` (case-insensitive), else the first column; so a scan's own ``verdicts.csv`` can be
  fed back in;
* a **text list** (``.txt``, ``.lst``, ``.list``): one path per line, ``#`` comments;
* anything else: one **video file**, whatever its extension.

Relative paths in a list are relative to the list's folder. Every video is keyed by its
absolute path (``Video.key``): the same file named twice, or through two lists, is scanned once,
and a rerun finds it in the output by that key. Paths that do not exist are kept apart
(``Inputs.missing``) and reported as failed without being sent to a worker.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dfstream.errors import SourceError, UsageError
from dfstream.sources import VIDEO_EXTENSIONS

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
CSV_COLUMNS = ("video", "path", "file", "filename", "source")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True, order=True)
class Video:
    """One video of a scan: its key (absolute path, as the output records it)."""

    key: str

    @property
    def path(self) -> Path:
        """The file to open (the key is its absolute path)."""
        return Path(self.key)


@dataclass
class Inputs:
    """The videos to scan, in the order found, and the named paths that do not exist."""

    videos: list[Video] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """One line per SOURCE that yielded nothing (an empty folder, a glob matching nothing)."""
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, path: Path) -> None:
        """Add ``path`` unless it is already there (by absolute path)."""
        key = os.path.abspath(path)
        if key in self._seen:
            return
        self._seen.add(key)
        if Path(key).exists():
            self.videos.append(Video(key))
        else:
            self.missing.append(key)


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _folder_videos(folder: Path) -> list[Path]:
    found = []
    for root, _dirs, files in os.walk(folder):
        found += [Path(root) / name for name in files if _is_video(Path(root) / name)]
    return sorted(found)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the list ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a UTF-8 text file") from exc


def read_text_list(path: Path) -> list[Path]:
    """The paths of a text list: one per line, blank lines and ``#`` comments skipped."""
    paths = []
    for line in _read_text(path).splitlines():
        text = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if text:
            paths.append(path.parent / text)
    return paths


def read_csv_list(path: Path) -> list[Path]:
    """The paths of a CSV list: the column named like a path (see the module docstring), else
    the first column; an empty cell is skipped."""
    rows = list(csv.reader(_read_text(path).splitlines()))
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in CSV_COLUMNS if name in header), None)
    if column is None:
        column, body = 0, rows
    else:
        body = rows[1:]
    return [path.parent / row[column].strip() for row in body if len(row) > column and row[column]]


def _expand_one(item: str) -> tuple[list[Path], bool]:
    """The paths ``item`` names, and whether it was a pattern (folder, glob, list)."""
    if "://" in item:
        raise UsageError(
            f"{item}: scan analyses video files; analyse streams with `dfstream SOURCE...` "
            "(add --ray ADDRESS to run them on a cluster)"
        )
    path = Path(item).expanduser()
    if path.is_dir():
        return _folder_videos(path), True
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_csv_list(path), True
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return read_text_list(path), True
    if not path.exists() and _GLOB_CHARS.search(item):
        matches = sorted(glob.glob(str(path), recursive=True))
        return [Path(m) for m in matches if Path(m).is_file()], True
    return [path], False


def collect(items: Iterable[str]) -> Inputs:
    """Expand SOURCES (see the module docstring) into the videos to scan, each once.

    Raises ``SourceError`` when nothing at all was found (exit code 3)."""
    inputs = Inputs()
    items = list(items)
    for item in items:
        paths, pattern = _expand_one(item)
        if pattern and not paths:
            inputs.notes.append(f"{item}: no video found there")
        for path in paths:
            inputs.add(path)
    if not inputs.videos and not inputs.missing:
        named = ", ".join(items) if items else "(none)"
        accepted = " ".join(sorted(VIDEO_EXTENSIONS))
        raise SourceError(f"no videos to scan in {named} (video extensions: {accepted})")
    return inputs
