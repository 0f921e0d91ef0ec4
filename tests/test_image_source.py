"""Photos as sources: parsing, decoding (colour order, EXIF orientation), bad files, and runs
that score each face of a photo, skip a photo without one and go on past a corrupt one."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfstream.cli import main
from dfstream.errors import SourceError
from dfstream.sources import ImageSource, SourceKind, expand_sources, open_source, parse_source
from tests.media import write_clip


def _pattern(height: int = 60, width: int = 80) -> np.ndarray:
    """A BGR image whose colours say where they are: blue top-left, red bottom-right."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[:10, :10] = (255, 0, 0)
    image[-10:, -10:] = (0, 0, 255)
    return image


def _events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "name", ["photo.jpg", "PHOTO.JPEG", "a.b.png", "x.webp", "file:///tmp/p.png"]
)
def test_photos_parse_as_image_sources(name: str) -> None:
    spec = parse_source(name)
    assert spec.kind is SourceKind.IMAGE and not spec.live
    assert spec.stem == Path(spec.url).stem


def test_a_photo_is_one_bgr_frame(tmp_path: Path) -> None:
    path = tmp_path / "pattern.png"
    cv2.imwrite(str(path), _pattern())
    with open_source(str(path)) as source:
        assert isinstance(source, ImageSource) and not source.live
        assert (source.width, source.height) == (80, 60)
        (frame,) = list(source.frames())
    assert (frame.index, frame.pts_seconds) == (0, 0.0)
    np.testing.assert_array_equal(frame.image_bgr, _pattern())  # PNG is lossless, BGR kept


def test_grey_and_alpha_photos_become_three_channels(tmp_path: Path) -> None:
    grey, rgba = tmp_path / "grey.png", tmp_path / "alpha.png"
    cv2.imwrite(str(grey), np.full((20, 30), 200, np.uint8))
    cv2.imwrite(str(rgba), np.dstack([_pattern(), np.full((60, 80), 255, np.uint8)]))
    for path, shape in ((grey, (20, 30, 3)), (rgba, (60, 80, 3))):
        with open_source(str(path)) as source:
            (frame,) = list(source.frames())
        assert frame.image_bgr.shape == shape and frame.image_bgr.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone's portrait JPEG: stored landscape with EXIF orientation 6 (rotate 90° clockwise
    to show). The frame comes out upright: portrait, the stored left edge on top."""
    pil = pytest.importorskip("PIL.Image", reason="needs pillow to write EXIF (dev extra)")
    stored = np.zeros((40, 100, 3), np.uint8)
    stored[:, :10] = (255, 0, 0)  # RGB red along the stored left edge
    image = pil.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    path = tmp_path / "portrait.jpg"
    path.write_bytes(buffer.getvalue())
    with open_source(str(path)) as source:
        (frame,) = list(source.frames())
    assert frame.image_bgr.shape == (100, 40, 3)
    b, g, r = frame.image_bgr[3, 20].tolist()
    assert r > 200 and b < 50 and g < 50  # red on top, in BGR order
    assert frame.image_bgr[-3, 20].max() < 50


BAD_PHOTOS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing", lambda t: t / "nope.jpg", "no such file"),
    ("empty", lambda t: _write(t / "empty.png", b""), "file is empty"),
    ("text named .jpg", lambda t: _write(t / "text.jpg", b"hello " * 50), "not a readable image"),
    ("cut JPEG", lambda t: _cut_jpeg(t), "not a readable image"),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut_jpeg(tmp: Path) -> Path:
    ok, data = cv2.imencode(".jpg", _pattern())
    assert ok
    return _write(tmp / "cut.jpg", data.tobytes()[:40])


@pytest.mark.parametrize(
    ("make", "expected"), [c[1:] for c in BAD_PHOTOS], ids=[c[0] for c in BAD_PHOTOS]
)
def test_bad_photos_are_one_line_source_errors(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(SourceError) as info:
        open_source(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and expected in message
    assert info.value.exit_code == 3


def test_folders_expand_to_videos_and_photos(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.JPG", "sub/c.webp", "sub/d.png", "notes.txt", "e.gif"):
        (root / name).write_bytes(b"x")
    specs = expand_sources([str(root)])
    got = [(Path(s.url).relative_to(root).as_posix(), s.kind) for s in specs]
    assert got == [
        ("a.JPG", SourceKind.IMAGE),
        ("b.mp4", SourceKind.FILE),
        ("sub/c.webp", SourceKind.IMAGE),
        ("sub/d.png", SourceKind.IMAGE),
    ]


def test_a_photo_face_is_scored_at_once(tmp_path: Path) -> None:
    """One crop, window 20: the photo's face gets one score, from a window of one feature."""
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), _pattern(120, 120))
    out = tmp_path / "out.jsonl"
    code = main([str(photo), "--untrained", "--detector", "none", "--jsonl", str(out),
                 "--no-dashboard"])  # fmt: skip
    assert code == 0
    events = _events(out)
    scores = [e for e in events if e["type"] == "score"]
    (summary,) = [e for e in events if e["type"] == "summary"]
    assert [(e["track"], e["frame_index"]) for e in scores] == [(0, 0)]
    assert summary["windows_scored"] == 1 and summary["verdict"] != "NO_FACES"
    assert summary["skipped"] is None and summary["frames_decoded"] == 1


def test_no_face_photo_is_skipped_and_corrupt_photo_is_exit_3(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A folder with a video, a photo without a face and a corrupt photo: the video and the
    blank photo run, the blank one is counted as skipped, the corrupt one is one error line
    and the run exits 3 (a source failed)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    write_clip(folder / "clip.mp4", frames=10)
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160, 3), 90, np.uint8))
    _write(folder / "broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg" * 10)
    out = tmp_path / "out.jsonl"
    code = main([str(folder), "--untrained", "--detector", "haar", "--jsonl", str(out),
                 "--no-dashboard"])  # fmt: skip
    stdout, err = capfd.readouterr()
    assert code == 3
    assert "Traceback" not in stdout + err
    errors = [line for line in err.splitlines() if line.startswith("dfstream: error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "not a readable image" in errors[0]
    summaries = {Path(e["stream"]).name: e for e in _events(out) if e["type"] == "summary"}
    assert set(summaries) == {"blank.png", "broken.jpg", "clip.mp4"}
    assert summaries["blank.png"]["skipped"] == "no face found in the photo"
    assert summaries["blank.png"]["error"] is None and summaries["blank.png"]["frames_decoded"]
    assert summaries["broken.jpg"]["error"] and summaries["broken.jpg"]["skipped"] is None
    assert summaries["clip.mp4"]["skipped"] is None  # a video without faces is not "skipped"
    assert "1 photo skipped: no face found" in stdout


def test_real_face_photo_scored_with_yunet(real_video: Path, tmp_path: Path) -> None:
    """A frame of a real video saved as a JPEG: the shipped YuNet finds the one face."""
    with open_source(str(real_video)) as source:
        frame = next(iter(source.frames()))
    photo = tmp_path / "real.jpg"
    cv2.imwrite(str(photo), frame.image_bgr)
    out = tmp_path / "out.jsonl"
    assert main([str(photo), "--untrained", "--jsonl", str(out), "--no-dashboard"]) == 0
    events = _events(out)
    assert len([e for e in events if e["type"] == "score"]) == 1
    (summary,) = [e for e in events if e["type"] == "summary"]
    assert summary["tracks"] == 1 and summary["skipped"] is None
