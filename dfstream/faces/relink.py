"""One person, one track: a new face track takes over a recently lost one that looks the same.

The IoU tracker ends a track after a few missed detections (a turned head, a hand in front, a
blur) and the face comes back under a new id. ``TrackLinker`` keeps each lost track for
``max_gap_s`` seconds of media time with its appearance descriptor and last box; a new track
born in that time whose descriptor agrees (cosine similarity at least ``min_similarity``) and
whose box is near the lost one (centre distance at most ``max_distance`` face sides, side
ratio within ``max_scale``) continues the lost track: same id, so its window history and
verdict go on. A lost track that nobody takes over within ``max_gap_s`` has really ended.

The descriptor is cheap and computed on the analyzer thread from the crop already cut
(``appearance``): the CNN's features exist only later, on the inference thread, after the id
has been given. It is a square-rooted hue/saturation histogram of the crop's centre (the face,
little background), unit length: it tells skin, hair and lighting apart, not identities, so
the position gate carries much of the decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from dfstream.faces.crop import ColorOrder
from dfstream.types import Box

RELINK_GAP_S = 2.0
"""Seconds of media time a lost track waits to be taken over."""
RELINK_SIMILARITY = 0.85
"""Least cosine similarity of appearance descriptors for a take-over."""
RELINK_DISTANCE = 1.0
"""Largest distance between box centres, in sides of the lost face's box."""
RELINK_SCALE = 2.0
"""Largest ratio between the two boxes' sides (either way)."""

_HUE_BINS, _SAT_BINS = 16, 8


def appearance(crop: np.ndarray, color_order: ColorOrder) -> np.ndarray:
    """A unit-length appearance descriptor of a (S, S, 3) uint8 face crop in ``color_order``:
    the square-rooted hue/saturation histogram of its central two thirds."""
    side = crop.shape[0]
    inner = np.ascontiguousarray(crop[side // 6 : side - side // 6, side // 6 : side - side // 6])
    code = cv2.COLOR_BGR2HSV if color_order == "BGR" else cv2.COLOR_RGB2HSV
    hsv = cv2.cvtColor(inner, code)
    hist = cv2.calcHist([hsv], [0, 1], None, [_HUE_BINS, _SAT_BINS], [0, 180, 0, 256])
    values = np.sqrt(hist.ravel().astype(np.float32))
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else values


def _centre_and_side(box: Box) -> tuple[float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)


@dataclass(frozen=True)
class LostTrack:
    """A track that may be taken over: its id, appearance, last box and when it was seen."""

    track_id: int
    descriptor: np.ndarray = field(repr=False)
    box: Box
    last_time: float


@dataclass(frozen=True, kw_only=True)
class RelinkSettings:
    """When a new track continues a lost one (see the module docstring)."""

    max_gap_s: float = RELINK_GAP_S
    min_similarity: float = RELINK_SIMILARITY
    max_distance: float = RELINK_DISTANCE
    max_scale: float = RELINK_SCALE

    def __post_init__(self) -> None:
        if not self.max_gap_s > 0:
            raise ValueError(f"max_gap_s: expected > 0 but got {self.max_gap_s}")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity: expected -1..1 but got {self.min_similarity}")
        if not self.max_distance >= 0:
            raise ValueError(f"max_distance: expected >= 0 but got {self.max_distance}")
        if not self.max_scale >= 1.0:
            raise ValueError(f"max_scale: expected >= 1 but got {self.max_scale}")


class TrackLinker:
    """Lost tracks of one stream, waiting to be taken over by a new track that matches."""

    def __init__(self, settings: RelinkSettings | None = None) -> None:
        self.settings = settings or RelinkSettings()
        self._lost: dict[int, LostTrack] = {}
        self.relinked = 0
        """Take-overs so far."""

    def lose(self, track_id: int, descriptor: np.ndarray, box: Box, last_time: float) -> None:
        """Track ``track_id`` was last seen at media time ``last_time`` in ``box``."""
        self._lost[track_id] = LostTrack(track_id, descriptor, box, last_time)

    def link(
        self,
        descriptor: np.ndarray,
        box: Box,
        time: float,
        *,
        missing: Sequence[LostTrack] = (),
    ) -> int | None:
        """The lost track a new track seen at ``time`` in ``box`` continues (it is no longer
        lost), or None. Of several that agree, the most similar one.

        ``missing`` are tracks the tracker still follows but did not see on this detector run
        (a face whose box jumped, a zoom: the new box overlaps too little, and the old track
        is not lost yet); the caller retires the one returned, if it is one of them.
        """
        s = self.settings
        cx, cy, side = _centre_and_side(box)
        best: tuple[float, int] | None = None
        for lost in (*self._lost.values(), *missing):
            if not 0.0 <= time - lost.last_time <= s.max_gap_s:
                continue
            lx, ly, lside = _centre_and_side(lost.box)
            if math.hypot(cx - lx, cy - ly) > s.max_distance * lside:
                continue
            if max(side, lside) > s.max_scale * min(side, lside):
                continue
            similarity = float(np.dot(descriptor, lost.descriptor))
            if similarity >= s.min_similarity and (best is None or similarity > best[0]):
                best = (similarity, lost.track_id)
        if best is None:
            return None
        self._lost.pop(best[1], None)
        self.relinked += 1
        return best[1]

    def expire(self, time: float) -> list[int]:
        """Ids of the lost tracks that can no longer be taken over at media time ``time``
        (they have ended), in the order they were lost."""
        gone = [
            t for t, lost in self._lost.items() if time - lost.last_time > self.settings.max_gap_s
        ]
        for track_id in gone:
            del self._lost[track_id]
        return gone

    def __len__(self) -> int:
        """Lost tracks still waiting."""
        return len(self._lost)
