"""Small frozen dataclasses passed between stages, validated where they are made.

Boxes are ``(x1, y1, x2, y2)`` in full-frame pixel coordinates, floats.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]
TrackBoxes = tuple[tuple[int, Box], ...]
"""The (track id, box) pairs of the faces tracked on one frame."""


def _check_image(name: str, image: np.ndarray, *, square: bool = False) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array but got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected shape (H, W, 3) but got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 but got {image.dtype}")
    if square and image.shape[0] != image.shape[1]:
        raise ValueError(f"{name}: expected a square crop but got {image.shape[:2]}")


def _check_box(name: str, box: Box) -> None:
    if len(box) != 4:
        raise ValueError(f"{name}: expected 4 coordinates but got {len(box)}")
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{name}: expected x2 > x1 and y2 > y1 but got {box}")


@dataclass(frozen=True, slots=True, init=False)
class Frame:
    """One decoded video frame: where it came from, when, and its BGR pixels.

    A source may hand the pixels over unconverted (``convert``: a function that makes the BGR
    array from the decoded picture): then they are converted once, by the first thread that
    reads ``image_bgr``, and a frame that nobody looks at (a live frame between two analysed
    ones, one dropped from a full queue) is never converted."""

    stream_id: str
    index: int
    pts_seconds: float
    wall_time: float
    _image: np.ndarray | None = field(repr=False, compare=False, init=False)
    _convert: Callable[[], np.ndarray] | None = field(repr=False, compare=False, init=False)
    _lock: threading.Lock | None = field(repr=False, compare=False, init=False)

    def __init__(
        self,
        stream_id: str,
        index: int,
        pts_seconds: float,
        wall_time: float,
        image_bgr: np.ndarray | None = None,
        *,
        convert: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if (image_bgr is None) == (convert is None):
            raise TypeError("Frame: expected either image_bgr or convert")
        if image_bgr is not None:
            _check_image("Frame.image_bgr", image_bgr)
        if index < 0:
            raise ValueError(f"Frame.index: expected >= 0 but got {index}")
        set_ = object.__setattr__
        set_(self, "stream_id", stream_id)
        set_(self, "index", index)
        set_(self, "pts_seconds", pts_seconds)
        set_(self, "wall_time", wall_time)
        set_(self, "_image", image_bgr)
        set_(self, "_convert", convert)
        set_(self, "_lock", None if convert is None else threading.Lock())

    def retimed(self, wall_time: float) -> Frame:
        """This frame with another ``wall_time``; both share one conversion of the pixels
        (``dataclasses.replace`` cannot copy a frame: its pixels are not an init field)."""
        if self._image is not None:
            return Frame(self.stream_id, self.index, self.pts_seconds, wall_time, self._image)
        return Frame(
            self.stream_id, self.index, self.pts_seconds, wall_time, convert=lambda: self.image_bgr
        )

    @property
    def converted(self) -> bool:
        """Whether the BGR pixels exist yet (reading ``image_bgr`` makes them)."""
        return self._image is not None

    @property
    def image_bgr(self) -> np.ndarray:
        """The (H, W, 3) uint8 BGR pixels."""
        image = self._image
        if image is not None:
            return image
        assert self._lock is not None  # made with convert
        with self._lock:
            image = self._image
            if image is None:
                assert self._convert is not None
                image = self._convert()
                _check_image("Frame.image_bgr", image)
                object.__setattr__(self, "_image", image)
                object.__setattr__(self, "_convert", None)  # the decoded picture can go
        return image


@dataclass(frozen=True, slots=True)
class Detection:
    """A face found by a detector: box, confidence and, when the detector gives them, five
    landmarks (right eye, left eye, nose tip, right and left mouth corner) as a (5, 2) array."""

    box: Box
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_box("Detection.box", self.box)
        if self.landmarks is not None and self.landmarks.shape != (5, 2):
            raise ValueError(
                f"Detection.landmarks: expected shape (5, 2) but got {self.landmarks.shape}"
            )


@dataclass(frozen=True, slots=True)
class FaceCrop:
    """A square face crop cut by the model's crop rule, ready for the backbone."""

    stream_id: str
    track_id: int
    frame_index: int
    media_time: float
    wall_time: float
    box: Box
    crop: np.ndarray = field(repr=False)
    landmarks: np.ndarray | None = field(default=None, repr=False)
    """The detection's five landmarks in crop pixels (``training`` keeps them for self-blend
    masks), or None when the detector gives none."""

    def __post_init__(self) -> None:
        _check_box("FaceCrop.box", self.box)
        _check_image("FaceCrop.crop", self.crop, square=True)
        if self.landmarks is not None and self.landmarks.shape != (5, 2):
            raise ValueError(
                f"FaceCrop.landmarks: expected shape (5, 2) but got {self.landmarks.shape}"
            )


class Verdict(str, enum.Enum):
    """What dfstream currently believes about a stream (or a whole video)."""

    REAL = "REAL"
    FAKE = "FAKE"
    UNCERTAIN = "UNCERTAIN"
    NO_FACES = "NO_FACES"


@dataclass(frozen=True, slots=True)
class ScoreEvent:
    """One scored window of one face track."""

    stream_id: str
    track_id: int
    frame_index: int
    media_time: float
    score: float
    smoothed: float
    box: Box
    latency_ms: float
    wall_time: float
    untrained: bool
    window: int = 0
    """Frames in the window: the model's T, fewer for a track that ended before it held T (its
    one short window, scored when the track ends), 1 for a photo. 0: not known."""

    def to_json(self) -> dict[str, Any]:
        """The JSONL ``score`` event."""
        return {
            "type": "score",
            "stream": self.stream_id,
            "track": self.track_id,
            "frame_index": self.frame_index,
            "media_time": round(self.media_time, 4),
            "score": round(self.score, 6),
            "smoothed": round(self.smoothed, 6),
            "box": [round(v, 1) for v in self.box],
            "latency_ms": round(self.latency_ms, 2),
            "wall_time": round(self.wall_time, 3),
            "untrained": self.untrained,
            "window": self.window,
        }


@dataclass(frozen=True, slots=True)
class VerdictEvent:
    """The verdict of a stream changed."""

    stream_id: str
    verdict: Verdict
    score: float
    media_time: float
    wall_time: float
    untrained: bool

    def to_json(self) -> dict[str, Any]:
        """The JSONL ``verdict`` event."""
        return {
            "type": "verdict",
            "stream": self.stream_id,
            "verdict": self.verdict.value,
            "score": round(self.score, 6),
            "media_time": round(self.media_time, 4),
            "wall_time": round(self.wall_time, 3),
            "untrained": self.untrained,
        }


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A source changed state (connected, disconnected, reconnecting, stalled, corrupt, ended,
    failed), or an output failed (state ``sink_failed``, ``sink`` names it, ``stream_id`` is
    empty). ``corrupt_frames`` is the stream's count of frames dropped as corrupt so far."""

    stream_id: str
    state: str
    reason: str
    wall_time: float
    sink: str | None = None
    corrupt_frames: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSONL ``status`` event (``stream`` is null and ``sink`` set for an output)."""
        data: dict[str, Any] = {
            "type": "status",
            "stream": self.stream_id or None,
            "state": self.state,
            "reason": self.reason,
            "wall_time": round(self.wall_time, 3),
        }
        if self.sink is not None:
            data["sink"] = self.sink
        if self.corrupt_frames is not None:
            data["corrupt_frames"] = self.corrupt_frames
        return data


@dataclass(frozen=True, slots=True)
class TrackSummary:
    """What one face track amounted to by the end of its stream."""

    track_id: int
    windows: int
    mean_score: float
    max_score: float
    first_media_time: float
    last_media_time: float


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """The end of one stream: counters, the whole-video verdict and any error."""

    stream_id: str
    source: str
    name: str
    """Short human name for tables (``SourceSpec.name``); the JSONL event has ``source``."""
    verdict: Verdict
    score: float | None
    frames_decoded: int
    frames_analyzed: int
    crops_embedded: int
    windows_scored: int
    tracks: tuple[TrackSummary, ...]
    duration_s: float
    media_duration_s: float | None
    untrained: bool
    error: str | None = None
    live: bool = False
    dropped: int = 0
    """Frames a live source dropped because analysis could not keep up."""
    reconnects: int = 0
    latency_ms: tuple[float, float] | None = None
    """(p50, p95) of decode-to-score latency over the last scored windows, in ms."""
    corrupt_frames: int = 0
    """Frames a live source decoded but dropped: flagged corrupt, or before a clean keyframe."""
    model: str | None = None
    """The model's name (``LoadedModel.name``: the checkpoint's ``info["name"]`` or file name)."""
    threshold: float | None = None
    """The FAKE threshold the verdict used."""
    skipped: str | None = None
    """Why the source gave nothing to score although it was read without error (a photo
    with no face: ``"no face found in the photo"``); None otherwise."""

    def to_json(self) -> dict[str, Any]:
        """The JSONL ``summary`` event."""
        latency = self.latency_ms
        return {
            "type": "summary",
            "stream": self.stream_id,
            "source": self.source,
            "verdict": self.verdict.value,
            "score": None if self.score is None else round(self.score, 6),
            "frames_decoded": self.frames_decoded,
            "frames_analyzed": self.frames_analyzed,
            "crops_embedded": self.crops_embedded,
            "windows_scored": self.windows_scored,
            "tracks": len(self.tracks),
            "track_details": [
                {
                    "track": t.track_id,
                    "windows": t.windows,
                    "mean_score": round(t.mean_score, 6),
                    "max_score": round(t.max_score, 6),
                    "first_media_time": round(t.first_media_time, 4),
                    "last_media_time": round(t.last_media_time, 4),
                }
                for t in self.tracks
            ],
            "duration_s": round(self.duration_s, 3),
            "media_duration_s": (
                None if self.media_duration_s is None else round(self.media_duration_s, 4)
            ),
            "untrained": self.untrained,
            "error": self.error,
            "live": self.live,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "corrupt_frames": self.corrupt_frames,
            "skipped": self.skipped,
            "latency_p50_ms": None if latency is None else round(latency[0], 1),
            "latency_p95_ms": None if latency is None else round(latency[1], 1),
            "model": self.model,
            "threshold": None if self.threshold is None else round(self.threshold, 6),
        }


@dataclass(frozen=True, slots=True)
class BatchStatsEvent:
    """How the inference thread batched crops over the whole run (emitted once, at the end)."""

    batches: int
    crops: int
    multi_stream_batches: int
    """Batches holding crops of more than one stream."""
    max_streams_per_batch: int
    wall_time: float

    def to_json(self) -> dict[str, Any]:
        """The JSONL ``batch_stats`` event."""
        return {
            "type": "batch_stats",
            "batches": self.batches,
            "crops": self.crops,
            "mean_batch": round(self.crops / self.batches, 3) if self.batches else 0.0,
            "multi_stream_batches": self.multi_stream_batches,
            "max_streams_per_batch": self.max_streams_per_batch,
            "wall_time": round(self.wall_time, 3),
        }


Event = ScoreEvent | VerdictEvent | StatusEvent | StreamSummary | BatchStatsEvent
