"""Training pairs of real crops and their self-blends, told apart only by the blend.

The recipe behind the recorded SBI figure (``python -m training.research.sbi_signal``, result in
``benchmarks/results/sbi_signal.json``).

A model trained on one person learns that person as "real" unless the pairs leave it nothing but
the blending itself to go on. Every augmentation here is therefore either applied to both members
of a pair with one draw, or swaps which member carries the jittered appearance:

* **geometry** (before blending, landmarks moved along): rotation, scale, shift and a horizontal
  squeeze, a crude stand-in for heads turned away from the camera;
* **photometric** (before blending, so the blend is made on it): gamma, lower contrast and a
  darker or brighter exposure, as under dim or flat lighting;
* **narrow masks**: the landmarks used for the mask only are squeezed about a random centre, so
  masks come in the narrow, off-centre shapes a profile view gives;
* **twin**: the jittered copy, whole, is a REAL crop too, and the blend may go either way (the
  jittered face in the plain surroundings, or the plain face in jittered surroundings), so a
  blurred, sharpened or colour-shifted face is no evidence by itself - only the seam is;
* **hue**: one hue rotation and channel permutation of both members, so an unusual colour (a
  magenta hair band, a blue face) is no evidence either;
* **paste**: one hue-shifted patch of another crop pasted into both members at the same place,
  so a foreign object with hard edges is not a blend;
* then ``training.augment.augment_window`` with one seed for both (flip, colour cast, blur,
  resampling, JPEG, H.264).

The self-blend itself is ``training.sbi``'s (``draw_params``, ``face_mask``, the same jitter);
the test set of the experiment uses the unmodified ``training.sbi.blend_window``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.augment import AugmentSettings, augment_window
from training.cache import VideoCrops
from training.sbi import BlendParams, draw_params, face_mask, jitter_source


@dataclass(frozen=True)
class PairRecipe:
    """The probability of each augmentation of a training pair (see the module docstring)."""

    geometry: float = 0.5
    squeeze: float = 0.5
    """The narrowest horizontal squeeze of the geometry augmentation, as a fraction of width."""
    photometric: float = 0.5
    narrow_mask: float = 0.3
    twin: float = 0.5
    hue: float = 0.3
    paste: float = 0.3


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _geometry(side: int, squeeze: float, rng: np.random.Generator) -> np.ndarray:
    """A random 2x3 affine matrix: rotation, scale, horizontal squeeze, shift."""
    turn, zoom = rng.uniform(-15, 15), rng.uniform(0.85, 1.2)
    matrix = np.asarray(cv2.getRotationMatrix2D((side / 2, side / 2), turn, zoom), np.float64)
    narrow = rng.uniform(squeeze, 1.0)
    matrix[0, :] *= narrow
    matrix[0, 2] += (1 - narrow) * side / 2
    matrix[:, 2] += rng.uniform(-0.12, 0.12, 2) * side
    return matrix


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` under a random gamma, a lower contrast and another exposure."""
    f = (image.astype(np.float32) / 255.0) ** rng.uniform(0.7, 1.6)
    mean = f.mean()
    f = (f - mean) * rng.uniform(0.5, 1.0) + mean * rng.uniform(0.6, 1.1)
    return _to_uint8(f * 255.0)


def _narrow(landmarks: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """Landmarks squeezed horizontally about a random centre (for the mask only)."""
    out = landmarks.astype(np.float64, copy=True)
    centre = out[:, 0].mean() + rng.uniform(-0.15, 0.15) * side
    out[:, 0] = centre + (out[:, 0] - out[:, 0].mean()) * rng.uniform(0.4, 1.0)
    out[:, 1] += rng.uniform(-0.05, 0.05) * side
    return out


def blend_pair(
    real: np.ndarray,
    landmarks: np.ndarray,
    params: BlendParams,
    twin: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) for one crop: a jittered copy of ``real`` blended into it through the face
    mask of ``landmarks``. With ``twin``, on one draw of ``rng`` in two the jittered copy is the
    REAL member and the plain face is blended into it instead."""
    source = jitter_source(real, params)
    weight = (face_mask(landmarks, real.shape[0], params) * params.ratio)[:, :, None]
    if twin and rng.random() < 0.5:
        return _to_uint8(source), _to_uint8(real * weight + source * (1.0 - weight))
    return real, _to_uint8(source * weight + real.astype(np.float32) * (1.0 - weight))


def _recolour(image: np.ndarray, hue_shift: int, saturation: float = 1.0) -> np.ndarray:
    """``image`` (RGB) with its hue rotated by ``hue_shift`` (OpenCV units, 0-179) and its
    saturation scaled."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int32) + hue_shift) % 180
    if saturation != 1.0:
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * saturation, 0, 255)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _hue(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Both images with one channel permutation and one hue rotation."""
    order, shift = rng.permutation(3), int(rng.integers(0, 180))
    return [_recolour(image[:, :, order], shift) for image in images]


def paste_patch(
    images: list[np.ndarray], donor: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Copies of ``images`` with the same hue-shifted rectangle of ``donor`` (another crop of the
    same side) pasted at the same place in each."""
    side = donor.shape[0]
    height, width = (int(v) for v in rng.integers(side // 8, side // 2, 2))
    sy, sx = int(rng.integers(0, side - height)), int(rng.integers(0, side - width))
    dy, dx = int(rng.integers(0, side - height)), int(rng.integers(0, side - width))
    patch = donor[sy : sy + height, sx : sx + width]
    patch = _recolour(patch, int(rng.integers(0, 180)), rng.uniform(0.5, 2.5))
    out = [image.copy() for image in images]
    for image in out:
        image[dy : dy + height, dx : dx + width] = patch
    return out


def training_pairs(
    video: VideoCrops, count: int, rng: np.random.Generator, recipe: PairRecipe | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (real, self-blended) crops of ``video``, (count, S, S, 3) uint8 each."""
    r = recipe or PairRecipe()
    settings = AugmentSettings()
    reals, fakes = [], []
    for _ in range(count):
        index = int(rng.integers(len(video.crops)))
        real = np.asarray(video.crops[index])
        landmarks = np.asarray(video.landmarks[index], np.float64)
        if rng.random() < r.geometry:
            matrix = _geometry(real.shape[0], r.squeeze, rng)
            real = cv2.warpAffine(real, matrix, real.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            landmarks = landmarks @ matrix[:, :2].T + matrix[:, 2]
        if rng.random() < r.photometric:
            real = _photometric(real, rng)
        if rng.random() < r.narrow_mask:
            landmarks = _narrow(landmarks, real.shape[0], rng)
        pair = list(blend_pair(real, landmarks, draw_params(rng), rng.random() < r.twin, rng))
        seed = int(rng.integers(2**62))
        if rng.random() < r.hue:
            pair = _hue(pair, rng)
        if rng.random() < r.paste:
            donor = np.asarray(video.crops[int(rng.integers(len(video.crops)))])
            pair = paste_patch(pair, donor, rng)
        reals.append(augment_window(pair[0][None], np.random.default_rng(seed), settings)[0])
        fakes.append(augment_window(pair[1][None], np.random.default_rng(seed), settings)[0])
    return np.stack(reals), np.stack(fakes)
