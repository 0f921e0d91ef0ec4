"""The face-crop cache: what ``preprocess`` writes and ``train`` / ``evaluate`` read.

Layout of a cache folder::

    cache.json              crop settings (size, margin, colour order, frames, run length,
                            detector) - a cache never mixes two settings
    manifest.csv            the manifest it was made from, plus key, crops and error columns
    videos/<key>.crops.npy  (N, S, S, 3) uint8 crops in the model's colour order (memory-mapped)
    videos/<key>.npz        per crop: frame_index, track, run, box (x1, y1, x2, y2) in the frame,
                            landmarks (5, 2) in crop pixels (NaN without landmarks); written last,
                            so its presence means the video is done
    videos/<key>.error      why a video failed (retried on the next run)

A *segment* is a stretch of crops of one face track within one run of consecutive frames:
training and evaluation windows of T crops are cut from segments only.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dfstream.errors import UsageError
from training.manifest import COLUMNS, Entry

CACHE_FORMAT = "dfstream-crop-cache-1"


@dataclass(frozen=True)
class CropSettings:
    """How crops were cut; stored in ``cache.json`` and copied into the trained model's spec."""

    size: int = 112
    margin: float = 0.2
    color_order: Literal["RGB", "BGR"] = "RGB"
    frames: int = 32
    run_length: int = 8
    detector: str = "auto"
    detect_every: int = 5

    def to_json(self) -> str:
        """The settings as JSON, with the cache format marker."""
        return json.dumps({"format": CACHE_FORMAT, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: Path) -> CropSettings:
        """Parse ``cache.json``; a foreign or damaged file is a ``UsageError``."""
        try:
            data = json.loads(text)
            if data.pop("format", None) != CACHE_FORMAT:
                raise ValueError("not a dfstream crop cache")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{where}: not a crop cache made by this version ({exc})") from exc


def video_key(path: str) -> str:
    """A file name for a video's cache entries: its stem plus a hash of its full path."""
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:10]
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(path).stem)[:40]
    return f"{stem}-{digest}"


@dataclass(frozen=True)
class VideoCrops:
    """The crops of one video and what is known about each."""

    entry: Entry
    crops: np.ndarray
    frame_index: np.ndarray
    track: np.ndarray
    run: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray

    def segments(self) -> list[np.ndarray]:
        """Index arrays of consecutive crops that share a track and a run, in frame order."""
        return crop_segments(self.run, self.track, self.frame_index)


def crop_segments(run: np.ndarray, track: np.ndarray, frame_index: np.ndarray) -> list[np.ndarray]:
    """Index arrays of consecutive frames that share a track and a run (by run, then track)."""
    out: list[np.ndarray] = []
    if len(frame_index) == 0:
        return out
    for r, t in np.unique(np.stack([run, track], axis=1), axis=0):
        idx = np.flatnonzero((run == r) & (track == t))
        idx = idx[np.argsort(frame_index[idx], kind="stable")]
        gaps = np.flatnonzero(np.diff(frame_index[idx]) != 1) + 1
        out.extend(part for part in np.split(idx, gaps) if len(part))
    return out


class CropCache:
    """A cache folder opened for reading (or for writing by ``preprocess``)."""

    def __init__(self, root: Path, settings: CropSettings) -> None:
        """Use ``CropCache.open`` or ``CropCache.create``."""
        self.root = root
        self.settings = settings
        self.videos_dir = root / "videos"

    @classmethod
    def open(cls, root: Path) -> CropCache:
        """Open an existing cache folder made by ``preprocess``."""
        meta = root / "cache.json"
        if not meta.is_file():
            raise UsageError(
                f"{root}: not a crop cache (no cache.json); make one with "
                "`python -m training preprocess MANIFEST.csv --out CACHE`"
            )
        return cls(root, CropSettings.from_json(meta.read_text(encoding="utf-8"), meta))

    @classmethod
    def create(cls, root: Path, settings: CropSettings) -> CropCache:
        """Open ``root`` for writing; resuming needs the same settings as before."""
        meta = root / "cache.json"
        if meta.is_file():
            old = CropSettings.from_json(meta.read_text(encoding="utf-8"), meta)
            if old != settings:
                raise UsageError(
                    f"{root}: holds crops made with other settings ({old}); resume with the "
                    "same options or choose another --out"
                )
        (root / "videos").mkdir(parents=True, exist_ok=True)
        meta.write_text(settings.to_json(), encoding="utf-8")
        return cls(root, settings)

    def paths(self, key: str) -> tuple[Path, Path, Path]:
        """The crops, metadata and error file of ``key``."""
        base = self.videos_dir / key
        return (
            base.with_name(key + ".crops.npy"),
            base.with_name(key + ".npz"),
            base.with_name(key + ".error"),
        )

    def is_done(self, key: str) -> bool:
        """True when the video's crops are complete."""
        return self.paths(key)[1].is_file()

    def write_manifest(self, entries: list[Entry], errors: dict[str, str]) -> None:
        """Write ``manifest.csv``: the input rows plus key, number of crops and error."""
        with (self.root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow((*COLUMNS, "key", "crops", "error"))
            for e in entries:
                key = video_key(e.path)
                crops = len(self.load_meta(key)["frame_index"]) if self.is_done(key) else 0
                row = (e.path, e.label, e.dataset, e.split, e.group, ";".join(e.identities))
                writer.writerow((*row, e.method, key, crops, errors.get(key, "")))

    def load_meta(self, key: str) -> dict[str, np.ndarray]:
        """The per-crop metadata arrays of ``key``."""
        with np.load(self.paths(key)[1]) as data:
            return {name: data[name] for name in data.files}

    def load(self, entry: Entry) -> VideoCrops | None:
        """The crops of ``entry``, memory-mapped; None when the video is not (yet) cached."""
        key = video_key(entry.path)
        if not self.is_done(key):
            return None
        meta = self.load_meta(key)
        crops_path = self.paths(key)[0]
        crops = (
            np.load(crops_path, mmap_mode="r")
            if len(meta["frame_index"])
            else np.zeros((0, self.settings.size, self.settings.size, 3), np.uint8)
        )
        return VideoCrops(
            entry=entry,
            crops=crops,
            frame_index=meta["frame_index"],
            track=meta["track"],
            run=meta["run"],
            boxes=meta["boxes"],
            landmarks=meta["landmarks"],
        )

    def entries(self) -> list[Entry]:
        """The videos of ``manifest.csv``."""
        from training.manifest import read_manifest

        return read_manifest(self.root / "manifest.csv")

    def select(self, split: str) -> list[VideoCrops]:
        """Cached videos of one split (``all`` for every split but ``excluded``)."""
        chosen = [
            e
            for e in self.entries()
            if (e.split == split) or (split == "all" and e.split != "excluded")
        ]
        loaded = [self.load(e) for e in chosen]
        return [v for v in loaded if v is not None]
