"""The pipeline: reader and analyzer threads per source, one inference loop for all of them.

The inference loop (``run``, on whichever thread calls it) is the only owner of the backend and
the only writer of events. It gathers crops from every stream into batches, embeds each crop
once, feeds the per-track window caches (with each feature's LSTM input projection instead of
the feature where the backend ``projects``: computed once per crop, not once per window), scores
the windows that are due, and turns scores into events. Sources can be added and removed while
it runs (``add_source``, ``remove_source``, from any thread); ``stop`` ends every source and
lets the loop drain and finish."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.cputime import (
    INFERENCE_THREAD,
    NO_CLOCK,
    StageClock,
    ThreadCensus,
    cpu_breakdown,
    name_thread,
    thread_pools,
)
from dfstream.errors import UsageError
from dfstream.faces import FaceDetector
from dfstream.pipeline.fair import FairGather, StreamQueue
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
from dfstream.pipeline.state import StreamSnapshot, StreamState
from dfstream.pipeline.stats import BatchStats
from dfstream.pipeline.windows import ReadyWindow, WindowCache
from dfstream.sinks.base import Sink, SinkGroup
from dfstream.sources import (
    LiveSettings,
    Source,
    SourceKind,
    SourceSpec,
    open_source,
    parse_source,
)
from dfstream.types import (
    FaceCrop,
    Frame,
    ScoreEvent,
    StatusEvent,
    StreamSummary,
    VerdictEvent,
)

NO_FACE_IN_PHOTO = "no face found in the photo"
"""``StreamSummary.skipped`` (and the ``ended`` status reason) of a photo without a face."""


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
    """After a stop (or a removal), a stream whose reader is stuck (a dead socket) is ended
    after this long; its daemon threads are abandoned."""


def unique_stream_id(shown: str, taken: Sequence[str]) -> str:
    """``shown`` (already redacted), made unique among ``taken`` with ``#n`` (n = its index)."""
    return shown if shown not in taken else f"{shown}#{len(taken)}"


def stream_ids(specs: Sequence[SourceSpec]) -> list[str]:
    """The stream id of each source: its display form, with any password redacted (ids end up
    in every output), made unique with ``#n``."""
    ids: list[str] = []
    for spec in specs:
        ids.append(unique_stream_id(spec.display, ids))
    return ids


@dataclass
class _Stream:
    """One source's bookkeeping inside the pipeline."""

    stream_id: str
    spec: SourceSpec
    state: StreamState
    scorer: StreamScorer
    stop: threading.Event
    frames: BoundedQueue[Frame | SourceEnd] | None = None
    crops: StreamQueue[CropMessage] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stop_requested_at: float | None = None
    summary: StreamSummary | None = None


class Pipeline:
    """Analyse sources with ``backend``: call ``run()`` once, the other methods from anywhere.

    ``specs`` are the sources to start with; ``add_source`` adds more, before or during the
    run. ``run()`` returns when every source has ended (or, with ``persistent``, only once
    ``stop()`` was called), with one summary per source in the order they were added.
    """

    def __init__(
        self,
        specs: Sequence[SourceSpec | str] = (),
        *,
        backend: InferenceBackend,
        detector_factory: Callable[[], FaceDetector],
        settings: PipelineSettings,
        sink: Sink,
        untrained: bool,
        model_name: str | None = None,
        opener: Callable[..., Source] = open_source,
        persistent: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        """``sink`` receives every event (a ``SinkGroup`` also gets frames for its frame sinks);
        ``opener`` opens each spec (``open_source``; benchmarks wrap it to pace files);
        ``stop`` is the event that ``stop()`` sets, when the caller wants to share it;
        ``model_name`` names the model in every summary."""
        self.opener = opener
        self.backend = backend
        self.detector_factory = detector_factory
        self.settings = settings
        self.sink = sink if isinstance(sink, SinkGroup) else SinkGroup([sink])
        self.untrained = untrained
        self.model_name = model_name
        self.persistent = persistent
        self.batch_stats = BatchStats()
        self.census = ThreadCensus()
        """Every thread's CPU during ``run()`` (``cpu_account``)."""
        self.clock = StageClock(self.census)
        """The inference thread's CPU by stage."""
        self._owner_ids: list[int] = []
        self._stop = stop or threading.Event()
        self._stopped_at: float | None = None
        self._fair: FairGather[CropMessage] = FairGather(
            self._stop, is_data=lambda m: isinstance(m, FaceCrop)
        )
        self._cache = WindowCache(window=settings.window, stride=settings.stride)
        self._lock = threading.RLock()
        self._streams: dict[str, _Stream] = {}
        self._running = False
        self._last_embed_s = 0.0
        self._failure: BaseException | None = None
        for spec in specs:
            self.add_source(spec)

    # -- control, from any thread ---------------------------------------------------------

    def add_source(self, source: SourceSpec | str, *, stream_id: str | None = None) -> str:
        """Add a source (a string is parsed; a bad one raises ``SourceError`` here); it starts
        at once when the run is going. Returns its stream id."""
        spec = source if isinstance(source, SourceSpec) else parse_source(source)
        with self._lock:
            if self._stop.is_set():
                raise UsageError("the run is stopping: no source can be added")
            sid = stream_id or unique_stream_id(spec.display, list(self._streams))
            if sid in self._streams:
                raise UsageError(f"stream id {sid!r} is already in use")
            unique = sid.removeprefix(spec.display)  # '#n' when the id has one
            stream = _Stream(
                stream_id=sid,
                spec=spec,
                state=StreamState(stream_id=sid, source=spec.display, name=spec.name + unique),
                scorer=StreamScorer(self.settings.scoring),
                stop=threading.Event(),
            )
            self._streams[sid] = stream
            self.sink.stream_added(sid, spec)
            if self._running:
                self._start(stream)
        return sid

    def remove_source(self, stream_id: str) -> None:
        """Stop one source; its queued crops are still scored and it ends with a summary."""
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                raise UsageError(f"no source with stream id {stream_id!r} in this run")
            if stream.stop_requested_at is None:
                stream.stop_requested_at = time.monotonic()
            stream.stop.set()

    def stop(self) -> None:
        """Ask every source to stop; the run drains what is in flight and finishes normally."""
        with self._lock:
            if self._stopped_at is None:
                self._stopped_at = time.monotonic()
            self._stop.set()
            for stream in self._streams.values():
                if stream.stop_requested_at is None:
                    stream.stop_requested_at = self._stopped_at
                stream.stop.set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    @property
    def states(self) -> dict[str, StreamState]:
        """Each stream's live state, by stream id (a copy of the mapping)."""
        with self._lock:
            return {sid: s.state for sid, s in self._streams.items()}

    @property
    def frame_queues(self) -> dict[str, BoundedQueue[Frame | SourceEnd]]:
        """Each started stream's decoded-frame queue, for monitoring (size, drops)."""
        with self._lock:
            return {sid: s.frames for sid, s in self._streams.items() if s.frames is not None}

    def snapshots(self) -> list[StreamSnapshot]:
        """A consistent copy of every stream's state, for rendering."""
        return [state.snapshot() for state in self.states.values()]

    # -- the run --------------------------------------------------------------------------

    def _start(self, stream: _Stream) -> None:
        """Create a stream's queues and start its reader and analyzer (lock held)."""
        settings = self.settings
        live = stream.spec.live
        stream.frames = BoundedQueue(
            settings.live_frame_queue if live else settings.frame_queue,
            Backpressure.DROP_OLDEST if live else Backpressure.WAIT,
            stream.stop,
        )
        stream.crops = self._fair.add_stream(
            settings.live_crop_queue if live else settings.crop_queue, stop=stream.stop
        )
        tap = self.sink.on_frame if self.sink.wants_frames else None
        stream.state.reader_clock.census = self.census
        stream.state.analyzer_clock.census = self.census
        stream.threads = [
            start_thread(
                f"reader-{stream.stream_id}",
                run_reader,
                stream.spec,
                stream.state,
                stream.frames,
                stream.crops,
                settings.analyzer,
                stream.stop,
                settings.live,
                self.opener,
            ),
            start_thread(
                f"analyzer-{stream.stream_id}",
                run_analyzer,
                stream.state,
                stream.frames,
                stream.crops,
                settings.analyzer,
                self.detector_factory,
                tap,
            ),
        ]

    def run(self) -> list[StreamSummary]:
        """Run until every source has ended (with ``persistent``: until ``stop()``); one
        summary per source, in the order they were added."""
        with self._lock:
            if self._running:
                raise RuntimeError("Pipeline.run() was already called")
            self._running = True
            name_thread(INFERENCE_THREAD)  # torch's intra-op workers start from this thread
            self._owner_ids.append(threading.get_native_id())
            self.census.start()
            self.backend.clock = self.clock
            self.clock.skip()
            for stream in self._streams.values():
                self._start(stream)
        try:
            while not self._finished():
                self._step()
                self._end_stuck_streams()
        except BaseException:
            self.stop()
            raise
        finally:
            self.sink.handle(self.batch_stats.event())
        deadline = time.monotonic() + (1.0 if self.stopping else 5.0)
        for stream in list(self._streams.values()):
            for thread in stream.threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.census.stop()
        self.backend.clock = NO_CLOCK  # whoever uses the backend next bills nothing to this run
        if self._failure is not None:
            raise self._failure
        with self._lock:
            return [s.summary for s in self._streams.values() if s.summary is not None]

    def cpu_account(self) -> dict[str, Any]:
        """Where the CPU of the finished run went, in ms per decoded frame, by stage, pool and
        thread (``dfstream.cputime.cpu_breakdown``), with the size of every thread pool."""
        with self._lock:
            streams = list(self._streams.values())
        clocks = [self.clock]
        owners = list(self._owner_ids)
        for stream in streams:
            clocks += [stream.state.reader_clock, stream.state.analyzer_clock]
            owners += [t.native_id for t in stream.threads if t.native_id is not None]
        frames = sum(s.state.frames_decoded for s in streams)
        account = cpu_breakdown(clocks, self.census, owners=owners, frames=frames)
        decoders = [s.state.decoder_threads for s in streams if s.state.decoder_threads]
        account["pools"] = thread_pools(self.backend, max(decoders) if decoders else None)
        return account

    def _finished(self) -> bool:
        with self._lock:
            if any(s.summary is None for s in self._streams.values()):
                return False
            return not self.persistent or self._stop.is_set()

    def _end_stuck_streams(self) -> None:
        """End the streams whose stop was asked for ``stop_grace_s`` ago but whose reader is
        still blocked (a dead socket that FFmpeg waits on until its read timeout)."""
        now = time.monotonic()
        with self._lock:
            stuck = [
                s
                for s in self._streams.values()
                if s.summary is None
                and s.stop_requested_at is not None
                and now - s.stop_requested_at >= self.settings.stop_grace_s
            ]
        for stream in stuck:
            self._end_stream(StreamEnd(stream.stream_id, None))

    # -- inference loop -----------------------------------------------------------------

    def _draining_too_long(self, stream: _Stream) -> bool:
        asked = stream.stop_requested_at
        if asked is None:
            return False
        return time.monotonic() - asked + self._last_embed_s > self.settings.drain_s

    def _step(self) -> None:
        pending: list[FaceCrop] = []
        items = self._fair.gather(self.settings.batch, self.settings.batch_wait_s)
        self.clock.lap("gather")
        for item in items:
            sid = item.event.stream_id if isinstance(item, Status) else item.stream_id
            stream = self._streams[sid]
            if isinstance(item, FaceCrop):
                if not self._draining_too_long(stream):
                    pending.append(item)
                continue
            if isinstance(item, Status):
                if stream.summary is None:
                    self.sink.handle(item.event)
                    self.clock.lap("sinks")
                continue
            # Track and stream ends follow their stream's crops: embed those first.
            if any(c.stream_id == item.stream_id for c in pending):
                self._infer(pending)
                pending = []
            if stream.summary is not None:
                continue  # already ended after the stop grace
            if isinstance(item, TrackEnd):
                self._end_track(item)
            elif isinstance(item, StreamEnd):
                self._end_stream(item)
            self.clock.lap("scoring")
        self._infer(pending)

    def _infer(self, crops: list[FaceCrop]) -> None:
        if not crops:
            return
        batch = np.stack([c.crop for c in crops])
        self.clock.lap("gather")
        clock = time.perf_counter()
        features = self.backend.embed(batch)
        self._last_embed_s = time.perf_counter() - clock
        self.clock.lap("embed")
        if self.backend.projects:  # the cache keeps each feature's LSTM input projection
            features = self.backend.project(features)
            self.clock.lap("head")
        self.batch_stats.embed_s += self._last_embed_s
        self.batch_stats.add(crops)
        ready: list[ReadyWindow] = []
        for crop, feature in zip(crops, features, strict=True):
            self._streams[crop.stream_id].state.crops_embedded += 1
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
        self.clock.lap("scoring")
        if ready:
            self._score(ready)

    def _score(self, windows: list[ReadyWindow]) -> None:
        # One head call per window length: full windows together, short ones (a track's end)
        # by their length.
        by_length: dict[int, list[ReadyWindow]] = {}
        for window in windows:
            by_length.setdefault(window.length, []).append(window)
        for group in by_length.values():
            self._score_group(group)

    def _score_group(self, windows: list[ReadyWindow]) -> None:
        stacked = np.stack([w.features for w in windows])
        self.clock.lap("scoring")
        clock = time.perf_counter()
        probs = (
            self.backend.score_projected(stacked)
            if self.backend.projects
            else self.backend.score(stacked)
        )
        self.batch_stats.score_s += time.perf_counter() - clock
        self.clock.lap("head")
        self.batch_stats.score_calls += 1
        self.batch_stats.windows += len(windows)
        now = time.time()
        for window, prob in zip(windows, probs, strict=True):
            score = float(prob)
            stream = self._streams[window.stream_id]
            smoothed, changed = stream.scorer.update(window.track_id, score, window.media_time)
            latency_ms = (now - window.decode_wall_time) * 1000.0
            stream.state.windows_scored += 1
            stream.state.latencies_ms.append(latency_ms)
            stream.state.record_score(window.track_id, score, smoothed, window.box)
            self.clock.lap("scoring")
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
                    window=window.length,
                )
            )
            if changed:
                self._verdict_changed(stream, window.media_time)
            self.clock.lap("sinks")

    def _verdict_changed(self, stream: _Stream, media_time: float) -> None:
        scorer, state = stream.scorer, stream.state
        state.verdict, state.score = scorer.verdict, scorer.score
        self.sink.handle(
            VerdictEvent(
                stream_id=stream.stream_id,
                verdict=scorer.verdict,
                score=scorer.score if scorer.score is not None else 0.0,
                media_time=media_time,
                wall_time=time.time(),
                untrained=self.untrained,
            )
        )

    def _end_track(self, message: TrackEnd) -> None:
        stream = self._streams[message.stream_id]
        short = self._cache.end_track(message.stream_id, message.track_id)
        if short is not None:
            self._score([short])
        stream.state.end_face(message.track_id)
        self.sink.on_track_end(message.stream_id, message.track_id)
        if stream.scorer.end_track(message.track_id):
            self._verdict_changed(stream, stream.state.last_media_time)

    def _end_stream(self, message: StreamEnd) -> None:
        stream = self._streams[message.stream_id]
        state, scorer = stream.state, stream.scorer
        short = self._cache.end_stream(stream.stream_id)
        if short:
            self._score(short)
        if stream.crops is not None:
            self._fair.remove_stream(stream.crops)
        if message.exception is not None and self._failure is None:
            self._failure = message.exception
        verdict, score = scorer.final()
        state.ended_at = time.time()
        state.error = message.error
        final_state = "failed" if message.error else "ended"
        state.set_state(final_state)
        state.verdict, state.score = verdict, score
        skipped = None
        if (
            stream.spec.kind is SourceKind.IMAGE
            and message.error is None
            and state.crops_embedded == 0
            and stream.stop_requested_at is None
        ):
            skipped = NO_FACE_IN_PHOTO
        reason = message.error or skipped or ""
        if not reason and stream.stop_requested_at is not None:
            reason = "stopped" if self.stopping else "removed"
        self.sink.handle(StatusEvent(stream.stream_id, final_state, reason, state.ended_at))
        summary = StreamSummary(
            stream_id=stream.stream_id,
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
            corrupt_frames=state.corrupt_frames,
            model=self.model_name,
            threshold=self.settings.scoring.threshold,
            skipped=skipped,
        )
        with self._lock:
            stream.summary = summary
        self.sink.handle(summary)
