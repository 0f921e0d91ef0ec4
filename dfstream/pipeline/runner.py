"""The pipeline: reader and analyzer threads per source, one inference loop for all of them.

The inference loop (run on the caller's thread) is the only owner of the backend and the only
writer of sinks. It gathers crops from every stream into batches, embeds each crop once, feeds
the per-track window caches, scores the windows that are due, and turns scores into events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.faces import FaceDetector
from dfstream.pipeline.fair import FairGather
from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.pipeline.scoring import ScoringSettings, StreamScorer
from dfstream.pipeline.stages import (
    AnalyzerSettings,
    CropMessage,
    FrameTap,
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
from dfstream.sources import LiveSettings, Source, SourceSpec, open_source
from dfstream.types import (
    BatchStatsEvent,
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
    live: LiveSettings = field(default_factory=LiveSettings)
    live_frame_queue: int = 8
    """Frames a live source may have waiting (DROP_OLDEST): at 30 fps about 0.27 s."""
    live_crop_queue: int = 4
    """Crops a live stream may have waiting for the CNN. Small, so that a slow model makes the
    frame queue drop instead of letting latency pile up (every waiting crop adds 1/rate s);
    several live streams still fill a batch together."""
    drain_s: float = 1.5
    """After a stop, queued crops are still scored while the next CNN call (judged by the
    last one's duration) would end within this many seconds; later ones are skipped."""
    stop_grace_s: float = 2.5
    """After a stop, streams whose reader is stuck (a dead socket) are ended after this long."""


@dataclass
class BatchStats:
    """How full the CNN batches were, how often one batch mixed several streams, and the time
    spent inside the backend."""

    batches: int = 0
    crops: int = 0
    multi_stream_batches: int = 0
    max_streams: int = 0
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

    def add(self, crops: Sequence[FaceCrop]) -> None:
        """Count one CNN call over ``crops``."""
        streams = len({c.stream_id for c in crops})
        self.batches += 1
        self.crops += len(crops)
        self.multi_stream_batches += streams > 1
        self.max_streams = max(self.max_streams, streams)

    def event(self) -> BatchStatsEvent:
        """The JSONL ``batch_stats`` event."""
        return BatchStatsEvent(
            batches=self.batches,
            crops=self.crops,
            multi_stream_batches=self.multi_stream_batches,
            max_streams_per_batch=self.max_streams,
            wall_time=time.time(),
        )


def stream_ids(specs: Sequence[SourceSpec]) -> list[str]:
    """The stream id of each source: its display form, with any password redacted (ids end up
    in every output), made unique with ``#n``."""
    ids: list[str] = []
    for spec in specs:
        shown = spec.display
        ids.append(shown if shown not in ids else f"{shown}#{len(ids)}")
    return ids


class Pipeline:
    """Analyse ``specs`` with ``backend``; call ``run()`` once, ``stop()`` from anywhere."""

    def __init__(
        self,
        specs: Sequence[SourceSpec],
        *,
        backend: InferenceBackend,
        detector_factory: Callable[[], FaceDetector],
        settings: PipelineSettings,
        sink: Sink,
        untrained: bool,
        frame_tap: FrameTap | None = None,
        on_track_end: Callable[[str, int], None] | None = None,
        opener: Callable[..., Source] = open_source,
    ) -> None:
        """``frame_tap`` sees every analysed frame with its boxes (overlay);
        ``on_track_end(stream_id, track_id)`` is called once all of a track's crops are scored;
        ``opener`` opens each spec (``open_source``; benchmarks wrap it to pace files)."""
        self.specs = list(specs)
        self.frame_tap = frame_tap
        self.on_track_end = on_track_end
        self.opener = opener
        self.backend = backend
        self.detector_factory = detector_factory
        self.settings = settings
        self.sink = sink
        self.untrained = untrained
        self.batch_stats = BatchStats()
        self._stop = threading.Event()
        self._stopped_at: float | None = None
        self._fair: FairGather[CropMessage] = FairGather(
            self._stop, is_data=lambda m: isinstance(m, FaceCrop)
        )
        self._cache = WindowCache(window=settings.window, stride=settings.stride)
        self.states: dict[str, StreamState] = {}
        self._scorers: dict[str, StreamScorer] = {}
        for stream_id, spec in zip(stream_ids(self.specs), self.specs, strict=True):
            unique = stream_id.removeprefix(spec.display)  # '#n' when the id has one
            self.states[stream_id] = StreamState(
                stream_id=stream_id, source=spec.display, name=spec.name + unique
            )
            self._scorers[stream_id] = StreamScorer(settings.scoring)
        self._threads: list[threading.Thread] = []
        self._last_embed_s = 0.0
        self.frame_queues: dict[str, BoundedQueue[Frame | SourceEnd]] = {}
        """Each stream's decoded-frame queue, for monitoring (size, drops)."""
        self._failure: BaseException | None = None

    def stop(self) -> None:
        """Ask every source to stop; the run drains what is in flight and finishes normally."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def run(self) -> list[StreamSummary]:
        """Run to the end of every source (or a stop); one summary per source, in order."""
        settings = self.settings
        for (stream_id, state), spec in zip(self.states.items(), self.specs, strict=True):
            live = spec.live
            frames: BoundedQueue[Frame | SourceEnd] = BoundedQueue(
                settings.live_frame_queue if live else settings.frame_queue,
                Backpressure.DROP_OLDEST if live else Backpressure.WAIT,
                self._stop,
            )
            self.frame_queues[stream_id] = frames
            crops = self._fair.add_stream(settings.live_crop_queue if live else settings.crop_queue)
            self._threads.append(
                start_thread(
                    f"reader-{stream_id}",
                    run_reader,
                    spec,
                    state,
                    frames,
                    crops,
                    settings.analyzer,
                    self._stop,
                    settings.live,
                    self.opener,
                )
            )
            self._threads.append(
                start_thread(
                    f"analyzer-{stream_id}",
                    run_analyzer,
                    state,
                    frames,
                    crops,
                    settings.analyzer,
                    self.detector_factory,
                    self.frame_tap,
                )
            )
        summaries: dict[str, StreamSummary] = {}
        try:
            while len(summaries) < len(self.states):
                self._step(summaries)
                self._end_stuck_streams(summaries)
        except BaseException:
            self._stop.set()
            raise
        finally:
            self.sink.handle(self.batch_stats.event())
        deadline = time.monotonic() + (1.0 if self.stopping else 5.0)
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._failure is not None:
            raise self._failure
        return [summaries[s] for s in self.states]

    def _end_stuck_streams(self, summaries: dict[str, StreamSummary]) -> None:
        """After a stop, end the streams whose reader is still blocked (a dead socket that
        FFmpeg waits on until its read timeout): their daemon threads are abandoned."""
        if self._stopped_at is None:
            return
        if time.monotonic() - self._stopped_at < self.settings.stop_grace_s:
            return
        for stream_id in self.states:
            if stream_id not in summaries:
                summaries[stream_id] = self._end_stream(StreamEnd(stream_id, None))

    # -- inference loop -----------------------------------------------------------------

    def _draining_too_long(self) -> bool:
        stopped = self._stopped_at
        if stopped is None:
            return False
        return time.monotonic() - stopped + self._last_embed_s > self.settings.drain_s

    def _step(self, summaries: dict[str, StreamSummary]) -> None:
        pending: list[FaceCrop] = []
        items = self._fair.gather(self.settings.batch, self.settings.batch_wait_s)
        for item in items:
            if isinstance(item, FaceCrop):
                if not self._draining_too_long():
                    pending.append(item)
                continue
            if isinstance(item, Status):
                if item.event.stream_id not in summaries:
                    self.sink.handle(item.event)
                continue
            # Track and stream ends follow their stream's crops: embed those first.
            if any(c.stream_id == item.stream_id for c in pending):
                self._infer(pending)
                pending = []
            if item.stream_id in summaries:
                continue  # already ended after the stop grace
            if isinstance(item, TrackEnd):
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
        self._last_embed_s = time.perf_counter() - clock
        self.batch_stats.embed_s += self._last_embed_s
        self.batch_stats.add(crops)
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
        if self.on_track_end is not None:
            self.on_track_end(message.stream_id, message.track_id)
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
        reason = message.error or ("stopped" if self.stopping else "")
        self.sink.handle(StatusEvent(stream_id, final_state, reason, state.ended_at))
        summary = StreamSummary(
            stream_id=stream_id,
            source=state.source,
            name=state.name,
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
            live=state.live,
            dropped=state.dropped,
            reconnects=state.reconnects,
            latency_ms=state.latency_percentiles(),
        )
        self.sink.handle(summary)
        return summary
