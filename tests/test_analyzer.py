"""The per-stream FaceAnalyzer (sample -> detect every k -> track -> crop), and that training
preprocessing and the serving pipeline cut the same crops from the same frames."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from dfstream.api import pipeline_settings
from dfstream.backends.base import InferenceBackend
from dfstream.config import AnalysisConfig
from dfstream.cputime import StageClock
from dfstream.faces import (
    AnalyzerSettings,
    FaceAnalyzer,
    FaceDetector,
    IouTracker,
    YuNetDetector,
    crop_face,
    margin_for_detector,
)
from dfstream.model.checkpoint import untrained_model
from dfstream.model.spec import ModelSpec
from dfstream.pipeline.runner import Pipeline, PipelineSettings
from dfstream.sinks.base import Sink
from dfstream.types import Box, Detection, Event, Frame, ScoreEvent
from tests.media import write_clip
from training.cache import CropSettings
from training.preprocess import analyzer_settings, extract

FACE: Box = (20.0, 10.0, 60.0, 50.0)


class ScriptedDetector(FaceDetector):
    """Returns ``script[n]`` on its n-th call (nothing after the script) and records, for each
    call, the frame index written into the image's first pixel."""

    name = "scripted"

    def __init__(self, script: list[list[Detection]] | None = None) -> None:
        self.script = script
        self.seen: list[int] = []

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        self.seen.append(int(image_bgr[0, 0, 0]))
        if self.script is None:
            return [Detection(FACE, 0.9)]
        n = len(self.seen) - 1
        return self.script[n] if n < len(self.script) else []


def _frames(count: int, fps: float = 25.0) -> list[Frame]:
    frames = []
    for i in range(count):
        image = np.full((80, 100, 3), 90, np.uint8)
        image[0, 0, 0] = i
        frames.append(Frame("s", i, i / fps, 0.0, image))
    return frames


def _settings(**kw: object) -> AnalyzerSettings:
    base: dict[str, object] = {"crop_margin": 0.0, "crop_size": 16, "color_order": "BGR"}
    base.update(kw)
    return AnalyzerSettings(**base)  # type: ignore[arg-type]


def test_detects_every_kth_sampled_frame_and_crops_every_one() -> None:
    detector = ScriptedDetector()
    analyzer = FaceAnalyzer(detector, _settings(detect_every=3), stream_id="s")
    results = [analyzer.analyze(f) for f in _frames(10)]
    assert detector.seen == [0, 3, 6, 9]
    assert [r.detected for r in results] == [i % 3 == 0 for i in range(10)]
    assert all(r.sampled and len(r.crops) == 1 for r in results)
    assert [r.crops[0].frame_index for r in results] == list(range(10))
    assert {r.crops[0].track_id for r in results} == {0}
    assert analyzer.frames_analyzed == 10 and analyzer.detections == 4
    assert analyzer.detect_s >= 0.0


@pytest.mark.parametrize("live", [False, True])
def test_analysis_rate_samples_by_media_time(live: bool) -> None:
    # 25 fps sampled at 10 fps: due at 0, 0.1, 0.2, ...; taken at the first frame at or after.
    settings = _settings(analysis_fps=None if live else 10.0, live_analysis_fps=10.0)
    analyzer = FaceAnalyzer(ScriptedDetector(), settings, stream_id="s", live=live)
    results = [analyzer.analyze(f) for f in _frames(16)]
    assert [r.frame.index for r in results if r.sampled] == [0, 3, 5, 8, 10, 13, 15]
    for r in results:
        assert r.boxes == ((0, FACE),)  # unsampled frames keep the latest boxes
        assert len(r.crops) == (1 if r.sampled else 0)


def test_only_sampled_frames_of_a_lazy_source_are_converted() -> None:
    """A live source hands frames over unconverted; the analyzer converts the ones it samples
    (and bills that to ``convert``), the rest are never converted unless someone reads them."""
    converted: list[int] = []

    def lazy(frame: Frame) -> Frame:
        def convert() -> np.ndarray:
            converted.append(frame.index)
            return frame.image_bgr

        return Frame("s", frame.index, frame.pts_seconds, 0.0, convert=convert)

    clock = StageClock()
    settings = _settings(live_analysis_fps=10.0)
    analyzer = FaceAnalyzer(ScriptedDetector(), settings, stream_id="s", live=True, clock=clock)
    frames = [lazy(f) for f in _frames(16)]
    results = [analyzer.analyze(f) for f in frames]
    sampled = [r.frame.index for r in results if r.sampled]
    assert sampled == [0, 3, 5, 8, 10, 13, 15]
    assert converted == sampled
    assert [f.converted for f in frames] == [i in sampled for i in range(16)]
    assert "convert" in clock.seconds
    assert int(frames[4].image_bgr[0, 0, 0]) == 4 and converted[-1] == 4  # read later: made then
    assert frames[4].image_bgr is frames[4].image_bgr and converted.count(4) == 1


def test_a_lazy_frame_converts_once_when_read_by_two_threads() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def convert() -> np.ndarray:
        calls.append(1)
        gate.wait(5)
        return np.zeros((4, 4, 3), np.uint8)

    frame = Frame("s", 0, 0.0, 0.0, convert=convert)
    seen: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: seen.append(frame.image_bgr)) for _ in range(2)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(seen) == 2 and seen[0] is seen[1]
    later = frame.retimed(7.0)  # e.g. a paced benchmark source re-stamping frames
    assert later.wall_time == 7.0 and later.index == 0 and later.image_bgr is seen[0]
    with pytest.raises(TypeError, match="either image_bgr or convert"):
        Frame("s", 0, 0.0, 0.0)
    bad = Frame("s", 0, 0.0, 0.0, convert=lambda: np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"Frame\.image_bgr"):
        bad.image_bgr  # noqa: B018


def test_files_without_a_rate_analyse_every_frame() -> None:
    analyzer = FaceAnalyzer(ScriptedDetector(), _settings(), stream_id="s", live=False)
    assert all(analyzer.analyze(f).sampled for f in _frames(8))


def test_after_a_jump_in_media_time_the_next_frame_is_due_a_period_later() -> None:
    analyzer = FaceAnalyzer(ScriptedDetector(), _settings(analysis_fps=10.0), stream_id="s")
    image = np.zeros((80, 100, 3), np.uint8)
    taken = [
        analyzer.analyze(Frame("s", i, t, 0.0, image)).sampled
        for i, t in enumerate([0.0, 5.0, 5.04, 5.08, 5.1, 5.2])
    ]
    assert taken == [True, True, False, False, True, True]


def test_ended_tracks_are_reported_with_the_detection_that_ended_them() -> None:
    seen, lost = [Detection(FACE, 0.9)], list[Detection]()
    script = [seen, lost, lost, lost, [Detection((70.0, 30.0, 95.0, 60.0), 0.8)]]
    analyzer = FaceAnalyzer(ScriptedDetector(script), _settings(max_misses=1), stream_id="s")
    results = [analyzer.analyze(f) for f in _frames(5)]
    assert [r.ended for r in results] == [(), (), (0,), (), ()]
    assert [len(r.crops) for r in results] == [1, 0, 0, 0, 1]  # a missed face is not cropped
    assert results[4].crops[0].track_id == 1
    assert results[1].boxes == ()


def test_restart_cadence_detects_on_the_next_sampled_frame() -> None:
    detector = ScriptedDetector()
    analyzer = FaceAnalyzer(detector, _settings(detect_every=4), stream_id="s")
    for frame in _frames(9):
        if frame.index == 2:
            analyzer.restart_cadence()
        analyzer.analyze(frame)
    assert detector.seen == [0, 2, 6]


def test_crops_follow_the_crop_rule_and_carry_landmarks_in_crop_pixels() -> None:
    points = np.array([[20, 10], [60, 10], [40, 30], [20, 50], [60, 50]], np.float32)
    script = [[Detection(FACE, 0.9, points)], [Detection(FACE, 0.9)]]
    settings = _settings(crop_margin=0.25, crop_size=30, color_order="RGB")
    analyzer = FaceAnalyzer(ScriptedDetector(script), settings, stream_id="cam")
    frames = _frames(2)
    first, second = (analyzer.analyze(f).crops[0] for f in frames)
    expected = crop_face(frames[0].image_bgr, FACE, margin=0.25, size=30, color_order="RGB")
    assert np.array_equal(first.crop, expected)
    assert first.stream_id == "cam" and first.box == FACE
    # the square is 60 px (40 * 1.5) from (10, 0): the corners of the box map to 5 and 25
    assert first.landmarks is not None
    assert np.allclose(first.landmarks[[0, 4]], [[5, 5], [25, 25]])
    assert second.landmarks is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("detect_every", 0, "detect_every: expected >= 1"),
        ("analysis_fps", 0.0, "analysis_fps: expected None or > 0"),
        ("live_analysis_fps", -1.0, "live_analysis_fps: expected None or > 0"),
        ("crop_margin", -0.1, "crop_margin: expected >= 0"),
        ("crop_size", 0, "crop_size: expected >= 1"),
        ("color_order", "YUV", "color_order: expected 'BGR' or 'RGB'"),
    ],
)
def test_settings_are_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**{field: value})


def test_tracker_constants_and_the_margin_rule_are_shared() -> None:
    settings = _settings()
    tracker = IouTracker()
    assert (settings.iou_threshold, settings.max_misses) == (tracker.iou_threshold, 3)
    assert tracker.max_misses == 3 and tracker.iou_threshold == 0.3
    assert margin_for_detector("none", 0.2) == 0.0
    assert margin_for_detector("yunet", 0.2) == 0.2
    loaded = untrained_model(seed=0)
    for detector, margin in (("none", 0.0), ("haar", loaded.spec.crop_margin)):
        config = AnalysisConfig(sources=("x.mp4",), untrained=True, detector=detector)  # type: ignore[arg-type]
        assert pipeline_settings(config, loaded).analyzer.crop_margin == margin
        crop = CropSettings(detector=detector, margin=loaded.spec.crop_margin)
        assert analyzer_settings(crop).crop_margin == margin


# --- training crops == serving crops -------------------------------------------------------


class SquareDetector(FaceDetector):
    """Finds the red square of ``write_clip``; misses it on some frames and reports a second,
    fixed face on others, so that tracks end and start."""

    name = "square"

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        red = (image_bgr[:, :, 2] > 200) & (image_bgr[:, :, 1] < 60)
        ys, xs = np.nonzero(red)
        if len(xs) == 0:
            return []
        x1, y1 = float(xs.min()), float(ys.min())
        found = []
        if int(x1) % 7 >= 2:
            found.append(Detection((x1, y1, float(xs.max() + 1), float(ys.max() + 1)), 0.9))
        if int(y1) % 5 == 0:
            found.append(Detection((5.0, 5.0, 30.0, 28.0), 0.5))
        return found


class RecordingBackend(InferenceBackend):
    """Keeps every crop it embeds, in order; features are mean pixel values."""

    name = "recording"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.crops: list[np.ndarray] = []

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.crops.extend(np.array(c) for c in crops)
        return crops.reshape(len(crops), -1).mean(axis=1, keepdims=True).astype(np.float32)

    def score(self, windows: np.ndarray) -> np.ndarray:
        return (windows.mean(axis=(1, 2)) / 255.0).astype(np.float32)


class Scores(Sink):
    def __init__(self) -> None:
        self.events: list[ScoreEvent] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent):
            self.events.append(event)

    def close(self) -> None:
        pass


def _same_crops_as_serving(
    video: Path, make: type[FaceDetector], crop: CropSettings, frames: int
) -> int:
    """Training's crops of the first ``frames`` frames (one run) == the pipeline's, in order,
    with the same track ids and boxes; returns the number of crops."""
    assert crop.frames == crop.run_length == frames  # one run from frame 0: serving's cadence
    trained = extract(video, make(), crop)
    settings = PipelineSettings(
        analyzer=AnalyzerSettings(
            crop_margin=crop.margin,
            crop_size=crop.size,
            color_order=crop.color_order,
            detect_every=crop.detect_every,
            max_seconds=(frames - 0.5) / 25,
        ),
        window=2,
        stride=1,
        batch=4,
    )
    backend, sink = RecordingBackend(ModelSpec(input_size=crop.size)), Scores()
    pipeline = Pipeline(
        [str(video)],
        backend=backend,
        detector_factory=make,
        settings=settings,
        sink=sink,
        untrained=True,
    )
    (summary,) = pipeline.run()
    assert summary.frames_analyzed == frames and summary.error is None
    assert len(backend.crops) == len(trained["crops"]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(backend.crops, trained["crops"], strict=True))
    rows = {
        (int(t), int(f)): tuple(box)
        for t, f, box in zip(
            trained["track"], trained["frame_index"], trained["boxes"], strict=True
        )
    }
    assert sink.events
    for event in sink.events:
        assert rows[(event.track_id, event.frame_index)] == pytest.approx(event.box)
    return len(backend.crops)


def test_training_crops_equal_serving_crops(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "square.mp4", frames=90, size=(160, 120))
    crop = CropSettings(size=40, frames=90, run_length=90, detect_every=3, color_order="RGB")
    assert _same_crops_as_serving(clip, SquareDetector, crop, 90) > 60


def test_training_crops_equal_serving_crops_on_a_real_face(
    real_video: Path, yunet_model: Path
) -> None:
    class Model(YuNetDetector):
        def __init__(self) -> None:
            super().__init__(yunet_model)

    crop = CropSettings(size=64, frames=50, run_length=50, detect_every=5, detector="yunet")
    assert _same_crops_as_serving(real_video, Model, crop, 50) == 50


def test_training_restarts_the_detector_cadence_at_every_run(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "runs.mp4", frames=60, size=(160, 120))

    class Counting(SquareDetector):
        calls = 0

        def detect(self, image_bgr: np.ndarray) -> list[Detection]:
            self.calls += 1
            return super().detect(image_bgr)

    detector = Counting()
    arrays = extract(clip, detector, CropSettings(size=32, frames=20, run_length=4, detect_every=3))
    assert sorted(set(arrays["run"].tolist())) == [0, 1, 2, 3, 4]
    assert detector.calls == 5 * 2  # frames 0 and 3 of each run of 4
