"""Self-blended images (SBI): pseudo-fakes made from one real face crop.

After Shiohara & Yamasaki (CVPR 2022, "Detecting Deepfakes with Self-Blended Images"): a copy of
the crop (the *source*) gets colour and frequency jitter and a slight shift and scale, and is
blended back into the original (the *target*) inside a blurred face mask with a random blend
ratio. The result carries the traces every face swap leaves - a blending boundary, colour and
sharpness mismatch, slight misalignment - without any fake video, so a detector can be trained
from real footage only. The mask is the convex hull around YuNet's five landmarks extended to
forehead, cheeks and chin, or an ellipse when a crop has no landmarks (Haar detections).

One ``BlendParams`` draw is applied to every crop of a training window, so a pseudo-fake window
is manipulated consistently over time, as a fake video is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import cv2
import numpy as np
from rich.console import Console

from dfstream.errors import OutputError, UsageError


@dataclass(frozen=True)
class BlendParams:
    """One random draw of every self-blending choice."""

    gains: tuple[float, float, float]
    """Per-channel additive shifts, in grey levels."""
    contrast: float
    brightness: float
    saturation: float
    frequency: str
    """``blur``, ``sharpen`` or ``resample`` (down- then up-scaling), applied to the source."""
    strength: float
    shift: tuple[float, float]
    """Source shift as a fraction of the crop side."""
    scale: float
    hull_reach: float
    """How far the mask reaches up to the forehead and down to the chin."""
    grow: float
    """Mask dilation (> 0) or erosion (< 0), as a fraction of the crop side."""
    blur: float
    """Mask blur sigma, as a fraction of the crop side."""
    ratio: float
    """Blend ratio: the source's weight at the mask's centre."""


def draw_params(rng: np.random.Generator) -> BlendParams:
    """A random ``BlendParams`` (ranges close to the paper's)."""
    return BlendParams(
        gains=tuple(float(v) for v in rng.uniform(-20, 20, 3)),  # type: ignore[arg-type]
        contrast=float(rng.uniform(0.85, 1.15)),
        brightness=float(rng.uniform(-15, 15)),
        saturation=float(rng.uniform(0.8, 1.2)),
        frequency=str(rng.choice(["blur", "sharpen", "resample"])),
        strength=float(rng.uniform(0.0, 1.0)),
        shift=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))),
        scale=float(rng.uniform(0.95, 1.05)),
        hull_reach=float(rng.uniform(0.5, 0.9)),
        grow=float(rng.uniform(-0.03, 0.03)),
        blur=float(rng.uniform(0.02, 0.06)),
        ratio=float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])),
    )


def _hull_points(landmarks: np.ndarray, reach: float) -> np.ndarray:
    """Points around the face from five landmarks (right eye, left eye, nose, mouth corners)."""
    eye_r, eye_l, _nose, mouth_r, mouth_l = landmarks.astype(np.float64)
    eyes, mouth = (eye_r + eye_l) / 2, (mouth_r + mouth_l) / 2
    across = eye_l - eye_r
    width = max(np.linalg.norm(across), 1.0)
    right = across / width
    height = max(np.linalg.norm(eyes - mouth), 1.0)
    up = (eyes - mouth) / height
    points = [eyes + up * height * reach + right * width * side * 0.8 for side in (-1, 1)] + [
        eye_r - right * width * 0.45,
        eye_l + right * width * 0.45,
        mouth - up * height * 0.35 - right * width * 0.7,
        mouth - up * height * 0.35 + right * width * 0.7,
        mouth - up * height * reach,
    ]
    return np.array(points, np.float32)


def face_mask(landmarks: np.ndarray | None, size: int, params: BlendParams) -> np.ndarray:
    """A blurred (size, size) float32 mask in [0, 1]; an ellipse without usable landmarks."""
    hard: np.ndarray = np.zeros((size, size), np.uint8)
    usable = landmarks is not None and bool(np.isfinite(landmarks).all())
    if usable:
        hull = cv2.convexHull(_hull_points(landmarks, params.hull_reach))  # type: ignore[arg-type]
        cv2.fillConvexPoly(hard, np.round(hull).astype(np.int32), 255)
    if not usable or hard.mean() < 255 * 0.02:
        axes = (round(size * 0.30 * params.scale), round(size * 0.37 * params.scale))
        cv2.ellipse(hard, (size // 2, round(size * 0.52)), axes, 0, 0, 360, 255, -1)
    grow = round(abs(params.grow) * size)
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        hard = (cv2.dilate if params.grow > 0 else cv2.erode)(hard, kernel)
    sigma = max(0.5, params.blur * size)
    soft = cv2.GaussianBlur(hard.astype(np.float32) / 255.0, (0, 0), sigma)
    return np.clip(soft, 0.0, 1.0)


def jitter_source(crop: np.ndarray, params: BlendParams) -> np.ndarray:
    """The blend source: ``crop`` (float32) with the colour, frequency and geometry jitter."""
    size = crop.shape[0]
    image = crop.astype(np.float32)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * params.saturation
    image = image * params.contrast + params.brightness + np.array(params.gains, np.float32)
    image = np.clip(image, 0, 255)
    if params.frequency == "blur":
        image = cv2.GaussianBlur(image, (0, 0), 0.4 + 1.2 * params.strength)
    elif params.frequency == "sharpen":
        soft = cv2.GaussianBlur(image, (0, 0), 1.0)
        image = np.clip(image + (0.3 + 0.9 * params.strength) * (image - soft), 0, 255)
    else:
        small = max(8, round(size * (0.9 - 0.4 * params.strength)))
        image = cv2.resize(
            cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA),
            (size, size),
            interpolation=cv2.INTER_LINEAR,
        )
    centre = (size / 2.0, size / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, 0.0, params.scale)
    matrix[:, 2] += np.array(params.shift) * size
    return cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)


def self_blend(
    crop: np.ndarray, landmarks: np.ndarray | None, params: BlendParams
) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-fake uint8 crop, mask float32) made from one real ``crop`` (S, S, 3 uint8)."""
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
        raise ValueError(f"crop: expected (S, S, 3) but got {crop.shape}")
    mask = face_mask(landmarks, crop.shape[0], params)
    weight = (mask * params.ratio)[:, :, None]
    source = jitter_source(np.asarray(crop), params)
    blended = source * weight + np.asarray(crop, np.float32) * (1.0 - weight)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8), mask


def blend_window(crops: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Self-blend every crop of a window (T, S, S, 3) with one parameter draw."""
    params = draw_params(rng)
    return np.stack([self_blend(c, lm, params)[0] for c, lm in zip(crops, landmarks, strict=True)])


def cmd_preview(args: argparse.Namespace, console: Console) -> int:
    """``sbi-preview``: a PNG grid, one row per crop: real | self-blended | mask."""
    from training.cache import CropCache

    cache = CropCache.open(args.cache)
    videos = cache.select("all")
    real = [v for v in videos if v.entry.label == "REAL"] or videos
    pool = [(v, i) for v in real for i in range(len(v.frame_index))]
    if not pool:
        raise UsageError(f"{args.cache}: holds no crops to blend")
    rng = np.random.default_rng(args.seed)
    rows = []
    for pick in rng.choice(len(pool), size=min(args.count, len(pool)), replace=False):
        video, index = pool[int(pick)]
        crop = np.asarray(video.crops[index])
        fake, mask = self_blend(crop, video.landmarks[index], draw_params(rng))
        mask_image = np.repeat((mask * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        rows.append(np.concatenate([crop, fake, mask_image], axis=1))
    grid = np.concatenate(rows, axis=0)
    if cache.settings.color_order == "RGB":
        grid = cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), grid):
        raise OutputError(f"{args.out}: cannot write the PNG grid")
    console.print(f"training: {len(rows)} real / self-blended / mask rows -> {args.out}")
    return 0
