"""Tests of dfstream.sources: lossless file decoding, timestamps, folders and bad inputs."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av.error
import numpy as np
import pytest

from dfstream.errors import SourceError
from dfstream.sources import (
    VIDEO_EXTENSIONS,
    FileSource,
    Source,
    expand_sources,
    open_source,
    redact,
)
from tests.media import (
    vfr_step_ms,
    write_audio_only,
    write_clip,
    write_empty,
    write_text_as_mp4,
    write_truncated,
)


def test_every_frame_in_order(clip_path: Path) -> None:
    with open_source(str(clip_path)) as source:
        assert isinstance(source, Source)
        assert (source.width, source.height, source.live) == (160, 120, False)
        assert source.fps == pytest.approx(25.0)
        assert source.media_duration_s == pytest.approx(1.2, abs=0.05)
        assert source.stream_id == str(clip_path)
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(30))
    pts = [f.pts_seconds for f in frames]
    assert pts[0] == pytest.approx(0.0, abs=1e-6)
    assert all(b > a for a, b in itertools.pairwise(pts))
    assert pts[-1] == pytest.approx(29 / 25, abs=1e-3)
    first = frames[0]
    assert first.image_bgr.shape == (120, 160, 3) and first.image_bgr.dtype == np.uint8
    assert first.stream_id == str(clip_path) and first.wall_time > 0
    # the square is red (BGR 0, 0, 255) and sits in the top-left corner on frame 0
    b, g, r = first.image_bgr[10, 10].astype(int)
    assert r > 200 and b < 60 and g < 60


def test_stream_id_override(clip_path: Path) -> None:
    with open_source(str(clip_path), stream_id="cam-1") as source:
        assert source.stream_id == "cam-1"
        assert next(iter(source.frames())).stream_id == "cam-1"


def test_vfr_timestamps_preserved(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "vfr.mp4", frames=20, vfr=True)
    with open_source(str(path)) as source:
        pts = [f.pts_seconds for f in source.frames()]
    expected = np.cumsum([0] + [vfr_step_ms(i) for i in range(19)]) / 1000.0
    np.testing.assert_allclose(pts, expected, atol=1e-3)


def test_audio_track_is_ignored(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "av.mp4", frames=12, audio=True)
    with open_source(str(path)) as source:
        assert len(list(source.frames())) == 12


def test_stopping_early_closes_cleanly(clip_path: Path) -> None:
    source = open_source(str(clip_path))
    frames = source.frames()
    assert next(frames).index == 0
    source.close()
    source.close()  # idempotent
    assert list(frames) == []  # the suspended iterator ends quietly
    with pytest.raises(SourceError, match="closed"):
        next(iter(source.frames()))


def test_folder_expansion(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a").mkdir()
    for name in ("b/deeper/z.MKV", "b/y.mp4", "a/x.webm", "top.mov"):
        (root / name).write_bytes(b"x")
    (root / "notes.txt").write_text("not a video")
    (root / "a" / "thumb.jpg").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing to see")

    got = [s.text for s in expand_sources(["rtsp://cam/1", str(root), "file.mp4", str(empty)])]

    media = [
        str(root / n) for n in ("a/thumb.jpg", "a/x.webm", "b/deeper/z.MKV", "b/y.mp4", "top.mov")
    ]  # photos are sources too (a/thumb.jpg)
    assert got == ["rtsp://cam/1", *media, "file.mp4", str(empty)]


def test_video_extensions() -> None:
    assert {".mp4", ".mkv", ".webm", ".3gp"} <= VIDEO_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in VIDEO_EXTENSIONS)


def _missing(tmp: Path) -> Path:
    return tmp / "nope.mp4"


def _folder_without_videos(tmp: Path) -> Path:
    folder = tmp / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("text")
    return folder


def _cut_in_half(tmp: Path) -> Path:
    return write_truncated(write_clip(tmp / "whole.mp4", pattern="noise"), tmp / "half.mp4")


BAD_INPUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing path", _missing, "no such file or folder"),
    ("folder with no videos", _folder_without_videos, ".mp4"),
    ("text named .mp4", lambda t: write_text_as_mp4(t / "fake.mp4"), "not a readable video"),
    ("mp4 cut in half", _cut_in_half, "not a readable video"),
    ("zero-byte file", lambda t: write_empty(t / "empty.mp4"), "file is empty"),
    ("audio only", lambda t: write_audio_only(t / "song.m4a"), "has no video stream"),
]


@pytest.mark.parametrize(
    ("make", "expected"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_inputs(tmp_path: Path, make: Callable[[Path], Path], expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(SourceError) as info, open_source(str(path)) as source:
        list(source.frames())
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message
    assert info.value.exit_code == 3


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read unreadable files"
)
def test_unreadable_file(clip_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.mp4"
    path.write_bytes(clip_path.read_bytes())
    path.chmod(0)
    with pytest.raises(SourceError, match="permission denied"):
        open_source(str(path))


def test_truncated_with_index_first_yields_frames_then_fails(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.mp4", pattern="noise", faststart=True)
    half = write_truncated(whole, tmp_path / "half.mp4")
    seen: list[int] = []
    with pytest.raises(SourceError) as info, open_source(str(half)) as source:
        seen.extend(f.index for f in source.frames())
    assert 0 < len(seen) < 30
    assert f"decoding stopped after {len(seen)} frames" in str(info.value)
    assert "\n" not in str(info.value)


class _FailingContainer:
    """Wraps a PyAV container whose decoder fails on the sixth frame, like a corrupt file."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def decode(self, *args: Any) -> Iterator[Any]:
        for n, frame in enumerate(self._container.decode(*args)):
            if n == 5:
                raise av.error.InvalidDataError(
                    -1094995529, "Invalid data found when processing input"
                )
            yield frame

    def close(self) -> None:
        self._container.close()


def test_decoder_error_mid_file(clip_path: Path) -> None:
    source = open_source(str(clip_path))
    assert isinstance(source, FileSource)
    source._container = _FailingContainer(source._container)
    seen: list[int] = []
    with pytest.raises(SourceError) as info:
        seen.extend(f.index for f in source.frames())
    assert seen == [0, 1, 2, 3, 4]
    assert str(info.value) == (
        f"{clip_path}: decoding stopped after 5 frames: Invalid data found when processing "
        "input (the file is probably truncated or corrupt)"
    )


@pytest.mark.parametrize("spec", ["ftp://user:secret@10.0.0.2/live", "webcam://0"])
def test_unsupported_url_scheme(spec: str) -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme") as info:
        open_source(spec)
    assert "secret" not in str(info.value)


def test_file_url(clip_path: Path) -> None:
    with open_source(f"file://{clip_path}") as source:
        assert source.width == 160


def test_redact() -> None:
    assert redact("rtsp://admin:pw@cam:554/s") == "rtsp://***@cam:554/s"
    assert redact("/videos/a@b.mp4") == "/videos/a@b.mp4"


def test_real_video(real_video: Path) -> None:
    with open_source(str(real_video)) as source:
        assert (source.width, source.height) == (640, 480)
        count, last_pts = 0, -1.0
        for frame in source.frames():
            assert frame.index == count and frame.pts_seconds > last_pts
            count, last_pts = count + 1, frame.pts_seconds
    assert count == 751


def test_close_from_another_thread_stops_decoding(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "long.mp4", frames=200, pattern="noise")
    source = open_source(str(path))
    seen: list[int] = []

    def consume() -> None:
        for frame in source.frames():
            seen.append(frame.index)
            time.sleep(0.002)

    worker = threading.Thread(target=consume)
    worker.start()
    while not seen:
        time.sleep(0.001)
    source.close()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert 0 < len(seen) < 200


def test_conversion_on_one_thread_gives_the_same_pixels(tmp_path: Path) -> None:
    import av

    from dfstream.sources.ffmpeg import to_bgr

    clip = write_clip(tmp_path / "hd.mp4", frames=6, size=(1280, 720))
    with av.open(str(clip)) as container:
        for frame in container.decode(container.streams.video[0]):
            mine = to_bgr(frame)
            assert mine.shape == (720, 1280, 3) and mine.dtype == np.uint8
            np.testing.assert_array_equal(mine, frame.to_ndarray(format="bgr24"))
