"""Tests of dfstream.faces: IoU tracking, the crop rule and the detectors."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tomllib

from dfstream.errors import DfstreamError, UsageError
from dfstream.faces import (
    DetectorError,
    HaarDetector,
    IouTracker,
    WholeFrameDetector,
    YuNetDetector,
    crop_face,
    default_model_cache,
    detect,
    find_yunet_model,
    iou,
    make_detector,
    square_box,
)
from dfstream.sources import open_source
from dfstream.types import Box, Detection


def det(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> Detection:
    return Detection(box=(x1, y1, x2, y2), score=score)


# --- IoU and tracking ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),
        ((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100),
        ((0, 0, 10, 10), (50, 50, 60, 60), 0.0),
    ],
)
def test_iou(a: Box, b: Box, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_tracker_keeps_ids_while_a_face_moves() -> None:
    tracker = IouTracker()
    ids = []
    for step in range(10):
        tracks = tracker.update([det(100 + 3 * step, 50, 200 + 3 * step, 150)])
        ids.append([t.track_id for t in tracks])
    assert ids == [[0]] * 10
    (track,) = tracker.tracks()
    assert track.hits == 10 and track.age == 10 and track.misses == 0
    assert track.box == (127, 50, 227, 150)
    assert tracker.pop_ended() == []


def test_two_faces_two_tracks() -> None:
    tracker = IouTracker()
    left, right = det(10, 10, 60, 60), det(200, 10, 250, 60)
    assert [t.track_id for t in tracker.update([left, right])] == [0, 1]
    # reported in a different order and moved a little: ids follow the boxes, not the order
    tracks = tracker.update([det(204, 12, 254, 62), det(12, 10, 62, 60)])
    assert {t.track_id: t.box[0] for t in tracks} == {0: 12, 1: 204}


def test_greedy_matching_prefers_the_best_overlap() -> None:
    tracker = IouTracker(iou_threshold=0.1)
    tracker.update([det(0, 0, 100, 100)])
    tracks = tracker.update([det(40, 0, 140, 100), det(5, 0, 105, 100)])
    assert {t.track_id: t.box[0] for t in tracks} == {0: 5, 1: 40}


def test_track_ends_after_more_than_max_misses() -> None:
    tracker = IouTracker(max_misses=2)
    tracker.update([det(0, 0, 50, 50)])
    for _ in range(2):
        assert tracker.update([]) == []
        assert len(tracker) == 1 and tracker.pop_ended() == []
    tracker.update([])  # third miss: more than max_misses
    assert len(tracker) == 0
    assert tracker.pop_ended() == [0]
    assert tracker.pop_ended() == []
    # a new face after that gets a new id
    assert [t.track_id for t in tracker.update([det(0, 0, 50, 50)])] == [1]


def test_face_reappearing_after_a_miss_keeps_its_id() -> None:
    tracker = IouTracker(max_misses=3)
    tracker.update([det(0, 0, 50, 50)])
    tracker.update([])
    assert tracker.tracks() == []  # missed faces are not cropped
    (track,) = tracker.update([det(2, 0, 52, 50)])
    assert track.track_id == 0 and track.misses == 0 and track.hits == 2 and track.age == 3


def test_end_all() -> None:
    tracker = IouTracker()
    tracker.update([det(0, 0, 10, 10), det(100, 100, 110, 110)])
    tracker.end_all()
    assert tracker.pop_ended() == [0, 1] and tracker.tracks() == []


def test_tracker_validates_arguments() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        IouTracker(iou_threshold=0)
    with pytest.raises(ValueError, match="max_misses"):
        IouTracker(max_misses=-1)


# --- crop ---------------------------------------------------------------------------------


def _gradient(height: int = 100, width: int = 120) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = 200  # blue
    image[..., 2] = 50  # red
    image[..., 1] = np.linspace(1, 255, width, dtype=np.uint8)[None, :]
    return image


def test_square_box() -> None:
    assert square_box((10, 20, 30, 60), margin=0.0, image_shape=(100, 100, 3)) == (0, 20, 40, 60)
    x1, y1, x2, y2 = square_box((10, 20, 30, 60), margin=0.25, image_shape=(100, 100))
    assert x2 - x1 == y2 - y1 == 60 and (x1 + x2) / 2 == 20 and (y1 + y2) / 2 == 40
    with pytest.raises(ValueError, match="outside"):
        square_box((500, 500, 510, 510), margin=0.1, image_shape=(100, 100, 3))


@pytest.mark.parametrize("size", [32, 224, 60])
def test_crop_shape_and_dtype(size: int) -> None:
    crop = crop_face(_gradient(), (30, 20, 90, 80), margin=0.0, size=size, color_order="BGR")
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    assert crop.flags["C_CONTIGUOUS"]


def test_crop_colour_order() -> None:
    image = _gradient()
    bgr = crop_face(image, (30, 20, 90, 80), margin=0.1, size=64, color_order="BGR")
    rgb = crop_face(image, (30, 20, 90, 80), margin=0.1, size=64, color_order="RGB")
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    assert bgr[32, 32, 0] == 200 and rgb[32, 32, 2] == 200
    assert rgb.flags["C_CONTIGUOUS"]


def test_crop_exact_pixels_without_resize() -> None:
    image = _gradient()
    crop = crop_face(image, (30, 20, 90, 80), margin=0.0, size=60, color_order="BGR")
    np.testing.assert_array_equal(crop, image[20:80, 30:90])


def test_crop_pads_outside_with_black() -> None:
    image = np.full((100, 100, 3), 255, dtype=np.uint8)
    # box in the top-left corner: with margin 0.5 the square reaches 20 px past both edges
    crop = crop_face(image, (0, 0, 40, 40), margin=0.5, size=80, color_order="BGR")
    assert crop.shape == (80, 80, 3)
    assert not crop[:18, :].any() and not crop[:, :18].any()
    assert (crop[22:, 22:] == 255).all()


def test_margin_makes_the_crop_larger() -> None:
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[80:120, 80:120] = 255  # a white "face" exactly filling the box
    tight = crop_face(image, (80, 80, 120, 120), margin=0.0, size=100, color_order="BGR")
    loose = crop_face(image, (80, 80, 120, 120), margin=0.5, size=100, color_order="BGR")
    assert (tight == 255).mean() > 0.99
    assert (loose == 255).mean() == pytest.approx(0.25, abs=0.03)


# --- detectors ----------------------------------------------------------------------------


def test_whole_frame_detector() -> None:
    (found,) = WholeFrameDetector().detect(np.zeros((48, 64, 3), dtype=np.uint8))
    assert found.box == (0.0, 0.0, 64.0, 48.0) and found.score == 1.0


def test_haar_on_blank_frame_finds_nothing() -> None:
    assert HaarDetector().detect(np.zeros((240, 320, 3), dtype=np.uint8)) == []


def _sampled_frames(path: Path, every: int) -> Iterator[np.ndarray]:
    with open_source(str(path)) as source:
        for frame in source.frames():
            if frame.index % every == 0:
                yield frame.image_bgr


def test_yunet_finds_the_one_face(yunet_model: Path, real_video: Path) -> None:
    detector = YuNetDetector(yunet_model)
    for image in _sampled_frames(real_video, every=150):
        (face,) = detector.detect(image)
        x1, y1, x2, y2 = face.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert 160 < cx < 480 and 60 < cy < 300  # the presenter sits in the middle of 640x480
        assert 50 < x2 - x1 < 200 and face.score > 0.8
        assert face.landmarks is not None and face.landmarks.shape == (5, 2)
        assert ((face.landmarks >= (x1, y1)) & (face.landmarks <= (x2, y2))).all()


def test_yunet_maps_boxes_back_from_the_downscaled_frame(
    yunet_model: Path, real_video: Path
) -> None:
    import cv2

    image = next(_sampled_frames(real_video, every=1000))
    big = cv2.resize(image, (1280, 960), interpolation=cv2.INTER_LINEAR)
    (small_face,) = YuNetDetector(yunet_model).detect(image)
    (big_face,) = YuNetDetector(yunet_model, max_side=640).detect(big)
    np.testing.assert_allclose(np.array(big_face.box) / 2, small_face.box, atol=4)


def test_haar_finds_the_face(real_video: Path) -> None:
    image = next(_sampled_frames(real_video, every=1000))
    boxes = [d.box for d in HaarDetector().detect(image)]
    # YuNet puts this face at about (369, 92, 445, 194)
    assert any(iou(box, (369, 92, 445, 194)) > 0.4 for box in boxes)


def test_yunet_bad_model_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        YuNetDetector(tmp_path / "missing.onnx")
    broken = tmp_path / "face_detection_yunet_broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(DetectorError) as info:
        YuNetDetector(broken)
    assert isinstance(info.value, DfstreamError) and info.value.exit_code == 5
    assert "\n" not in str(info.value) and str(broken) in str(info.value)


def test_default_model_cache(tmp_path: Path) -> None:
    assert default_model_cache(home=tmp_path) == tmp_path / ".cache" / "dfstream" / "models"
    assert default_model_cache(home=tmp_path, xdg_cache_home="/xdg") == Path("/xdg/dfstream/models")


def test_find_yunet_model(tmp_path: Path) -> None:
    assert find_yunet_model(None) is None
    assert find_yunet_model(tmp_path / "absent") is None
    assert find_yunet_model(tmp_path) is None
    for name in ("face_detection_yunet_2023mar.onnx", "face_detection_yunet_2026may.onnx"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "other.onnx").write_bytes(b"x")
    assert find_yunet_model(tmp_path) == tmp_path / "face_detection_yunet_2026may.onnx"


def test_auto_uses_the_shipped_yunet_on_a_fresh_install(tmp_path: Path) -> None:
    assert detect.SHIPPED_YUNET.is_file()
    for kind in ("auto", "yunet"):
        detector = make_detector(kind, model_path=None, cache_dir=tmp_path, notice=pytest.fail)
        assert isinstance(detector, YuNetDetector)
        assert detector.model_path == detect.SHIPPED_YUNET


def test_detect_size_reaches_the_detector_and_is_validated(tmp_path: Path) -> None:
    from dfstream.api import detector_factory
    from dfstream.config import AnalysisConfig

    for kind in ("yunet", "haar"):
        config = AnalysisConfig(sources=("x.mp4",), detector=kind, detect_size=320)
        detector = detector_factory(config, pytest.fail)()
        assert detector.max_side == 320  # type: ignore[attr-defined]
        image = np.zeros((720, 1280, 3), np.uint8)
        assert detector.detect(image) == []  # runs at the new size without error
    with pytest.raises(ValueError, match="--detect-size"):
        AnalysisConfig(sources=("x.mp4",), detect_size=8)


def test_shipped_yunet_is_the_documented_file_with_its_licence() -> None:
    data = detect.SHIPPED_YUNET.read_bytes()
    assert len(data) == 229_738
    assert hashlib.sha256(data).hexdigest() == (
        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
    )
    licence = (detect.SHIPPED_YUNET.parent / "LICENCE").read_text()
    assert "MIT License" in licence and "Shiqi Yu" in licence
    # Both are package data, so that an installed (not only an editable) dfstream has them.
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["dfstream.faces"]
    for name in (detect.SHIPPED_YUNET.name, "LICENCE"):
        assert any(fnmatch.fnmatch(f"models/{name}", p) for p in patterns), name


def test_user_model_and_cache_take_precedence_over_the_shipped_one(
    tmp_path: Path, yunet_model: Path
) -> None:
    cached = tmp_path / "face_detection_yunet_2099jan.onnx"
    cached.write_bytes(yunet_model.read_bytes())
    got = make_detector("auto", model_path=None, cache_dir=tmp_path, notice=pytest.fail)
    assert isinstance(got, YuNetDetector) and got.model_path == cached
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(yunet_model.read_bytes())
    got = make_detector("auto", model_path=mine, cache_dir=tmp_path, notice=pytest.fail)
    assert isinstance(got, YuNetDetector) and got.model_path == mine


@pytest.fixture
def no_shipped_yunet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if a user had deleted the packaged YuNet model."""
    monkeypatch.setattr(detect, "SHIPPED_YUNET", tmp_path / "removed" / detect.SHIPPED_YUNET.name)


@pytest.mark.usefixtures("no_shipped_yunet")
def test_auto_without_model_falls_back_to_haar(tmp_path: Path) -> None:
    notices: list[str] = []
    detector = make_detector("auto", model_path=None, cache_dir=tmp_path, notice=notices.append)
    assert isinstance(detector, HaarDetector)
    (line,) = notices
    assert "Haar" in line and "--detector-model" in line and str(tmp_path) in line
    assert "\n" not in line


def test_auto_and_yunet_use_the_cached_model(tmp_path: Path, yunet_model: Path) -> None:
    (tmp_path / yunet_model.name).write_bytes(yunet_model.read_bytes())
    for kind in ("auto", "yunet"):
        detector = make_detector(kind, model_path=None, cache_dir=tmp_path, notice=pytest.fail)
        assert isinstance(detector, YuNetDetector)


@pytest.mark.usefixtures("no_shipped_yunet")
def test_yunet_without_model_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--detector-model") as info:
        make_detector("yunet", model_path=None, cache_dir=tmp_path, notice=pytest.fail)
    assert info.value.exit_code == 2 and str(tmp_path) in str(info.value)


def test_make_detector_simple_kinds() -> None:
    haar = make_detector("haar", model_path=None, cache_dir=None, notice=pytest.fail)
    assert isinstance(haar, HaarDetector)
    whole = make_detector("none", model_path=None, cache_dir=None, notice=pytest.fail)
    assert isinstance(whole, WholeFrameDetector)
