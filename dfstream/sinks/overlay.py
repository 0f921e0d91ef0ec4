"""``--overlay OUT.mp4``: the analysed video with score-coloured face boxes, track ids, a score
timeline strip and (for untrained models) a watermark.

Every decoded frame reaches the overlay through the analyzer's frame tap, together with the
tracked boxes of that frame. A frame is drawn with the score of the first window of each of its
faces that contains it (the window whose newest crop is at or after the frame), so frames wait
in a bounded buffer until those scores arrive from the inference thread. A frame is released
when that score arrives, when its track has ended (all of its crops were scored: the latest
score is drawn), or when its stream ends. The buffer holds enough frames for T + stride crops
of a face plus a track's grace period, so waiting never needs frames the analyzer has not
produced yet; the analyzer only waits while inference catches up. Should the buffer be smaller
than that (a memory cap for big frames at a low analysis rate), or a wait last longer than
``max_wait_s``, the oldest frame is released with the latest score it has (counted in
``forced``), so the pipeline can never stall on the overlay.

Resolution, drawing and encoding run on the overlay's own thread, one per stream.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dfstream.cputime import SINK_THREAD, name_thread
from dfstream.errors import OutputError
from dfstream.sinks.base import Sink
from dfstream.sinks.overlay_draw import FaceMark, Timeline, draw_faces, draw_watermark
from dfstream.sinks.overlay_encode import InputTiming, VideoEncoder
from dfstream.sources import SourceKind, SourceSpec
from dfstream.types import Event, Frame, ScoreEvent, StreamSummary, TrackBoxes


@dataclass(frozen=True)
class OverlaySettings:
    """How long frames may wait for scores, and what to draw."""

    window: int
    stride: int
    detect_every: int
    max_misses: int
    analysis_fps: float | None
    threshold: float
    untrained: bool
    memory_budget_mb: int = 512
    max_wait_s: float = 30.0

    def buffer_frames(self, fps: float | None, frame_bytes: int) -> tuple[int, bool]:
        """(buffer size in frames, whether it covers the worst wait for a score)."""
        ratio = 1
        if self.analysis_fps and fps:
            ratio = max(1, math.ceil(fps / self.analysis_fps))
        crops = self.window + self.stride + (self.max_misses + 1) * self.detect_every + 8
        needed = crops * ratio
        affordable = max(8, self.memory_budget_mb * (1 << 20) // max(1, frame_bytes))
        return min(needed, affordable), needed <= affordable


class ScoreMatcher:
    """Which window score each face of a frame is drawn with (see the module docstring)."""

    def __init__(self) -> None:
        self._ends: dict[int, list[int]] = {}
        self._values: dict[int, list[float]] = {}
        self._ended: set[int] = set()
        self.stream_done = False

    def add_score(self, track_id: int, end_frame: int, smoothed: float) -> None:
        """A window of ``track_id`` whose newest crop is on ``end_frame`` scored ``smoothed``."""
        ends = self._ends.setdefault(track_id, [])
        values = self._values.setdefault(track_id, [])
        at = bisect.bisect_right(ends, end_frame)
        ends.insert(at, end_frame)
        values.insert(at, smoothed)

    def end_track(self, track_id: int) -> None:
        """Every crop of ``track_id`` has been scored: no window of it will come."""
        self._ended.add(track_id)

    def latest(self, track_id: int) -> float | None:
        """The newest score of a track, or None before its first window."""
        values = self._values.get(track_id)
        return values[-1] if values else None

    def resolve(
        self, frame_index: int, tracks: TrackBoxes, *, force: bool
    ) -> list[FaceMark] | None:
        """The faces of a frame with their scores, or None while a score is still due."""
        marks = []
        for track_id, box in tracks:
            ends = self._ends.get(track_id, [])
            at = bisect.bisect_left(ends, frame_index)
            if at < len(ends):
                score: float | None = self._values[track_id][at]
            elif force or self.stream_done or track_id in self._ended:
                score = self.latest(track_id)
            else:
                return None
            marks.append(FaceMark(track_id, box, score))
        return marks

    def prune(self, frame_index: int) -> None:
        """Forget scores no frame from ``frame_index`` on can use (keep each track's latest)."""
        for track_id, ends in self._ends.items():
            cut = min(bisect.bisect_left(ends, frame_index), len(ends) - 1)
            if cut > 0:
                del ends[:cut]
                del self._values[track_id][:cut]


@dataclass(frozen=True, slots=True)
class _Tapped:
    frame: Frame
    tracks: TrackBoxes


class OverlayWriter:
    """The overlay of one stream: a bounded frame buffer, a matcher and an encoder thread."""

    def __init__(
        self,
        encoder: VideoEncoder,
        *,
        source: SourceSpec,
        settings: OverlaySettings,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Use an opened encoder; call ``start()`` before frames arrive."""
        self.encoder = encoder
        self.source = source
        self.settings = settings
        self.stopping = stopping
        self.forced = 0
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._inbox: deque[tuple[str, object]] = deque()
        self._held = 0  # frames in the inbox plus frames waiting for scores
        self._capacity: int | None = None
        self._max_wait = settings.max_wait_s
        self._force_requests = 0
        self._thread = threading.Thread(
            target=self._run, name=f"overlay-{source.display}", daemon=True
        )

    def start(self) -> None:
        """Start the encoder thread."""
        self._thread.start()

    # -- producers (analyzer and inference threads) -----------------------------------------

    def tap(self, frame: Frame, tracks: TrackBoxes) -> None:
        """Queue a decoded frame and its boxes; waits (bounded) while the buffer is full."""
        if self._capacity is None:
            self._size_buffer(frame)
        with self._cond:
            deadline = time.monotonic() + self._max_wait
            while self._held >= (self._capacity or 1) and self.error is None:
                if self.stopping():
                    break
                if time.monotonic() >= deadline:
                    self._force_requests += 1
                    deadline = time.monotonic() + min(1.0, self._max_wait)
                    self._cond.notify_all()
                self._cond.wait(0.05)
            if self.error is not None:
                return  # the encoder failed: close() reports it; never block the analyzer
            self._held += 1
            self._inbox.append(("frame", _Tapped(frame, tracks)))
            self._cond.notify_all()

    def _size_buffer(self, frame: Frame) -> None:
        timing = InputTiming.probe(self.source)
        fps = float(timing.rate) if timing and timing.rate else None
        capacity, covered = self.settings.buffer_frames(fps, frame.image_bgr.nbytes)
        with self._cond:
            self._capacity = capacity
            if not covered:
                self._max_wait = min(self._max_wait, 0.25)
            self._inbox.appendleft(("timing", timing))

    def post(self, kind: str, payload: object = None) -> None:
        """Queue a score, a track end or the stream end (never waits)."""
        with self._cond:
            self._inbox.append((kind, payload))
            self._cond.notify_all()

    # -- the encoder thread ---------------------------------------------------------------

    def _run(self) -> None:
        name_thread(SINK_THREAD)  # the encoder's own threads (FFmpeg's) start from here
        matcher = ScoreMatcher()
        pending: deque[_Tapped] = deque()
        timeline: Timeline | None = None
        timing: InputTiming | None = None
        closing = False
        try:
            while True:
                with self._cond:
                    while not self._inbox and not self._force_requests:
                        self._cond.wait(0.1)
                    items = list(self._inbox)
                    self._inbox.clear()
                    forced, self._force_requests = self._force_requests, 0
                for kind, payload in items:
                    if kind == "frame":
                        pending.append(payload)  # type: ignore[arg-type]
                    elif kind == "timing":
                        timing = payload  # type: ignore[assignment]
                    elif kind == "score":
                        event: ScoreEvent = payload  # type: ignore[assignment]
                        matcher.add_score(event.track_id, event.frame_index, event.smoothed)
                    elif kind == "track_end":
                        matcher.end_track(int(payload))  # type: ignore[call-overload]
                    elif kind in ("stream_end", "close"):
                        matcher.stream_done = True
                        closing = closing or kind == "close"
                while pending:
                    head = pending[0]
                    marks = matcher.resolve(head.frame.index, head.tracks, force=False)
                    if marks is None and forced > 0:
                        marks = matcher.resolve(head.frame.index, head.tracks, force=True)
                        forced, self.forced = forced - 1, self.forced + 1
                    if marks is None:
                        break
                    pending.popleft()
                    if timeline is None:
                        timeline = self._begin(head.frame, timing)
                    self._render(head.frame, marks, timeline)
                    matcher.prune(head.frame.index)
                    with self._cond:
                        self._held -= 1
                        self._cond.notify_all()
                if closing and not pending:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by close(); producers stop waiting
            with self._cond:
                self.error = exc
                self._inbox.clear()
                self._cond.notify_all()

    def _begin(self, frame: Frame, timing: InputTiming | None) -> Timeline:
        height, width = frame.image_bgr.shape[:2]
        fps = float(timing.rate) if timing and timing.rate else None
        self.encoder.start(width, height, timing, fps)
        return Timeline(width, total_frames=timing.frames if timing else None)

    def _render(self, frame: Frame, marks: list[FaceMark], timeline: Timeline) -> None:
        image = frame.image_bgr.copy()  # the pipeline's frame stays untouched
        scores = [m.score for m in marks if m.score is not None]
        timeline.add(frame.index, max(scores) if scores else None)
        timeline.draw(image, threshold=self.settings.threshold)
        draw_faces(image, marks)
        if self.settings.untrained:
            draw_watermark(image)
        self.encoder.write(image, frame.pts_seconds)

    def close(self) -> None:
        """Release every waiting frame, finish encoding and finalise the file."""
        if self._thread.is_alive():
            self.post("close")
            self._thread.join()
        try:
            self.encoder.close()
        except BaseException as exc:  # noqa: BLE001 - the encoder thread's error comes first
            if self.error is None:
                self.error = exc
        if self.error is not None:
            if isinstance(self.error, OutputError):
                raise self.error
            raise OutputError(
                f"--overlay {self.encoder.path}: writing failed after "
                f"{self.encoder.frames_written} frames: {type(self.error).__name__}: {self.error}"
            ) from self.error


def overlay_paths(path: Path, sources: Sequence[SourceSpec]) -> list[Path]:
    """The overlay file of each source: ``path`` itself for one source, else one per source
    named ``<stem>-<source stem><suffix>`` beside it (``SourceSpec.stem``)."""
    if len(sources) == 1:
        return [path]
    paths: list[Path] = []
    for index, spec in enumerate(sources):
        paths.append(named_overlay_path(path, spec, index, taken=paths))
    return paths


def named_overlay_path(path: Path, spec: SourceSpec, index: int, *, taken: Sequence[Path]) -> Path:
    """``<stem>-<source name><suffix>`` beside ``path`` for source number ``index``, made
    unique among ``taken`` with the index."""
    name = spec.stem or f"source{index}"
    suffix = path.suffix or ".mp4"
    candidate = path.with_name(f"{path.stem}-{name}{suffix}")
    if candidate in taken:
        candidate = path.with_name(f"{path.stem}-{name}-{index}{suffix}")
    return candidate


class OverlaySink(Sink):
    """``--overlay``: one ``OverlayWriter`` per stream, fed by frames and score events.

    A frame sink (``on_frame``, ``on_track_end``, see ``dfstream.sinks.base``). Sources added
    to a running analysis get their own file, named like the files of several sources."""

    name = "overlay"

    def __init__(
        self,
        writers: dict[str, OverlayWriter],
        *,
        path: Path,
        settings: OverlaySettings,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.writers = writers
        self._path = path
        self._settings = settings
        self._stopping = stopping
        self._paths = [w.encoder.path for w in writers.values()]

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        streams: Sequence[tuple[str, SourceSpec]],
        settings: OverlaySettings,
        stopping: Callable[[], bool] = lambda: False,
    ) -> OverlaySink:
        """Create every overlay file now (``streams`` are (stream id, source) pairs), or raise
        ``OutputError`` before any decoding starts."""
        specs = [spec for _, spec in streams]
        writers: dict[str, OverlayWriter] = {}
        try:
            for (stream_id, spec), out in zip(streams, overlay_paths(path, specs), strict=True):
                writers[stream_id] = _open_writer(out, spec, settings, stopping)
        except BaseException:
            for writer in writers.values():
                writer.encoder.close()
            raise
        for writer in writers.values():
            writer.start()
        return cls(writers, path=path, settings=settings, stopping=stopping)

    def stream_added(self, stream_id: str, spec: SourceSpec) -> None:
        """Open a file for a source added while the analysis runs."""
        if stream_id in self.writers:
            return
        if self._paths:
            out = named_overlay_path(self._path, spec, len(self._paths), taken=self._paths)
        else:
            out = self._path
        writer = _open_writer(out, spec, self._settings, self._stopping)
        self._paths.append(out)
        self.writers[stream_id] = writer
        writer.start()

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        """Every decoded frame with its tracked boxes (on the analyzer thread)."""
        writer = self.writers.get(frame.stream_id)
        if writer is not None:
            writer.tap(frame, tracks)

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        """Called by the inference thread once every crop of a track has been scored."""
        writer = self.writers.get(stream_id)
        if writer is not None:
            writer.post("track_end", track_id)

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent) and event.stream_id in self.writers:
            self.writers[event.stream_id].post("score", event)
        elif isinstance(event, StreamSummary) and event.stream_id in self.writers:
            self.writers[event.stream_id].post("stream_end")

    def close(self) -> None:
        first: BaseException | None = None
        for writer in list(self.writers.values()):
            try:
                writer.close()
            except BaseException as exc:  # noqa: BLE001 - finalise every file, then report
                first = first or exc
        if first is not None:
            raise first


def _open_writer(
    out: Path, spec: SourceSpec, settings: OverlaySettings, stopping: Callable[[], bool]
) -> OverlayWriter:
    """An overlay writer for one source, its file created now (not started)."""
    if spec.kind is SourceKind.FILE and Path(spec.url).resolve() == out.resolve():
        raise OutputError(f"--overlay {out}: is the input itself; choose another name")
    encoder = VideoEncoder.open(out, source=spec.url)
    return OverlayWriter(encoder, source=spec, settings=settings, stopping=stopping)
