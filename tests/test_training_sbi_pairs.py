"""training.sbi_pairs (the SBI experiment's pairs): members differ by the blend and nothing else."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from training.sbi import draw_params, face_mask
from training.sbi_pairs import PairRecipe, blend_pair, paste_patch, training_pairs

SIDE = 112
LANDMARKS = np.array([[40, 44], [72, 44], [56, 60], [42, 76], [70, 76]], np.float64)


def _crop(seed: int) -> np.ndarray:
    """A textured crop: smooth colour ramps plus noise, so every jitter changes pixels."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) * (160 / SIDE) + 40
    image = np.stack([xs, ys, np.full_like(xs, 120)], axis=2)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("twin_draws", [0, 1])
def test_blend_changes_only_the_masked_region(twin_draws: int) -> None:
    """Where the mask is zero the fake equals the real (plain, and the swapped twin)."""
    real = _crop(0)
    for seed in range(20):
        params = replace(draw_params(np.random.default_rng(seed)), ratio=1.0, grow=0.0)
        mask = face_mask(LANDMARKS, SIDE, params)
        out_real, out_fake = blend_pair(real, LANDMARKS, params, True, _replay(twin_draws))
        outside = mask < 0.002  # below half a grey level of weight
        inside = mask > 0.99  # blurred masks barely reach 1
        assert outside.any() and inside.any()
        assert np.abs(out_real[outside].astype(int) - out_fake[outside].astype(int)).max() <= 1
        if twin_draws:
            # swapped: the plain face inside the jittered surroundings
            assert np.abs(out_fake[inside].astype(int) - real[inside].astype(int)).max() <= 4
        else:
            assert np.array_equal(out_real, real)
        assert not np.array_equal(out_real, out_fake)


def _replay(swap: int) -> np.random.Generator:
    """A generator whose next ``random()`` is below 0.5 exactly when ``swap``."""
    seed = 0
    while (np.random.default_rng(seed).random() < 0.5) != bool(swap):
        seed += 1
    return np.random.default_rng(seed)


def test_paste_puts_the_same_patch_into_both_members() -> None:
    """The pasted patch is identical in both members, so their difference there is zero."""
    real, fake = _crop(1), _crop(2)
    out = paste_patch([real, fake], _crop(3), np.random.default_rng(4))
    changed = np.any(out[0] != real, axis=2)
    assert changed.any()
    assert np.array_equal(out[0][changed], out[1][changed])


def test_training_pairs_shapes_and_that_members_differ() -> None:
    """Pairs come back as two uint8 stacks; every pair differs (each fake carries a blend)."""
    crops = np.stack([_crop(i) for i in range(4)])
    video = SimpleNamespace(crops=crops, landmarks=np.stack([LANDMARKS] * 4))
    recipe = replace(PairRecipe(), geometry=1.0, hue=1.0, paste=1.0)
    reals, fakes = training_pairs(video, 6, np.random.default_rng(0), recipe)  # type: ignore[arg-type]
    assert reals.shape == fakes.shape == (6, SIDE, SIDE, 3)
    assert reals.dtype == fakes.dtype == np.uint8
    assert all(not np.array_equal(r, f) for r, f in zip(reals, fakes, strict=True))
