"""The one face-crop rule, shared by serving (``pipeline``) and ``training`` so they never differ.

A crop is the square of side ``max(w, h) * (1 + 2 * margin)`` centred on the face box, cut from
the frame with black padding where it leaves the image, resized to ``size`` x ``size`` and given
in the colour order the model was trained on.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from dfstream.types import Box

ColorOrder = Literal["BGR", "RGB"]


def square_box(
    box: Box, *, margin: float, image_shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """The integer square ``(x1, y1, x2, y2)`` to crop around ``box``.

    Its side is ``max(w, h) * (1 + 2 * margin)`` (at least 1 px) and its centre the box centre;
    it may extend past the image, whose ``image_shape`` (H, W, ...) is only used to check that
    the square overlaps it.
    """
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box: expected x2 > x1 and y2 > y1 but got {box}")
    if margin < 0:
        raise ValueError(f"margin: expected >= 0 but got {margin}")
    side = max(1, round(max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)))
    left = round((x1 + x2) / 2.0 - side / 2.0)
    top = round((y1 + y2) / 2.0 - side / 2.0)
    height, width = image_shape[:2]
    if left >= width or top >= height or left + side <= 0 or top + side <= 0:
        raise ValueError(f"box: {box} with margin {margin} lies outside the {width}x{height} image")
    return left, top, left + side, top + side


def crop_face(
    image_bgr: np.ndarray,
    box: Box,
    *,
    margin: float,
    size: int,
    color_order: ColorOrder,
) -> np.ndarray:
    """The ``(size, size, 3)`` uint8, C-contiguous face crop of ``box`` in ``image_bgr``.

    Parts of the square outside the image are black. Shrinking uses ``INTER_AREA`` (no
    aliasing), enlarging ``INTER_LINEAR``. The result is RGB only when ``color_order == "RGB"``.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"image_bgr: expected (H, W, 3) uint8 but got {image_bgr.shape} {image_bgr.dtype}"
        )
    if size < 1:
        raise ValueError(f"size: expected >= 1 but got {size}")
    if color_order not in ("BGR", "RGB"):
        raise ValueError(f"color_order: expected 'BGR' or 'RGB' but got {color_order!r}")
    left, top, right, bottom = square_box(box, margin=margin, image_shape=image_bgr.shape)
    height, width = image_bgr.shape[:2]
    side = right - left
    inside_x1, inside_y1 = max(left, 0), max(top, 0)
    inside_x2, inside_y2 = min(right, width), min(bottom, height)
    region = image_bgr[inside_y1:inside_y2, inside_x1:inside_x2]
    if region.shape[:2] == (side, side):
        square = region
    else:
        square = np.zeros((side, side, 3), dtype=np.uint8)
        square[
            inside_y1 - top : inside_y2 - top,
            inside_x1 - left : inside_x2 - left,
        ] = region
    if side != size:
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        square = cv2.resize(square, (size, size), interpolation=interpolation)
    if color_order == "RGB":
        square = cv2.cvtColor(square, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(square)


def crop_landmarks(
    landmarks: np.ndarray,
    box: Box,
    *,
    margin: float,
    size: int,
    image_shape: tuple[int, ...],
) -> np.ndarray:
    """``landmarks`` ((N, 2) frame pixels) moved into the pixels of ``box``'s crop, float32:
    where they lie on the ``(size, size)`` crop that ``crop_face`` cuts with ``margin``."""
    left, top, right, _ = square_box(box, margin=margin, image_shape=image_shape)
    scale = size / (right - left)
    return ((landmarks - np.array([left, top], np.float32)) * scale).astype(np.float32)
