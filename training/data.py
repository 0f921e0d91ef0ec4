"""Training windows from a crop cache: T consecutive crops of one face track, labelled, with
self-blending (``--sbi``) and augmentations applied on the fly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, WeightedRandomSampler

from dfstream.model import ModelSpec, preprocess
from training.augment import AugmentSettings, augment_window
from training.cache import VideoCrops
from training.sbi import blend_window


def segments_of(videos: list[VideoCrops], window: int) -> list[tuple[int, np.ndarray]]:
    """(video number, crop indices) of every segment long enough for one window."""
    return [
        (number, segment)
        for number, video in enumerate(videos)
        for segment in video.segments()
        if len(segment) >= window
    ]


class WindowDataset(Dataset[tuple[torch.Tensor, int]]):
    """Random windows of ``spec.window`` crops as ((T, 3, S, S) tensor, class index) pairs.

    Without ``sbi`` an item is one segment with its video's label. With ``sbi`` only REAL
    videos are used and every segment appears twice: as it is (REAL) and self-blended (FAKE),
    so the classes are balanced by construction. The window's start within its segment, the
    blend and the augmentations are drawn afresh on every access.
    """

    def __init__(
        self,
        videos: list[VideoCrops],
        spec: ModelSpec,
        *,
        sbi: bool,
        augment: AugmentSettings | None,
    ) -> None:
        """``augment`` None: no augmentation (validation)."""
        self.videos = [v for v in videos if v.entry.label == "REAL"] if sbi else videos
        self.spec = spec
        self.sbi = sbi
        self.augment = augment
        self.items = segments_of(self.videos, spec.window)
        self._copies = 2 if sbi else 1

    def __len__(self) -> int:
        """Segments (times two with self-blending)."""
        return len(self.items) * self._copies

    def label_of(self, index: int) -> str:
        """REAL or FAKE for item ``index``."""
        if self.sbi:
            return "FAKE" if index % 2 else "REAL"
        return self.videos[self.items[index][0]].entry.label

    def class_counts(self) -> dict[str, int]:
        """Items per label."""
        return dict(Counter(self.label_of(i) for i in range(len(self))))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """One window and its class index in ``spec.labels``."""
        number, segment = self.items[index // self._copies]
        video = self.videos[number]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        start = int(rng.integers(0, len(segment) - self.spec.window + 1))
        chosen = segment[start : start + self.spec.window]
        crops = np.asarray(video.crops[chosen])
        label = self.label_of(index)
        if self.sbi and label == "FAKE":
            crops = blend_window(crops, video.landmarks[chosen], rng)
        if self.augment is not None:
            crops = augment_window(crops, rng, self.augment)
        clip = preprocess(np.ascontiguousarray(crops), self.spec)
        return clip, self.spec.labels.index(label)


def balanced_sampler(dataset: WindowDataset, num_samples: int | None = None) -> Sampler[int]:
    """Draw REAL and FAKE windows equally often, whatever the class sizes."""
    counts = dataset.class_counts()
    weights = [1.0 / counts[dataset.label_of(i)] for i in range(len(dataset))]
    return WeightedRandomSampler(weights, num_samples or len(dataset), replacement=True)
