"""The reference backend: the model's own torch modules on CPU or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from dfstream.backends.base import InferenceBackend
from dfstream.errors import BackendUnavailable
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.network import DeepfakeNet, preprocess


def resolve_torch_device(device: str) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else CPU; an impossible request is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable(
                f"--device {device}: torch sees no CUDA GPU here (torch {torch.__version__}); "
                "use --device cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise BackendUnavailable(f"--device {device}: expected auto, cpu, cuda or cuda:N")


class TorchBackend(InferenceBackend):
    """fp32 torch inference; ``embed`` and ``score`` run under ``torch.inference_mode``."""

    name = "torch"

    def __init__(self, model: DeepfakeNet, device: torch.device) -> None:
        super().__init__(model.spec)
        self.torch_device = device
        self.device = str(device)
        self.model = model.to(device).eval()

    @classmethod
    def create(cls, loaded: LoadedModel, *, device: str = "auto") -> TorchBackend:
        """Validate the device and move the model there."""
        return cls(loaded.model, resolve_torch_device(device))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        images = preprocess(crops, self.spec).to(self.torch_device, non_blocking=True)
        with torch.inference_mode():
            feats = self.model.embed(images)
        return feats.float().cpu().numpy()

    def score(self, windows: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.inference_mode():
            probs = self.model.score(tensor.to(self.torch_device))
        return probs.float().cpu().numpy()

    def describe(self) -> str:
        return f"torch fp32 on {self.device}"
