"""One person, one track: the linker's rules, the analyzer giving a returning face its old id
(and not a different face), and ``--no-relink``."""

from __future__ import annotations

import numpy as np
import pytest

from dfstream.api import pipeline_settings
from dfstream.cli.analyze import build_parser, config_from_args
from dfstream.config import AnalysisConfig
from dfstream.faces import (
    AnalyzerSettings,
    FaceAnalyzer,
    FaceDetector,
    RelinkSettings,
    TrackLinker,
    appearance,
)
from dfstream.faces.relink import LostTrack
from dfstream.model import untrained_model
from dfstream.model.spec import native_spec
from dfstream.types import Box, Detection, Frame


def _unit(values: list[float]) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


LOOKS = _unit([1.0, 0.2, 0.0])
ALIKE = _unit([1.0, 0.25, 0.05])  # cosine about 0.998
OTHER = _unit([0.0, 0.3, 1.0])  # cosine about 0.06
BOX: Box = (100.0, 100.0, 200.0, 200.0)

CASES = [
    # name, descriptor, box, time, expected id
    ("same face, same place", ALIKE, (110.0, 105.0, 215.0, 210.0), 1.5, 7),
    ("looks different", OTHER, BOX, 1.5, None),
    ("too far away", ALIKE, (400.0, 100.0, 500.0, 200.0), 1.5, None),
    ("much bigger", ALIKE, (60.0, 60.0, 300.0, 300.0), 1.5, None),
    ("lost too long ago", ALIKE, BOX, 3.5, None),
    ("before it was lost", ALIKE, BOX, 0.5, None),
]


@pytest.mark.parametrize(
    ("descriptor", "box", "time", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_linker_rules(descriptor: np.ndarray, box: Box, time: float, expected: int | None) -> None:
    linker = TrackLinker(RelinkSettings(max_gap_s=2.0, min_similarity=0.85, max_distance=1.0))
    linker.lose(7, LOOKS, BOX, 1.0)
    assert linker.link(descriptor, box, time) == expected
    assert linker.relinked == (expected is not None)


def test_a_lost_track_is_taken_over_once_and_expires() -> None:
    linker = TrackLinker(RelinkSettings(max_gap_s=2.0))
    linker.lose(3, LOOKS, BOX, 1.0)
    linker.lose(4, OTHER, BOX, 1.0)
    assert linker.link(ALIKE, BOX, 1.2) == 3
    assert linker.link(ALIKE, BOX, 1.3) is None  # 3 is taken, 4 looks different
    assert linker.expire(2.9) == []
    assert linker.expire(3.1) == [4] and len(linker) == 0


def test_a_missing_track_can_be_taken_over() -> None:
    """A track the tracker still follows (missed, not lost yet) is a candidate too."""
    linker = TrackLinker()
    missing = [LostTrack(2, LOOKS, BOX, 0.9), LostTrack(5, OTHER, BOX, 0.9)]
    assert linker.link(ALIKE, BOX, 1.0, missing=missing) == 2
    assert linker.link(ALIKE, BOX, 1.0, missing=missing[1:]) is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_gap_s: expected > 0"):
        RelinkSettings(max_gap_s=0)
    with pytest.raises(ValueError, match="max_scale: expected >= 1"):
        RelinkSettings(max_scale=0.5)


def _face(colour: tuple[int, int, int]) -> np.ndarray:
    """A 240x320 BGR frame: grey background, a face-sized disc of ``colour`` with two eyes."""
    image = np.full((240, 320, 3), 120, np.uint8)
    yy, xx = np.mgrid[:240, :320]
    image[(yy - 120) ** 2 + (xx - 160) ** 2 < 55**2] = colour
    image[100:110, 135:145] = image[100:110, 175:185] = (30, 30, 30)
    return image


class Scripted(FaceDetector):
    """Finds the face at a fixed box on the frames whose index is in ``seen``."""

    name = "scripted"

    def __init__(self, seen: set[int]) -> None:
        self.seen = seen
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        index, self.calls = self.calls, self.calls + 1
        return [Detection((105.0, 65.0, 215.0, 175.0), 0.9)] if index in self.seen else []


def _ids(frames: list[np.ndarray], seen: set[int], relink: bool) -> tuple[list[int], list[int]]:
    """(track id of each crop, ids reported ended), 10 frames/s, detection on every frame."""
    settings = AnalyzerSettings(
        crop_margin=0.2,
        crop_size=64,
        color_order="RGB",
        relink=RelinkSettings(max_gap_s=2.0) if relink else None,
    )
    analyzer = FaceAnalyzer(Scripted(seen), settings, stream_id="s")
    ids, ended = [], []
    for index, image in enumerate(frames):
        result = analyzer.analyze(Frame("s", index, index / 10, 0.0, image))
        ids.extend(c.track_id for c in result.crops)
        ended.extend(result.ended)
    return ids, ended


SKIN, BLUE = (140, 170, 220), (200, 60, 20)
SEEN = set(range(0, 5)) | set(range(12, 16))  # gone 0.7 s: the tracker ends it after 4 misses


def test_a_face_that_comes_back_keeps_its_id() -> None:
    frames = [_face(SKIN)] * 40
    ids, ended = _ids(frames, SEEN, relink=True)
    assert ids == [0] * 9
    assert ended == [0]  # once, 2 s after it was last seen (frame 15), not when missed
    plain_ids, plain_ended = _ids(frames, SEEN, relink=False)
    assert plain_ids == [0] * 5 + [1] * 4 and plain_ended == [0, 1]


def test_a_different_face_at_the_same_place_gets_a_new_id() -> None:
    frames = [_face(SKIN)] * 5 + [_face(BLUE)] * 35
    assert (
        appearance(frames[0][65:175, 105:215], "BGR")
        @ appearance(frames[-1][65:175, 105:215], "BGR")
        < 0.5
    )  # the descriptor tells them apart
    ids, _ = _ids(frames, SEEN, relink=True)
    assert ids == [0] * 5 + [1] * 4


def test_no_relink_turns_it_off() -> None:
    loaded = untrained_model(native_spec(backbone="tiny"))
    on = pipeline_settings(AnalysisConfig(untrained=True), loaded)
    off = pipeline_settings(AnalysisConfig(untrained=True, relink=False), loaded)
    assert on.analyzer.relink == RelinkSettings() and off.analyzer.relink is None
    args = build_parser().parse_args(["clip.mp4", "--untrained", "--no-relink"])
    assert config_from_args(args).relink is False
    assert config_from_args(build_parser().parse_args(["clip.mp4", "--untrained"])).relink
