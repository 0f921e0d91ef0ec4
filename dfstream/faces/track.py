"""A cheap IoU tracker: gives each face a stable id between detector runs.

The detector runs every k-th analysed frame; ``IouTracker.update`` matches its detections to
the existing tracks by box overlap, and ``tracks()`` gives the boxes to crop on the frames in
between. A face missed by a few detections keeps its id; after more than ``max_misses``
consecutive misses its track ends and ``pop_ended`` reports it, so that per-track state
(feature windows, smoothed scores) can be finalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dfstream.types import Box, Detection

IOU_THRESHOLD = 0.3
"""Least box overlap (IoU) for a detection to continue a face track."""

MAX_MISSES = 3
"""Consecutive detector runs a track survives without being seen; it ends on the next miss."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes; 0.0 when they do not touch."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed over time: its latest box and how often it was (not) seen."""

    track_id: int
    box: Box
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)
    hits: int = 1
    """Detections matched to this track, the first one included."""
    misses: int = 0
    """Consecutive detector runs that did not find it; 0 means seen on the latest run."""
    age: int = 1
    """Detector runs since the track started, the first one included."""


class IouTracker:
    """Greedy IoU matching of detections to tracks; ids count up from 0 and are never reused."""

    def __init__(
        self, *, iou_threshold: float = IOU_THRESHOLD, max_misses: int = MAX_MISSES
    ) -> None:
        """``iou_threshold``: least overlap for a match; ``max_misses``: misses a track survives."""
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold: expected 0 < value <= 1 but got {iou_threshold}")
        if max_misses < 0:
            raise ValueError(f"max_misses: expected >= 0 but got {max_misses}")
        self.iou_threshold = iou_threshold
        self.max_misses = max_misses
        self._tracks: dict[int, Track] = {}
        self._ended: list[int] = []
        self._next_id = 0

    def update(self, detections: Sequence[Detection]) -> list[Track]:
        """Feed the detections of one detector run; returns the tracks seen on it."""
        pairs = sorted(
            (
                (overlap, track_id, d)
                for track_id, track in self._tracks.items()
                for d, detection in enumerate(detections)
                if (overlap := iou(track.box, detection.box)) >= self.iou_threshold
            ),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        for _, track_id, d in pairs:
            if track_id in matched_tracks or d in matched_detections:
                continue
            matched_tracks.add(track_id)
            matched_detections.add(d)
            track, detection = self._tracks[track_id], detections[d]
            track.box, track.score = detection.box, detection.score
            track.landmarks = detection.landmarks
            track.hits += 1
            track.misses = 0
        for track_id, track in list(self._tracks.items()):
            track.age += 1
            if track_id not in matched_tracks:
                track.misses += 1
                if track.misses > self.max_misses:
                    del self._tracks[track_id]
                    self._ended.append(track_id)
        for d, detection in enumerate(detections):
            if d not in matched_detections:
                self._tracks[self._next_id] = Track(
                    self._next_id, detection.box, detection.score, detection.landmarks
                )
                self._next_id += 1
        return self.tracks()

    def tracks(self) -> list[Track]:
        """Tracks seen on the latest detector run (``misses == 0``), by id: the boxes to crop."""
        return [t for _, t in sorted(self._tracks.items()) if t.misses == 0]

    def pop_ended(self) -> list[int]:
        """Ids of the tracks that ended since the previous call, in the order they ended."""
        ended, self._ended = self._ended, []
        return ended

    def drop(self, track_id: int) -> None:
        """Forget a track without reporting it ended (another track continues its face)."""
        self._tracks.pop(track_id, None)

    def missing(self) -> list[Track]:
        """Live tracks not seen on the latest detector run (``misses > 0``), by id."""
        return [t for _, t in sorted(self._tracks.items()) if t.misses > 0]

    def end_all(self) -> None:
        """End every live track (end of stream); ``pop_ended`` then reports them."""
        self._ended.extend(sorted(self._tracks))
        self._tracks.clear()

    def __len__(self) -> int:
        """Number of live tracks, seen or currently missed."""
        return len(self._tracks)
