"""The reference backend: the model's own torch modules on CPU or CUDA, with fast paths.

Precision applies to the CNN (``embed``), where nearly all the work is; the LSTM head always runs
in fp32 (it is cheap, and it keeps window scores close to the reference), also on its reuse path
(``project`` once per feature + ``score_projected`` per window: see ``DeepfakeNet.project``):

* ``fp32``: the reference.
* ``bf16``: ``torch.autocast`` with bfloat16. On CPUs with native bf16 (AVX512-BF16 or AMX) this is
  the fastest torch option; elsewhere torch emulates it slowly. Scores stay within 2e-2 of fp32
  (checked by ``benchmarks/backends.py`` and the tests).
* ``fp16``: CUDA only: ``torch.autocast`` with float16.

On CUDA the model runs ``channels_last``; crops travel as uint8 through a pinned host buffer
(4x less to copy than float) and are normalised on the GPU; with ``cuda_graphs`` each batch is
padded to the next power of two and replayed from a CUDA graph captured once per shape. The CUDA
paths are written against the torch documentation and have not been run here (no GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from dfstream.backends.base import InferenceBackend
from dfstream.errors import BackendUnavailable, UsageError
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.network import DeepfakeNet, normalize_crops, preprocess
from dfstream.model.spec import ModelSpec

TorchPrecision = Literal["fp32", "bf16", "fp16"]
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX) for oneDNN."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in checks if hasattr(torch.cpu, name))
    except RuntimeError:  # pragma: no cover - exotic builds
        return False


def resolve_torch_precision(precision: str, device: torch.device) -> TorchPrecision:
    """``auto`` -> fp16 on CUDA, bf16 on a CPU with native bf16, else fp32; checks the rest."""
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16 needs CUDA; on CPU use bf16 or fp32")
    if precision not in _AUTOCAST:
        raise UsageError(f"--precision {precision}: expected auto, fp32, bf16 or fp16")
    return precision  # type: ignore[return-value]


class DeviceCrops:
    """uint8 crops -> normalised (N, 3, S, S) float32 channels_last CUDA tensor.

    Crops travel as uint8 (4x less than float) through a reused pinned host buffer with a
    non-blocking copy, and are normalised on the GPU by ``normalize_crops``, as ``preprocess``
    does on the CPU.
    Callers read results back with a synchronising ``.cpu()``, so the buffer is free again by
    the next call.
    """

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self._pinned: torch.Tensor | None = None

    def upload(self, crops: np.ndarray, *, channels_last: bool = True) -> torch.Tensor:
        """Validate, copy and normalise one batch; ``channels_last=False`` gives plain NCHW
        memory (what a raw pointer consumer such as TensorRT expects)."""
        size = self.spec.input_size
        if crops.ndim != 4 or crops.dtype != np.uint8 or crops.shape[1:] != (size, size, 3):
            preprocess(crops, self.spec)  # raises the standard "expected ... but got" error
        n = crops.shape[0]
        if self._pinned is None or self._pinned.shape[0] < n:
            self._pinned = torch.empty((max(n, 16), size, size, 3), dtype=torch.uint8)
            self._pinned = self._pinned.pin_memory()
        host = self._pinned[:n]
        host.copy_(torch.from_numpy(np.ascontiguousarray(crops)))
        images = normalize_crops(host.to(self.device, non_blocking=True), self.spec)
        if not channels_last:
            return images.contiguous()
        return images.contiguous(memory_format=torch.channels_last)


class TorchBackend(InferenceBackend):
    """torch inference under ``torch.inference_mode``; see the module docstring for the paths."""

    name = "torch"

    def __init__(
        self,
        model: DeepfakeNet,
        device: torch.device,
        *,
        precision: TorchPrecision = "fp32",
        cuda_graphs: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(model.spec)
        self.torch_device = device
        self.device = str(device)
        self.precision = precision
        self.reason = reason
        self.on_cuda = device.type == "cuda"
        self.cuda_graphs = cuda_graphs and self.on_cuda
        self.model = model.to(device).eval()
        if self.on_cuda:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._crops = DeviceCrops(self.spec, device)
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.projects = model.projects

    @classmethod
    def create(
        cls,
        loaded: LoadedModel,
        *,
        device: str = "auto",
        precision: str = "fp32",
        cuda_graphs: bool = False,
        threads: int | None = None,
        reason: str = "",
    ) -> TorchBackend:
        """Validate device and precision and move the model there."""
        torch_device = resolve_torch_device(device)
        resolved = resolve_torch_precision(precision, torch_device)
        if threads is not None and torch_device.type == "cpu":
            # Process-wide: the inference thread is torch's only CPU user in a dfstream run.
            torch.set_num_threads(threads)
        return cls(
            loaded.model, torch_device, precision=resolved, cuda_graphs=cuda_graphs, reason=reason
        )

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        dtype = _AUTOCAST[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        # Graph capture needs the autocast cache off (the cached casts would be freed tensors).
        return torch.autocast(self.torch_device.type, dtype=dtype, cache_enabled=False)

    def _embed_graph(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        size = 1 << (n - 1).bit_length()  # next power of two: few shapes, few graphs
        if size not in self._graphs:
            static_in = torch.zeros((size, *images.shape[1:]), device=self.torch_device).contiguous(
                memory_format=torch.channels_last
            )
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), self._autocast():
                for _ in range(3):  # warm-up outside the graph (cuDNN autotuning, allocations)
                    self.model.embed(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), self._autocast():
                static_out = self.model.embed(static_in)
            self._graphs[size] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[size]
        static_in[:n].copy_(images)
        if n < size:
            static_in[n:].zero_()
        graph.replay()
        return static_out[:n]

    def embed(self, crops: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            if not self.on_cuda:
                images = preprocess(crops, self.spec)
                self.clock.lap("normalise")
                with self._autocast():
                    feats = self.model.embed(images)
                return feats.float().numpy()
            images = self._crops.upload(crops)
            if self.cuda_graphs:
                feats = self._embed_graph(images)
            else:
                with self._autocast():
                    feats = self.model.embed(images)
            return feats.float().cpu().numpy()

    def _head(self, part: Callable[[torch.Tensor], torch.Tensor], array: np.ndarray) -> np.ndarray:
        """Run one fp32 part of the head (``score``, ``project``, ``score_projected``)."""
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        with torch.inference_mode():
            out = part(tensor.to(self.torch_device))
        return out.float().cpu().numpy()

    def score(self, windows: np.ndarray) -> np.ndarray:
        return self._head(self.model.score, windows)

    def project(self, features: np.ndarray) -> np.ndarray:
        return self._head(self.model.project, features)

    def score_projected(self, windows: np.ndarray) -> np.ndarray:
        return self._head(self.model.score_projected, windows)

    def describe(self) -> str:
        n = torch.get_num_threads()
        extras = ", channels_last" if self.on_cuda else f", {n} thread{'s' if n != 1 else ''}"
        extras += ", CUDA graphs" if self.cuda_graphs else ""
        line = f"torch {self.precision} on {self.device}{extras}"
        return f"{line}; {self.reason}" if self.reason else line
