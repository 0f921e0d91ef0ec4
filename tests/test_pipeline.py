"""Window caches, scoring, queues, and the pipeline with stub parts."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from dfstream.backends.base import InferenceBackend
from dfstream.faces import WholeFrameDetector
from dfstream.model.spec import ModelSpec
from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.pipeline.runner import Pipeline, PipelineSettings
from dfstream.pipeline.scoring import ScoringSettings, StreamScorer
from dfstream.pipeline.stages import AnalyzerSettings
from dfstream.pipeline.windows import WindowCache
from dfstream.sinks.base import Sink
from dfstream.sources import parse_source
from dfstream.types import Detection, Event, ScoreEvent, StreamSummary, Verdict, VerdictEvent


def _add(cache: WindowCache, track: int, i: int, stream: str = "s"):  # type: ignore[no-untyped-def]
    return cache.add(
        stream_id=stream,
        track_id=track,
        frame_index=i,
        media_time=i / 25,
        decode_wall_time=0.0,
        box=(0.0, 0.0, 1.0, 1.0),
        feature=np.full(3, float(i), np.float32),
    )


@pytest.mark.parametrize(
    ("window", "stride", "crops", "expected_ends"),
    [
        (4, 1, 6, [3, 4, 5]),
        (4, 2, 9, [3, 5, 7]),
        (3, 5, 12, [2, 7]),
        (1, 1, 3, [0, 1, 2]),
    ],
)
def test_window_cache_emits_windows_at_stride(
    window: int, stride: int, crops: int, expected_ends: list[int]
) -> None:
    cache = WindowCache(window=window, stride=stride)
    ready = [w for i in range(crops) if (w := _add(cache, 0, i)) is not None]
    assert [w.frame_index for w in ready] == expected_ends
    for w in ready:
        # A window holds exactly the last T features, in order.
        assert w.features[:, 0].tolist() == list(
            range(w.frame_index - window + 1, w.frame_index + 1)
        )


def test_window_cache_keeps_tracks_and_streams_apart() -> None:
    cache = WindowCache(window=2, stride=1)
    assert _add(cache, 0, 0) is None
    assert _add(cache, 1, 1) is None  # another track does not complete track 0's window
    assert _add(cache, 0, 0, stream="other") is None
    assert _add(cache, 0, 2) is not None
    cache.end_track("s", 0)
    assert _add(cache, 0, 3) is None  # a track that ended starts over
    cache.end_stream("s")
    assert len(cache) == 1


def test_window_cache_gives_a_short_window_at_track_and_stream_end() -> None:
    cache = WindowCache(window=4, stride=1)
    for i in range(3):
        assert _add(cache, 0, i) is None
    short = cache.end_track("s", 0)
    assert short is not None and short.length == 3 and short.frame_index == 2
    assert short.features[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert cache.end_track("s", 0) is None  # once
    for i in range(4):
        _add(cache, 1, i)  # a full window was ready: no short one at its end
    _add(cache, 2, 7)
    _add(cache, 3, 8, stream="other")
    ends = cache.end_stream("s")
    assert [(w.track_id, w.length, w.frame_index) for w in ends] == [(2, 1, 7)]
    assert len(cache) == 1


def test_verdict_hysteresis_and_final() -> None:
    settings = ScoringSettings(threshold=0.5, hysteresis=0.1, ema_alpha=1.0)
    assert settings.classify(0.55, Verdict.NO_FACES) is Verdict.UNCERTAIN
    assert settings.classify(0.55, Verdict.REAL) is Verdict.REAL
    assert settings.classify(0.55, Verdict.FAKE) is Verdict.FAKE
    assert settings.classify(0.6, Verdict.REAL) is Verdict.FAKE
    assert settings.classify(0.4, Verdict.FAKE) is Verdict.REAL

    scorer = StreamScorer(settings)
    assert scorer.final() == (Verdict.NO_FACES, None)
    assert scorer.update(0, 0.2, 0.0) == (0.2, True)  # NO_FACES -> REAL
    assert scorer.update(0, 0.55, 0.1) == (0.55, False)  # inside the band: stays REAL
    assert scorer.update(0, 0.9, 0.2) == (0.9, True)  # -> FAKE
    assert scorer.update(0, 0.95, 0.3) == (0.95, False)
    verdict, score = scorer.final()
    assert verdict is Verdict.FAKE
    assert score == pytest.approx((0.2 + 0.55 + 0.9 + 0.95) / 4)


def test_smoothing_is_an_exponential_moving_average() -> None:
    scorer = StreamScorer(ScoringSettings(ema_alpha=0.5))
    scorer.update(0, 1.0, 0.0)
    smoothed, _ = scorer.update(0, 0.0, 0.1)
    assert smoothed == pytest.approx(0.5)
    smoothed, _ = scorer.update(0, 0.0, 0.2)
    assert smoothed == pytest.approx(0.25)


def test_final_verdict_ignores_brief_tracks() -> None:
    scorer = StreamScorer(ScoringSettings(min_track_fraction=0.2))
    for i in range(20):
        scorer.update(0, 0.1, i)
    scorer.update(1, 0.99, 5.0)  # a one-window false detection
    verdict, score = scorer.final()
    assert verdict is Verdict.REAL and score == pytest.approx(0.1)


def test_drop_oldest_queue_counts_and_keeps_newest() -> None:
    q: BoundedQueue[int] = BoundedQueue(3, Backpressure.DROP_OLDEST, threading.Event())
    for i in range(10):
        assert q.put(i)
    assert q.dropped == 7
    assert [q.get_nowait() for _ in range(3)] == [7, 8, 9]


def test_wait_queue_unblocks_on_stop() -> None:
    stop = threading.Event()
    q: BoundedQueue[int] = BoundedQueue(1, Backpressure.WAIT, stop)
    assert q.put(1)
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    assert q.put(2) is False  # was blocked, gave up when the pipeline stopped
    assert q.dropped == 0


class CountingBackend(InferenceBackend):
    """A stub backend: a crop's feature is its mean pixel value; a window's score is the mean
    of its features / 255. Counts every crop it embeds."""

    name = "stub"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.embedded = 0
        self.batches: list[int] = []

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.embedded += len(crops)
        self.batches.append(len(crops))
        return crops.reshape(len(crops), -1).mean(axis=1, keepdims=True).astype(np.float32)

    def score(self, windows: np.ndarray) -> np.ndarray:
        return (windows.mean(axis=(1, 2)) / 255.0).astype(np.float32)


class Collect(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


def _settings(window: int, stride: int, **analyzer: object) -> PipelineSettings:
    base = {
        "analysis_fps": None,
        "detect_every": 1,
        "max_seconds": None,
        "iou_threshold": 0.3,
        "max_misses": 3,
        "crop_margin": 0.0,
        "crop_size": 32,
        "color_order": "BGR",
    }
    base.update(analyzer)
    return PipelineSettings(
        analyzer=AnalyzerSettings(**base),  # type: ignore[arg-type]
        window=window,
        stride=stride,
        batch=8,
    )


def _run(
    specs: list[str], settings: PipelineSettings
) -> tuple[list[StreamSummary], Collect, CountingBackend]:
    backend = CountingBackend(ModelSpec(input_size=32))
    sink = Collect()
    pipeline = Pipeline(
        [parse_source(s) for s in specs],
        backend=backend,
        detector_factory=WholeFrameDetector,
        settings=settings,
        sink=sink,
        untrained=True,
    )
    return pipeline.run(), sink, backend


def test_every_crop_is_embedded_once(clip_path: Path) -> None:
    summaries, sink, backend = _run([str(clip_path)], _settings(window=5, stride=1))
    (summary,) = summaries
    assert summary.frames_decoded == 30 == summary.frames_analyzed
    assert summary.crops_embedded == 30 == backend.embedded
    assert summary.windows_scored == 30 - 4
    scores = [e for e in sink.events if isinstance(e, ScoreEvent)]
    assert [e.frame_index for e in scores] == list(range(4, 30))
    assert all(0.0 <= e.score <= 1.0 and e.untrained for e in scores)
    assert max(backend.batches) <= 8


def test_analysis_fps_and_max_seconds(clip_path: Path) -> None:
    summaries, _, _ = _run(
        [str(clip_path)], _settings(window=2, stride=1, analysis_fps=5.0, max_seconds=1.0)
    )
    (summary,) = summaries
    assert summary.frames_decoded == 25  # 1 s of a 25 fps clip
    assert summary.frames_analyzed == 5


def test_one_bad_source_does_not_stop_the_others(clip_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    summaries, sink, _ = _run([str(missing), str(clip_path)], _settings(window=3, stride=2))
    bad, good = summaries
    assert bad.error and "missing.mp4" in bad.error and bad.verdict is Verdict.NO_FACES
    assert good.error is None and good.windows_scored > 0
    states = [(e.stream_id, e.state) for e in sink.events if hasattr(e, "state")]
    assert (str(missing), "failed") in states
    assert (str(clip_path), "ended") in states


def test_verdict_events_follow_scores(clip_path: Path) -> None:
    _, sink, _ = _run([str(clip_path)], _settings(window=3, stride=1))
    kinds = [type(e).__name__ for e in sink.events]
    first_score = kinds.index("ScoreEvent")
    assert "VerdictEvent" in kinds[first_score:]
    verdicts = [e for e in sink.events if isinstance(e, VerdictEvent)]
    assert verdicts[0].verdict is not Verdict.NO_FACES
    # The summary closes the stream; only the run's batch statistics may follow it.
    assert kinds.index("StreamSummary") > max(i for i, k in enumerate(kinds) if k == "ScoreEvent")
    assert set(kinds[kinds.index("StreamSummary") + 1 :]) <= {"BatchStatsEvent"}


class FirstFramesDetector(WholeFrameDetector):
    """The whole frame is a face on the first ``frames`` calls only: a face that leaves."""

    def __init__(self, frames: int) -> None:
        self.left = frames

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        self.left -= 1
        return super().detect(image_bgr) if self.left >= 0 else []


class CollectTrackEnds(Collect):
    """Also a frame sink: records score events and track ends in the order they came."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def handle(self, event: Event) -> None:
        super().handle(event)
        if isinstance(event, ScoreEvent):
            self.order.append(f"score {event.track_id}")

    def on_frame(self, frame: object, tracks: object) -> None:
        pass

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        self.order.append(f"track end {track_id}")


def test_short_track_is_scored_once_at_its_end(clip_path: Path) -> None:
    """A face seen on 6 frames, window 20: one window of its 6 crops when the track ends."""
    backend = CountingBackend(ModelSpec(input_size=32))
    sink = CollectTrackEnds()
    pipeline = Pipeline(
        [parse_source(str(clip_path))],
        backend=backend,
        detector_factory=lambda: FirstFramesDetector(6),
        settings=_settings(window=20, stride=5),
        sink=sink,
        untrained=True,
    )
    (summary,) = pipeline.run()
    scores = [e for e in sink.events if isinstance(e, ScoreEvent)]
    assert [(e.track_id, e.frame_index) for e in scores] == [(0, 5)]
    assert sink.order[:2] == ["score 0", "track end 0"]  # at the track's end, not the stream's
    assert summary.windows_scored == 1 and summary.crops_embedded == 6
    assert summary.tracks[0].windows == 1 and summary.verdict is not Verdict.NO_FACES


def test_short_track_is_scored_at_stream_end(clip_path: Path) -> None:
    """A face on all 30 frames of a clip, window 40: scored once, on its 30 crops."""
    summaries, sink, _ = _run([str(clip_path)], _settings(window=40, stride=5))
    scores = [e for e in sink.events if isinstance(e, ScoreEvent)]
    assert [e.frame_index for e in scores] == [29]
    kinds = [type(e).__name__ for e in sink.events]
    assert kinds.index("ScoreEvent") < kinds.index("StreamSummary")
    assert summaries[0].windows_scored == 1


def test_score_events_carry_their_window_length(tmp_path: Path) -> None:
    from dfstream.api import Analysis
    from dfstream.config import AnalysisConfig
    from dfstream.tools.benchkit import ScoreCollector, bench_model
    from tests.media import write_clip

    clip = write_clip(tmp_path / "c.mp4", frames=10, size=(64, 48))
    collector = ScoreCollector()
    run = Analysis(
        AnalysisConfig(sources=(str(clip),), untrained=True, detector="none", window=4, stride=2),
        sinks=[collector],
        model=bench_model("tiny", window=4),
    )
    run.run()
    assert {e.window for e in collector.scores} == {4}
    assert collector.scores[0].to_json()["window"] == 4


def test_live_state_keeps_active_faces_and_only_the_most_recent_gone() -> None:
    from dfstream.pipeline.state import GONE_FACES_KEPT, StreamState

    state = StreamState("s", "s", "s")
    for track in range(GONE_FACES_KEPT + 10):
        state.record_score(track, 0.5, 0.5, (0, 0, 1, 1))
    state.record_score(999, 0.7, 0.7, (0, 0, 1, 1))  # still in the picture
    for track in range(GONE_FACES_KEPT + 10):
        state.end_face(track)
    faces = state.snapshot().faces
    gone = [f.track_id for f in faces if not f.active]
    assert gone == list(range(10, GONE_FACES_KEPT + 10))  # the oldest 10 gone faces dropped
    assert [f.track_id for f in faces if f.active] == [999]
