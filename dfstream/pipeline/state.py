"""Live, read-mostly state of each stream and face, for dashboards and progress lines.

Each field has one writer thread (reader, analyzer or inference); readers such as the dashboard
take ``snapshot()`` copies and never hold a lock across rendering.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dfstream.cputime import StageClock
from dfstream.types import Box, Verdict

RECENT_SCORES = 48
GONE_FACES_KEPT = 32
"""Faces that left the picture stay in the live state (dashboard, GUI, snapshots) up to this
many, the most recent; older ones are dropped there. A camera watching a crowd makes thousands
of tracks a day, and every snapshot copies the faces. The summary's per-track totals
(``StreamScorer``) keep every track."""


@dataclass
class FaceState:
    """One face track as last seen."""

    track_id: int
    smoothed: float
    box: Box
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_SCORES))
    active: bool = True


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted ``ordered`` values, interpolated linearly as
    ``numpy.percentile`` does. Plain Python on purpose: numpy's first percentile call in a
    process imports ``numpy.ma``, 0.2 s of CPU measured on the inference thread at a stream's
    end."""
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


@dataclass
class StreamState:
    """Counters and current scores of one stream."""

    stream_id: str
    source: str
    name: str
    """Short human name for tables (``SourceSpec.name``)."""
    live: bool = False
    state: str = "starting"
    input_fps: float | None = None
    media_duration_s: float | None = None
    last_media_time: float = 0.0
    frames_decoded: int = 0
    frames_analyzed: int = 0
    crops_embedded: int = 0
    windows_scored: int = 0
    dropped: int = 0
    reconnects: int = 0
    decode_s: float = 0.0
    """Seconds the reader spent inside the decoder (benchmark instrumentation)."""
    detect_s: float = 0.0
    """Seconds the analyzer spent inside the face detector."""
    detections: int = 0
    """Detector runs."""
    reader_clock: StageClock = field(default_factory=StageClock, repr=False)
    """CPU of the reader thread by stage (decode, convert; ``dfstream.cputime``)."""
    analyzer_clock: StageClock = field(default_factory=StageClock, repr=False)
    """CPU of the analyzer thread by stage (detect, track, crop, frame_sinks)."""
    decoder_threads: int | None = None
    """FFmpeg's decoder threads for this stream (its codec's ``thread_count``), once open."""
    verdict: Verdict = Verdict.NO_FACES
    score: float | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    error: str | None = None
    faces: dict[int, FaceState] = field(default_factory=dict)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    corrupt_counter: Callable[[], int] | None = field(default=None, repr=False)
    """Reads the source's count of corrupt frames dropped (set by the reader once open)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def corrupt_frames(self) -> int:
        """Frames the source decoded but dropped as corrupt (or waiting for a keyframe)."""
        return self.corrupt_counter() if self.corrupt_counter is not None else 0

    def set_state(self, state: str) -> None:
        """Record the source's connection state."""
        self.state = state

    def record_score(self, track_id: int, score: float, smoothed: float, box: Box) -> None:
        """Called by the inference thread for each scored window."""
        with self._lock:
            face = self.faces.get(track_id)
            if face is None:
                face = self.faces[track_id] = FaceState(track_id, smoothed, box)
            face.smoothed, face.box, face.active = smoothed, box, True
            face.recent.append(score)

    def end_face(self, track_id: int) -> None:
        """The track ended: keep its numbers, mark it gone (the ``GONE_FACES_KEPT`` most recent
        gone faces are kept)."""
        with self._lock:
            face = self.faces.pop(track_id, None)
            if face is None:
                return
            face.active = False
            self.faces[track_id] = face  # dicts keep insertion order: the newest gone last
            gone = [tid for tid, f in self.faces.items() if not f.active]
            for old in gone[: max(0, len(gone) - GONE_FACES_KEPT)]:
                del self.faces[old]

    def latency_percentiles(self) -> tuple[float, float] | None:
        """(p50, p95) of recent decode-to-score latencies in ms, or None before any score."""
        with self._lock:
            values = list(self.latencies_ms)
        if not values:
            return None
        values.sort()
        return percentile(values, 50), percentile(values, 95)

    def snapshot(self) -> StreamSnapshot:
        """A consistent copy for rendering."""
        with self._lock:
            faces = tuple(
                FaceSnapshot(f.track_id, f.smoothed, f.box, tuple(f.recent), f.active)
                for f in self.faces.values()
            )
        now = self.ended_at or time.time()
        return StreamSnapshot(
            stream_id=self.stream_id,
            source=self.source,
            name=self.name,
            live=self.live,
            state=self.state,
            input_fps=self.input_fps,
            media_duration_s=self.media_duration_s,
            last_media_time=self.last_media_time,
            frames_decoded=self.frames_decoded,
            frames_analyzed=self.frames_analyzed,
            crops_embedded=self.crops_embedded,
            windows_scored=self.windows_scored,
            dropped=self.dropped,
            corrupt_frames=self.corrupt_frames,
            reconnects=self.reconnects,
            verdict=self.verdict,
            score=self.score,
            elapsed_s=now - self.started_at,
            latency_ms=self.latency_percentiles(),
            error=self.error,
            faces=faces,
        )


@dataclass(frozen=True)
class FaceSnapshot:
    """A face as rendered: id, smoothed score, box, recent window scores, still visible."""

    track_id: int
    smoothed: float
    box: Box
    recent: tuple[float, ...]
    active: bool


@dataclass(frozen=True)
class StreamSnapshot:
    """A stream as rendered at one instant."""

    stream_id: str
    source: str
    name: str
    """Short human name for tables (``SourceSpec.name``)."""
    live: bool
    state: str
    input_fps: float | None
    media_duration_s: float | None
    last_media_time: float
    frames_decoded: int
    frames_analyzed: int
    crops_embedded: int
    windows_scored: int
    dropped: int
    verdict: Verdict
    score: float | None
    elapsed_s: float
    latency_ms: tuple[float, float] | None
    error: str | None
    faces: tuple[FaceSnapshot, ...]
    corrupt_frames: int = 0
    reconnects: int = 0
