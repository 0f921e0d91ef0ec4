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


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random windows of ``spec.window`` crops as ((K, T, 3, S, S) clips, (K,) class indices).

    Without ``sbi`` an item is one window (K = 1) of a segment with its video's label. With
    ``sbi`` only REAL videos are used and an item is a pair (K = 2): a window as it is (REAL)
    and the same window self-blended (FAKE), both given the same augmentations. Pairs balance
    the classes by construction and, as in the SBI paper, leave the blend as the only
    difference between the classes, so the model cannot learn the person instead of the
    artefact. The window's start, the blend and the augmentations are drawn on every access.
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

    def __len__(self) -> int:
        """Segments long enough for a window."""
        return len(self.items)

    def label_of(self, index: int) -> str:
        """REAL or FAKE for item ``index`` (``PAIR`` with self-blending)."""
        return "PAIR" if self.sbi else self.videos[self.items[index][0]].entry.label

    def class_counts(self) -> dict[str, int]:
        """Windows per label."""
        if self.sbi:
            return {"REAL": len(self), "FAKE": len(self)}
        return dict(Counter(self.label_of(i) for i in range(len(self))))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One window (or a real/self-blended pair) and class indices in ``spec.labels``."""
        number, segment = self.items[index]
        video = self.videos[number]
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        start = int(rng.integers(0, len(segment) - self.spec.window + 1))
        chosen = segment[start : start + self.spec.window]
        windows = [np.asarray(video.crops[chosen])]
        labels = ["REAL" if self.sbi else video.entry.label]
        if self.sbi:
            windows.append(blend_window(windows[0], video.landmarks[chosen], rng))
            labels.append("FAKE")
        if self.augment is not None:
            seed = int(rng.integers(0, 2**62))
            windows = [
                augment_window(w, np.random.default_rng(seed), self.augment) for w in windows
            ]
        clips = torch.stack([preprocess(np.ascontiguousarray(w), self.spec) for w in windows])
        targets = torch.tensor([self.spec.labels.index(label) for label in labels])
        return clips, targets


def balanced_sampler(dataset: WindowDataset, num_samples: int | None = None) -> Sampler[int]:
    """Draw REAL and FAKE windows equally often, whatever the class sizes (pairs uniformly)."""
    counts = Counter(dataset.label_of(i) for i in range(len(dataset)))
    weights = [1.0 / counts[dataset.label_of(i)] for i in range(len(dataset))]
    return WeightedRandomSampler(weights, num_samples or len(dataset), replacement=True)
