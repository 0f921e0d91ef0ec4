"""The per-stream face analyzer: sample -> detect every k-th sampled frame -> track -> crop.

``FaceAnalyzer.analyze`` takes the frames of one stream in order and says, per frame, whether it
was sampled at the analysis rate, whether the detector ran on it, which face tracks ended and
which crops were cut. The pipeline's analyzer thread, ``training`` preprocessing and the naive
benchmark reference all use it, so serving, training and the reference cut the same crops from
the same frames. The tracker constants (``faces.track``) and the crop-margin rule are defined
once, and every caller gets them from here. With ``AnalyzerSettings.relink`` a new track that
looks like a track lost moments ago, near where it was lost, continues it under its id
(``faces.relink``); the lost track's end is then reported only once its relink time ran out.

A ``FaceAnalyzer`` holds one detector, which is not thread-safe: one analyzer per thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dfstream.cputime import NO_CLOCK, StageClock
from dfstream.faces.crop import ColorOrder, crop_face, crop_landmarks
from dfstream.faces.detect import FaceDetector
from dfstream.faces.relink import LostTrack, RelinkSettings, TrackLinker, appearance
from dfstream.faces.track import IOU_THRESHOLD, MAX_MISSES, IouTracker
from dfstream.types import Box, FaceCrop, Frame

LIVE_ANALYSIS_FPS = 10.0
"""Analysis rate of live sources when none is set: a camera's full rate would mostly be dropped
by a CPU anyway, and 10 fps keeps the windows dense."""


def margin_for_detector(detector: str, model_margin: float) -> float:
    """The crop margin to use with the ``--detector`` choice ``detector``.

    Whole-frame "detections" (``none``) are already face crops, so they get no margin around
    them; every real detector gets the model's own ``model_margin``.
    """
    return 0.0 if detector == "none" else model_margin


@dataclass(frozen=True, kw_only=True)
class AnalyzerSettings:
    """How frames are sampled, how often faces are detected, and how crops are cut."""

    crop_margin: float
    """Margin around the face box, as a fraction of its side (see ``margin_for_detector``)."""
    crop_size: int
    color_order: ColorOrder
    analysis_fps: float | None = None
    """Frames analysed per second of media time; None: every frame (files) or
    ``live_analysis_fps`` (live sources)."""
    detect_every: int = 1
    """The detector runs on every ``detect_every``-th sampled frame, the tracker in between."""
    max_seconds: float | None = None
    """Media time at which a stream's reading stops (read by the reader, not the analyzer)."""
    iou_threshold: float = IOU_THRESHOLD
    max_misses: int = MAX_MISSES
    live_analysis_fps: float | None = LIVE_ANALYSIS_FPS
    relink: RelinkSettings | None = None
    """Re-link a new track to a recently lost one that matches (``faces.relink``); None: off
    (training and measurements that need the tracker's own ids)."""

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every: expected >= 1 but got {self.detect_every}")
        for name in ("analysis_fps", "live_analysis_fps"):
            rate = getattr(self, name)
            if rate is not None and not rate > 0:
                raise ValueError(f"{name}: expected None or > 0 but got {rate}")
        if self.crop_margin < 0:
            raise ValueError(f"crop_margin: expected >= 0 but got {self.crop_margin}")
        if self.crop_size < 1:
            raise ValueError(f"crop_size: expected >= 1 but got {self.crop_size}")
        if self.color_order not in ("BGR", "RGB"):
            raise ValueError(f"color_order: expected 'BGR' or 'RGB' but got {self.color_order!r}")

    def analysis_rate(self, live: bool) -> float | None:
        """Frames per second analysed from a (``live`` or file) stream; None: every frame."""
        return self.analysis_fps or (self.live_analysis_fps if live else None)


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    """What the analyzer made of one frame."""

    frame: Frame
    sampled: bool
    """Taken at the analysis rate; crops are cut from sampled frames only."""
    detected: bool
    """The detector ran on this frame (otherwise the tracks kept their boxes)."""
    ended: tuple[int, ...]
    """Ids of the tracks that ended with this frame (its detector run lost them, or with
    relinking, their relink time ran out), in the order they ended."""
    crops: tuple[FaceCrop, ...]
    """One crop per face being followed, by track id."""
    boxes: tuple[tuple[int, Box], ...]
    """``(track id, box)`` of the faces being followed as of the latest sampled frame (also on
    frames that were not sampled: what an overlay draws)."""


class FaceAnalyzer:
    """Sample -> detect every k -> IoU-track -> crop, for the frames of one stream in order."""

    def __init__(
        self,
        detector: FaceDetector,
        settings: AnalyzerSettings,
        *,
        stream_id: str,
        live: bool = False,
        clock: StageClock = NO_CLOCK,
    ) -> None:
        """``stream_id`` goes into every crop; ``live`` picks the live analysis rate; ``clock``
        (the calling thread's) gets the CPU of detect, track and crop."""
        self.detector = detector
        self.clock = clock
        self.settings = settings
        self.stream_id = stream_id
        self._tracker = IouTracker(
            iou_threshold=settings.iou_threshold, max_misses=settings.max_misses
        )
        rate = settings.analysis_rate(live)
        self._period = 1.0 / rate if rate else None
        self._next_time = 0.0
        self._since_restart = 0
        self._boxes: tuple[tuple[int, Box], ...] = ()
        self._linker = None if settings.relink is None else TrackLinker(settings.relink)
        self._ids: dict[int, int] = {}
        """Tracker id -> the id given out (differs for a track that continues a lost one)."""
        self._looks: dict[int, np.ndarray] = {}
        """Id given out -> running appearance descriptor (relinking only)."""
        self._seen: dict[int, tuple[Box, float]] = {}
        """Id given out -> (box, media time) of its latest crop (relinking only)."""
        self.frames_analyzed = 0
        """Sampled frames so far."""
        self.detections = 0
        """Detector runs so far."""
        self.detect_s = 0.0
        """Seconds spent inside the detector so far."""

    def restart_cadence(self) -> None:
        """Run the detector on the next sampled frame and count the k from there (training
        restarts it at each run of consecutive frames it takes from a video)."""
        self._since_restart = 0

    def analyze(self, frame: Frame) -> FrameAnalysis:
        """Sample, detect (every ``detect_every``-th sampled frame), track and crop ``frame``."""
        if not self._sample(frame.pts_seconds):
            return FrameAnalysis(frame, False, False, (), (), self._boxes)
        if not frame.converted:  # a live source's frame: its pixels are made on first use
            frame.image_bgr  # noqa: B018 - converts
            self.clock.lap("convert")
        detected = self._since_restart % self.settings.detect_every == 0
        ended: list[int] = []
        if detected:
            clock = time.perf_counter()
            found = self.detector.detect(frame.image_bgr)
            self.detect_s += time.perf_counter() - clock
            self.clock.lap("detect")
            self.detections += 1
            self._tracker.update(found)
            ended = self._lose(self._tracker.pop_ended())
        if self._linker is not None:
            ended.extend(self._linker.expire(frame.pts_seconds))
        self._since_restart += 1
        self.frames_analyzed += 1
        self.clock.lap("track")
        crops = tuple(
            self._crop(frame, t.track_id, t.box, t.landmarks) for t in self._tracker.tracks()
        )
        self._boxes = tuple((c.track_id, c.box) for c in crops)
        self.clock.lap("crop")
        return FrameAnalysis(frame, True, detected, tuple(ended), crops, self._boxes)

    @property
    def relinked(self) -> int:
        """New tracks that continued a lost one so far."""
        return 0 if self._linker is None else self._linker.relinked

    def _lose(self, tracker_ids: list[int]) -> list[int]:
        """The ids that end now among the tracks the tracker ended; with relinking none do:
        they wait in the linker (``expire`` ends them)."""
        ended = []
        for tracker_id in tracker_ids:
            track_id = self._ids.pop(tracker_id, tracker_id)
            seen = self._seen.pop(track_id, None)
            looks = self._looks.pop(track_id, None)
            if self._linker is not None and seen is not None and looks is not None:
                self._linker.lose(track_id, looks, seen[0], seen[1])
            else:
                ended.append(track_id)
        return ended

    def _track_id(self, tracker_id: int, pixels: np.ndarray, box: Box, when: float) -> int:
        """The id a track's crop is given: the tracker's, or the lost track's it continues."""
        if self._linker is None:
            return tracker_id
        looks = appearance(pixels, self.settings.color_order)
        track_id = self._ids.get(tracker_id)
        if track_id is None:
            track_id = self._link(tracker_id, looks, box, when)
        else:
            blended = 0.7 * self._looks[track_id] + 0.3 * looks
            looks = blended / max(float(np.linalg.norm(blended)), 1e-12)
        self._looks[track_id] = looks
        self._seen[track_id] = (box, when)
        return track_id

    def _sample(self, pts: float) -> bool:
        """Whether the frame at media time ``pts`` is due at the analysis rate."""
        if self._period is None:
            return True
        if pts + 1e-6 < self._next_time:
            return False
        # The next frame is due one period later; after a jump in time, one period after pts.
        following = self._next_time + self._period
        self._next_time = following if following > pts else pts + self._period
        return True

    def _link(self, tracker_id: int, looks: np.ndarray, box: Box, when: float) -> int:
        """The id of a new track: a lost (or missing) track's that it continues, else its own.
        A missing track taken over is retired from the tracker."""
        assert self._linker is not None
        missing = {}
        for track in self._tracker.missing():
            old_id = self._ids.get(track.track_id, track.track_id)
            if old_id in self._seen and old_id in self._looks:
                missing[old_id] = track.track_id
        linked = self._linker.link(
            looks,
            box,
            when,
            missing=[
                LostTrack(old_id, self._looks[old_id], *self._seen[old_id]) for old_id in missing
            ],
        )
        track_id = tracker_id if linked is None else linked
        if linked in missing:
            self._tracker.drop(missing[linked])
            self._ids.pop(missing[linked], None)
        self._ids[tracker_id] = track_id
        return track_id

    def _crop(
        self, frame: Frame, tracker_id: int, box: Box, landmarks: np.ndarray | None
    ) -> FaceCrop:
        s = self.settings
        image = frame.image_bgr
        crop = crop_face(
            image, box, margin=s.crop_margin, size=s.crop_size, color_order=s.color_order
        )
        return FaceCrop(
            stream_id=self.stream_id,
            track_id=self._track_id(tracker_id, crop, box, frame.pts_seconds),
            frame_index=frame.index,
            media_time=frame.pts_seconds,
            wall_time=frame.wall_time,
            box=box,
            crop=crop,
            landmarks=None
            if landmarks is None
            else crop_landmarks(
                landmarks, box, margin=s.crop_margin, size=s.crop_size, image_shape=image.shape
            ),
        )


__all__ = [
    "IOU_THRESHOLD",
    "LIVE_ANALYSIS_FPS",
    "MAX_MISSES",
    "AnalyzerSettings",
    "FaceAnalyzer",
    "FrameAnalysis",
    "margin_for_detector",
]
