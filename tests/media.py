"""Write small test media with PyAV (no ffmpeg CLI): H.264 clips, audio-only and broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np

Pattern = Literal["moving_square", "face", "noise"]


def _draw(
    pattern: Pattern, index: int, size: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """One BGR frame of ``pattern`` at frame ``index``; ``size`` is (width, height)."""
    width, height = size
    if pattern == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = np.full((height, width, 3), (40, 90, 30), dtype=np.uint8)
    if pattern == "moving_square":
        side = max(4, min(width, height) // 4)
        x = (index * 3) % max(1, width - side)
        y = (index * 2) % max(1, height - side)
        image[y : y + side, x : x + side] = (0, 0, 255)
        return image
    # "face": a skin-coloured oval with eyes, nose and mouth, drifting slowly
    cx = width // 2 + (index % 10) - 5
    cy = height // 2
    rx, ry = max(4, width // 6), max(6, height // 4)
    cv2.ellipse(image, (cx, cy), (rx, ry), 0, 0, 360, (140, 170, 220), -1)
    eye_dx, eye_y = rx // 2, cy - ry // 4
    for ex in (cx - eye_dx, cx + eye_dx):
        cv2.circle(image, (ex, eye_y), max(1, rx // 6), (40, 30, 30), -1)
    cv2.line(image, (cx, eye_y + 2), (cx, cy + ry // 6), (110, 130, 180), max(1, rx // 12))
    cv2.ellipse(image, (cx, cy + ry // 2), (rx // 2, ry // 8), 0, 0, 180, (60, 60, 160), -1)
    return image


def write_clip(
    path: Path,
    *,
    frames: int = 30,
    size: tuple[int, int] = (160, 120),
    fps: int = 25,
    pattern: Pattern = "moving_square",
    audio: bool = False,
    vfr: bool = False,
    faststart: bool = False,
    gop: int | None = None,
) -> Path:
    """Write an H.264 (libx264, yuv420p) MP4 of ``frames`` frames; ``size`` is (width, height).

    ``vfr=True`` gives frames irregular timestamps (time base 1/1000 s); ``audio=True`` adds a
    mono AAC sine tone of the same length; ``faststart=True`` puts the index (moov) first, so
    that a truncated copy still opens and fails part-way through decoding. ``gop`` sets the
    keyframe interval (live-stream tests: a client joining mid-stream waits for a keyframe).
    """
    rng = np.random.default_rng(0)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        if vfr:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        audio_stream = container.add_stream("aac", rate=48000) if audio else None
        pts_ms = 0
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_draw(pattern, index, size, rng), format="bgr24")
            if vfr:
                frame.pts = pts_ms
                frame.time_base = Fraction(1, 1000)
                pts_ms += vfr_step_ms(index)
            else:
                frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds=frames / fps)
    return path


def vfr_step_ms(index: int) -> int:
    """The gap after frame ``index`` in a VFR clip: 20, 40, 70 ms repeating (irregular)."""
    return (20, 40, 70)[index % 3]


def _write_tone(
    container: av.container.OutputContainer, stream: av.AudioStream, *, seconds: float
) -> None:
    """Encode a mono 440 Hz tone of ``seconds`` into ``stream`` (1024-sample AAC frames)."""
    rate, chunk = 48000, 1024
    total = max(chunk, int(rate * seconds))
    for start in range(0, total, chunk):
        t = np.arange(start, start + chunk) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio_only(path: Path, *, seconds: float = 1.0) -> Path:
    """Write an MP4/M4A holding only an AAC audio stream."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        _write_tone(container, stream, seconds=seconds)
    return path


def write_truncated(src: Path, dst: Path) -> Path:
    """Copy the first half of the bytes of ``src`` to ``dst`` (an upload cut off half-way)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: len(data) // 2])
    return Path(dst)


def write_text_as_mp4(path: Path) -> Path:
    """Write a text file under a video name."""
    Path(path).write_text("this is not a video, only text pretending to be one\n" * 20)
    return Path(path)


def write_empty(path: Path) -> Path:
    """Write a zero-byte file."""
    Path(path).write_bytes(b"")
    return Path(path)
