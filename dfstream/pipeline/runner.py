"""The pipeline: reader and analyzer threads per source, one inference loop for all of them.

The inference loop (run on the caller's thread) is the only owner of the backend and the only
writer of sinks. It gathers crops from every stream into batches, embeds each crop once, feeds
the per-track window caches, scores the windows that are due, and turns scores into events.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.faces import FaceDetector
from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.pipeline.scoring import ScoringSettings, StreamScorer
from dfstream.pipeline.stages import (
    AnalyzerSettings,
    CropMessage,
    SourceEnd,
    Status,
    StreamEnd,
    TrackEnd,
    run_analyzer,
    run_reader,
    start_thread,
)
from dfstream.pipeline.state import StreamState
from dfstream.pipeline.windows import ReadyWindow, WindowCache
from dfstream.sinks.base import Sink
from dfstream.sources import Source, open_source
from dfstream.types import (
    FaceCrop,
    Frame,
    ScoreEvent,
    StatusEvent,
    StreamSummary,
    VerdictEvent,
)


@dataclass(frozen=True)
class PipelineSettings:
    """Everything the pipeline needs besides its sources, model and sinks."""

    analyzer: AnalyzerSettings
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    window: int = 20
    stride: int = 5
    batch: int = 16
    batch_wait_s: float = 0.02
    frame_queue: int = 32
    crop_queue: int = 256


@dataclass
class BatchStats:
    """How full the CNN batches were, and the time spent inside the backend."""

    batches: int = 0
    crops: int = 0
    embed_s: float = 0.0
    """Seconds inside ``backend.embed`` (the CNN)."""
    score_calls: int = 0
    windows: int = 0
    score_s: float = 0.0
    """Seconds inside ``backend.score`` (the temporal head)."""

    @property
    def mean_size(self) -> float:
        """Average crops per CNN call."""
        return self.crops / self.batches if self.batches else 0.0


class Pipeline:
    """Analyse ``specs`` with ``backend``; call ``run()`` once, ``stop()`` from anywhere."""

    def __init__(
        self,
        specs: Sequence[str],
        *,
        backend: InferenceBackend,
        detector_factory: Callable[[], FaceDetector],
        settings: PipelineSettings,
        sink: Sink,
        untrained: bool,
        opener: Callable[..., Source] = open_source,
    ) -> None:
        """``opener`` opens each spec (``open_source``; benchmarks wrap it to pace files)."""
        self.specs = list(specs)
        self.opener = opener
        self.backend = backend
        self.detector_factory = detector_factory
        self.settings = settings
        self.sink = sink
        self.untrained = untrained
        self.batch_stats = BatchStats()
        self._stop = threading.Event()
        self._crops: BoundedQueue[CropMessage] = BoundedQueue(
            settings.crop_queue, Backpressure.WAIT, self._stop
        )
        self._cache = WindowCache(window=settings.window, stride=settings.stride)
        self.states: dict[str, StreamState] = {}
        self._scorers: dict[str, StreamScorer] = {}
        for spec in self.specs:
            stream_id = spec if spec not in self.states else f"{spec}#{len(self.states)}"
            self.states[stream_id] = StreamState(stream_id=stream_id, source=spec)
            self._scorers[stream_id] = StreamScorer(settings.scoring)
        self._threads: list[threading.Thread] = []
        self._failure: BaseException | None = None

    def stop(self) -> None:
        """Ask every source to stop; the run drains what is in flight and finishes normally."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def run(self) -> list[StreamSummary]:
        """Run to the end of every source (or a stop); one summary per source, in order."""
        for (stream_id, state), spec in zip(self.states.items(), self.specs, strict=True):
            frames: BoundedQueue[Frame | SourceEnd] = BoundedQueue(
                self.settings.frame_queue, Backpressure.WAIT, self._stop
            )
            self._threads.append(
                start_thread(
                    f"reader-{stream_id}",
                    run_reader,
                    spec,
                    state,
                    frames,
                    self._crops,
                    self.settings.analyzer,
                    self._stop,
                    self.opener,
                )
            )
            self._threads.append(
                start_thread(
                    f"analyzer-{stream_id}",
                    run_analyzer,
                    state,
                    frames,
                    self._crops,
                    self.settings.analyzer,
                    self.detector_factory,
                )
            )
        summaries: dict[str, StreamSummary] = {}
        try:
            while len(summaries) < len(self.states):
                self._step(summaries)
        except BaseException:
            self._stop.set()
            raise
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._failure is not None:
            raise self._failure
        return [summaries[s] for s in self.states]

    # -- inference loop -----------------------------------------------------------------

    def _gather(self) -> list[CropMessage]:
        """Block for one message, then take what arrives within ``batch_wait_s`` up to a batch."""
        while True:
            try:
                items = [self._crops.get(timeout=0.2)]
                break
            except queue.Empty:
                continue
        crops = int(isinstance(items[0], FaceCrop))
        deadline = time.monotonic() + self.settings.batch_wait_s
        while crops < self.settings.batch:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._crops.get_nowait()
                    if remaining <= 0
                    else self._crops.get(timeout=remaining)
                )
            except queue.Empty:
                break
            items.append(item)
            crops += isinstance(item, FaceCrop)
        return items

    def _step(self, summaries: dict[str, StreamSummary]) -> None:
        pending: list[FaceCrop] = []
        for item in self._gather():
            if isinstance(item, FaceCrop):
                pending.append(item)
                continue
            # Control messages follow the crops queued before them: embed those first.
            self._infer(pending)
            pending = []
            if isinstance(item, Status):
                self.sink.handle(item.event)
            elif isinstance(item, TrackEnd):
                self._end_track(item)
            elif isinstance(item, StreamEnd):
                summaries[item.stream_id] = self._end_stream(item)
        self._infer(pending)

    def _infer(self, crops: list[FaceCrop]) -> None:
        if not crops:
            return
        batch = np.stack([c.crop for c in crops])
        clock = time.perf_counter()
        features = self.backend.embed(batch)
        self.batch_stats.embed_s += time.perf_counter() - clock
        self.batch_stats.batches += 1
        self.batch_stats.crops += len(crops)
        ready: list[ReadyWindow] = []
        for crop, feature in zip(crops, features, strict=True):
            self.states[crop.stream_id].crops_embedded += 1
            window = self._cache.add(
                stream_id=crop.stream_id,
                track_id=crop.track_id,
                frame_index=crop.frame_index,
                media_time=crop.media_time,
                decode_wall_time=crop.wall_time,
                box=crop.box,
                feature=feature,
            )
            if window is not None:
                ready.append(window)
        if ready:
            self._score(ready)

    def _score(self, windows: list[ReadyWindow]) -> None:
        stacked = np.stack([w.features for w in windows])
        clock = time.perf_counter()
        probs = self.backend.score(stacked)
        self.batch_stats.score_s += time.perf_counter() - clock
        self.batch_stats.score_calls += 1
        self.batch_stats.windows += len(windows)
        now = time.time()
        for window, prob in zip(windows, probs, strict=True):
            score = float(prob)
            state = self.states[window.stream_id]
            scorer = self._scorers[window.stream_id]
            smoothed, changed = scorer.update(window.track_id, score, window.media_time)
            latency_ms = (now - window.decode_wall_time) * 1000.0
            state.windows_scored += 1
            state.latencies_ms.append(latency_ms)
            state.record_score(window.track_id, score, smoothed, window.box)
            self.sink.handle(
                ScoreEvent(
                    stream_id=window.stream_id,
                    track_id=window.track_id,
                    frame_index=window.frame_index,
                    media_time=window.media_time,
                    score=score,
                    smoothed=smoothed,
                    box=window.box,
                    latency_ms=latency_ms,
                    wall_time=now,
                    untrained=self.untrained,
                )
            )
            if changed:
                self._verdict_changed(window.stream_id, window.media_time)

    def _verdict_changed(self, stream_id: str, media_time: float) -> None:
        scorer = self._scorers[stream_id]
        state = self.states[stream_id]
        state.verdict, state.score = scorer.verdict, scorer.score
        self.sink.handle(
            VerdictEvent(
                stream_id=stream_id,
                verdict=scorer.verdict,
                score=scorer.score if scorer.score is not None else 0.0,
                media_time=media_time,
                wall_time=time.time(),
                untrained=self.untrained,
            )
        )

    def _end_track(self, message: TrackEnd) -> None:
        self._cache.end_track(message.stream_id, message.track_id)
        self.states[message.stream_id].end_face(message.track_id)
        if self._scorers[message.stream_id].end_track(message.track_id):
            state = self.states[message.stream_id]
            self._verdict_changed(message.stream_id, state.last_media_time)

    def _end_stream(self, message: StreamEnd) -> StreamSummary:
        stream_id = message.stream_id
        state = self.states[stream_id]
        scorer = self._scorers[stream_id]
        self._cache.end_stream(stream_id)
        if message.exception is not None and self._failure is None:
            self._failure = message.exception
        verdict, score = scorer.final()
        state.ended_at = time.time()
        state.error = message.error
        final_state = "failed" if message.error else "ended"
        state.set_state(final_state)
        state.verdict, state.score = verdict, score
        self.sink.handle(StatusEvent(stream_id, final_state, message.error or "", state.ended_at))
        summary = StreamSummary(
            stream_id=stream_id,
            source=state.source,
            verdict=verdict,
            score=score,
            frames_decoded=state.frames_decoded,
            frames_analyzed=state.frames_analyzed,
            crops_embedded=state.crops_embedded,
            windows_scored=state.windows_scored,
            tracks=scorer.tracks(),
            duration_s=state.ended_at - state.started_at,
            media_duration_s=state.media_duration_s,
            untrained=self.untrained,
            error=message.error,
        )
        self.sink.handle(summary)
        return summary
