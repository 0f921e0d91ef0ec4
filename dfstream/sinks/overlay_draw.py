"""Drawing the overlay on a BGR frame: score-coloured face boxes, a score timeline strip along
the bottom, and an UNTRAINED watermark. Pure functions on numpy arrays (OpenCV drawing), so
they are tested without encoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dfstream.types import Box

# BGR anchors of the score colour ramp: 0 green, 0.5 yellow, 1 red.
_GREEN = np.array((40, 200, 40), dtype=np.float32)
_YELLOW = np.array((0, 215, 255), dtype=np.float32)
_RED = np.array((40, 40, 230), dtype=np.float32)
UNSCORED_COLOR = (160, 160, 160)
"""Box colour of a face with no window score yet."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
WATERMARK = "UNTRAINED MODEL"


def score_color(score: float) -> tuple[int, int, int]:
    """BGR colour of a P(fake) score: green at 0, yellow at 0.5, red at 1."""
    s = min(1.0, max(0.0, float(score)))
    if s <= 0.5:
        color = _GREEN + (_YELLOW - _GREEN) * (s / 0.5)
    else:
        color = _YELLOW + (_RED - _YELLOW) * ((s - 0.5) / 0.5)
    b, g, r = (int(v) for v in np.rint(color))
    return b, g, r


def score_colors(scores: np.ndarray) -> np.ndarray:
    """Vectorised ``score_color``: (N,) scores in [0, 1] to (N, 3) uint8 BGR colours."""
    s = np.clip(scores.astype(np.float32), 0.0, 1.0)[:, None]
    low = _GREEN + (_YELLOW - _GREEN) * (s / 0.5)
    high = _YELLOW + (_RED - _YELLOW) * ((s - 0.5) / 0.5)
    return np.where(s <= 0.5, low, high).round().astype(np.uint8)


@dataclass(frozen=True, slots=True)
class FaceMark:
    """One face to draw on one frame: its box and the score it is drawn with (None: no score)."""

    track_id: int
    box: Box
    score: float | None


def _thickness(image: np.ndarray) -> int:
    return max(2, round(min(image.shape[:2]) / 240))


def draw_faces(image: np.ndarray, faces: list[FaceMark]) -> None:
    """Draw each face's box in its score colour with a ``#id score`` label, in place."""
    height, width = image.shape[:2]
    thick = _thickness(image)
    scale = max(0.4, min(height, width) / 900)
    for face in faces:
        color = UNSCORED_COLOR if face.score is None else score_color(face.score)
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        x1, x2 = max(0, min(width - 1, x1)), max(0, min(width - 1, x2))
        y1, y2 = max(0, min(height - 1, y1)), max(0, min(height - 1, y2))
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        label = f"#{face.track_id} " + ("--" if face.score is None else f"{face.score:.2f}")
        (tw, th), base = cv2.getTextSize(label, _FONT, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(height - 1, y2 + th + base + 4)
        cv2.rectangle(image, (x1, ty - th - base), (x1 + tw + 6, ty + 2), color, cv2.FILLED)
        cv2.putText(image, label, (x1 + 3, ty - base + 1), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def strip_height(image_height: int) -> int:
    """Height in pixels of the timeline strip for a frame of ``image_height`` rows."""
    return max(24, image_height // 9)


class Timeline:
    """Per-column scores of the timeline strip; the strip is redrawn from them on each frame.

    With a known frame count the strip spans the whole video (columns fill from the left as the
    video plays); without one (live sources) it shows the last ``window`` frames, scrolling.
    """

    def __init__(self, width: int, *, total_frames: int | None, window: int = 750) -> None:
        self.width = width
        self.total_frames = total_frames if total_frames and total_frames > 0 else None
        self.window = window
        self._columns = np.full(width, np.nan, dtype=np.float32)
        self._cursor = 0
        self._recent: list[float] = []

    def add(self, frame_index: int, score: float | None) -> None:
        """Record the stream score shown on frame ``frame_index`` (None: no face scored)."""
        value = np.nan if score is None else float(score)
        if self.total_frames is not None:
            col = min(self.width - 1, frame_index * self.width // self.total_frames)
            if not np.isnan(value):
                old = self._columns[col]
                self._columns[col] = value if np.isnan(old) else max(old, value)
            self._cursor = col
            return
        self._recent.append(value)
        if len(self._recent) > self.window:
            del self._recent[: len(self._recent) - self.window]
        values = np.asarray(self._recent, dtype=np.float32)
        cols = np.arange(len(values)) * self.width // self.window
        self._columns[:] = np.nan
        self._columns[cols] = values
        self._cursor = int(cols[-1])

    def draw(self, image: np.ndarray, *, threshold: float) -> None:
        """Darken the bottom band of ``image`` and draw the score bars, threshold and cursor."""
        height, width = image.shape[:2]
        h = strip_height(height)
        band = image[height - h :, :width]
        band[:] = (band.astype(np.uint16) * 3 // 10).astype(np.uint8)
        cols = self._columns[:width]
        known = ~np.isnan(cols)
        inner = h - 4
        if known.any():
            bar = np.zeros(width, dtype=np.int32)
            bar[known] = np.round(cols[known] * inner).astype(np.int32)
            rows = np.arange(h)[:, None]
            mask = (rows >= h - 2 - bar[None, :]) & (rows < h - 2) & known[None, :]
            colors = score_colors(np.nan_to_num(cols))
            band[mask] = np.broadcast_to(colors[None, :, :], (h, width, 3))[mask]
        y = h - 2 - round(float(threshold) * inner)
        for x in range(0, width, 12):
            cv2.line(band, (x, y), (min(width - 1, x + 6), y), (255, 255, 255), 1)
        cx = min(width - 1, self._cursor)
        cv2.line(band, (cx, 0), (cx, h - 1), (255, 255, 255), 1)
        scale = max(0.35, h / 80)
        cv2.putText(band, "P(fake)", (4, 12 + int(8 * scale)), _FONT, scale, (230, 230, 230), 1)


def _watermark_layout(image_shape: tuple[int, ...], text: str) -> tuple[float, int, int, int, int]:
    """(font scale, thickness, plate width, plate height, text height) for ``text``."""
    height, width = image_shape[:2]
    scale = max(0.5, min(height, width) / 600)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
    return scale, thick, min(width, tw + 16), min(height, th + base + 14), th


def draw_watermark(image: np.ndarray, text: str = WATERMARK) -> None:
    """Write ``text`` in the top-left corner on a dark plate: outputs of a random model say so."""
    scale, thick, plate_w, plate_h, text_h = _watermark_layout(image.shape, text)
    plate = image[:plate_h, :plate_w]
    plate[:] = (plate.astype(np.uint16) * 4 // 10).astype(np.uint8)
    cv2.putText(image, text, (8, text_h + 7), _FONT, scale, (60, 60, 255), thick, cv2.LINE_AA)


def watermark_size(image_shape: tuple[int, ...], text: str = WATERMARK) -> tuple[int, int]:
    """(width, height) of the corner the watermark covers on a frame of ``image_shape``."""
    _, _, plate_w, plate_h, _ = _watermark_layout(image_shape, text)
    return plate_w, plate_h
