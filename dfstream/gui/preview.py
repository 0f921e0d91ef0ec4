"""The preview picture: the latest frame of a stream, downscaled, with its face boxes coloured
by score and labelled with their track ids (the overlay video's drawing, reused).

Pure numpy/OpenCV, no Tk: ``render_preview`` returns the bytes of a binary PPM, which Tk's
``PhotoImage(data=..., format="PPM")`` reads without any imaging library.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from dfstream.sinks.overlay_draw import FaceMark, draw_faces, draw_watermark
from dfstream.types import Frame, TrackBoxes


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` picture shrunk (never enlarged) to fit the box."""
    scale = min(1.0, max_width / max(1, width), max_height / max(1, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_preview(
    frame: Frame,
    tracks: TrackBoxes,
    scores: Mapping[int, float],
    *,
    max_size: tuple[int, int],
    untrained: bool = False,
) -> tuple[int, int, bytes]:
    """(width, height, PPM bytes) of ``frame`` fitted into ``max_size`` (width, height), each
    tracked face boxed in the colour of its score (grey before its first score)."""
    image = frame.image_bgr
    height, width = image.shape[:2]
    out_w, out_h = fit_size(width, height, *max_size)
    if (out_w, out_h) == (width, height):
        small = image.copy()  # the frame is shared with the other sinks: never draw on it
    else:
        small = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    sx, sy = out_w / width, out_h / height
    marks = []
    for track_id, (x1, y1, x2, y2) in tracks:
        box = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
        marks.append(FaceMark(track_id, box, scores.get(track_id)))
    draw_faces(small, marks)
    if untrained:
        draw_watermark(small)
    rgb = np.ascontiguousarray(small[:, :, ::-1])
    return out_w, out_h, f"P6 {out_w} {out_h} 255\n".encode("ascii") + rgb.tobytes()
