"""Synthetic H.264 clips for benchmarks and self-checks (no data or network needed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_synthetic_clip(
    path: str | Path,
    *,
    seconds: float = 4.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
) -> Path:
    """Write a moving colour pattern as an H.264 (libx264, yuv420p) MP4 and return its path."""
    path = Path(path)
    width, height = size
    frames = max(1, round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for i in range(frames):
            phase = i / fps
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (127 + 127 * np.sin(xx / 17.0 + phase * 3.0)).astype(np.uint8)
            img[..., 1] = (127 + 127 * np.sin(yy / 13.0 - phase * 2.0)).astype(np.uint8)
            img[..., 2] = ((xx + yy + i * 4) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
