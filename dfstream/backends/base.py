"""The one interface every inference backend implements: ``embed`` and ``score``."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from dfstream.cputime import NO_CLOCK, StageClock
from dfstream.model.spec import ModelSpec


class InferenceBackend(ABC):
    """Runs a model's two halves on some device.

    ``embed`` turns (N, S, S, 3) uint8 crops in the model's colour order into (N, F) float32
    features; ``score`` turns (N, t, F) float32 windows of features into (N,) float32 P(fake),
    for any window length 1 <= t <= T (a track that ends before it holds T crops is scored once
    on the crops it has). Only the inference thread calls these.
    """

    name: str = "base"
    device: str = "cpu"
    clock: StageClock = NO_CLOCK
    """The inference thread's stage clock (``dfstream.cputime``), set by the pipeline: a
    backend that normalises crops on the CPU laps ``normalise`` when that is done; the caller
    laps ``embed`` and ``head``."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @abstractmethod
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Features of a batch of crops."""

    @abstractmethod
    def score(self, windows: np.ndarray) -> np.ndarray:
        """P(fake) of a batch of feature windows."""

    projects: bool = False
    """Whether ``project`` and ``score_projected`` are available: the pipeline then keeps each
    feature's LSTM input projection in the window cache instead of the feature, computed once
    per crop rather than once per window (``DeepfakeNet.project``)."""

    def project(self, features: np.ndarray) -> np.ndarray:
        """(N, F) features -> (N, 4H) LSTM input projections (only where ``projects``)."""
        raise NotImplementedError(f"the {self.name} backend does not project features")

    def score_projected(self, windows: np.ndarray) -> np.ndarray:
        """P(fake) of (N, t, 4H) windows of projections (only where ``projects``)."""
        raise NotImplementedError(f"the {self.name} backend does not project features")

    def pool_threads(self) -> int | None:
        """The backend's own CPU thread pool size, where it keeps one apart from torch's
        (ONNX Runtime's intra-op threads); None otherwise."""
        return None

    def describe(self) -> str:
        """One line for the dashboard header and the summary, e.g. ``torch fp32 on cpu``."""
        return f"{self.name} on {self.device}"

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Release device resources (optional)."""
