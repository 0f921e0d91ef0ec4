"""The TensorRT backend: the model's two engines run on torch's CUDA stream.

Written against the TensorRT 10.x / 11.x Python API documentation (``Runtime``,
``deserialize_cuda_engine``, ``create_execution_context``, ``num_io_tensors``/``get_tensor_name``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and **not yet run**: TensorRT
cannot be installed where dfstream is built and tested. The import guard, the "why not" reason,
engine keys and mismatch handling are unit-tested; the CUDA path is not.

torch owns the CUDA context: device buffers are torch CUDA tensors whose ``data_ptr()`` is handed
to ``set_tensor_address``, and ``execute_async_v3`` runs on ``torch.cuda.current_stream()``, so no
second CUDA context (pycuda, cuda-python) is created. ``tensorrt`` is imported only here and in
``engines`` callers; ``import dfstream`` never needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.backends.engines import (
    EngineKey,
    EnginePaths,
    build_engines,
    check_engines,
    refuse_message,
    wanted_key,
)
from dfstream.errors import BackendUnavailable, UsageError
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.spec import ModelSpec

TRT_INSTALL = 'pip install "dfstream[tensorrt]"'
TRT_NEEDS = f"needs an NVIDIA GPU with CUDA and TensorRT: {TRT_INSTALL}"


def import_tensorrt() -> Any:
    """``tensorrt``, or BackendUnavailable in one line naming the package and the GPU need."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or a stub wheel failing to load its libraries
        raise BackendUnavailable(
            f"TensorRT backend unavailable: TensorRT is not installed ({type(exc).__name__}); "
            f"{TRT_NEEDS}"
        ) from exc
    return tensorrt


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT can run here, else the one-line reason and fix (also for doctor)."""
    import torch

    try:
        trt = import_tensorrt()
    except BackendUnavailable as exc:
        return str(exc).removeprefix("TensorRT backend unavailable: ")
    if not torch.cuda.is_available():
        return (
            f"TensorRT {getattr(trt, '__version__', '?')} is installed but torch sees no CUDA "
            f"GPU; {TRT_NEEDS}"
        )
    return None


class _Engine:
    """One deserialized engine, its execution context and its single input/output names."""

    def __init__(self, trt: Any, engine: Any, where: Path) -> None:
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailable(f"{where}: TensorRT could not create an execution context")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendUnavailable(
                f"{where}: expected one input and one output but got {inputs} -> {outputs}"
            )
        self.input, self.output = inputs[0], outputs[0]
        for name in names:
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise BackendUnavailable(f"{where}: tensor {name} is not float32")

    def run(self, tensor: Any) -> Any:
        """Run on a contiguous float32 CUDA tensor; returns a new float32 CUDA tensor."""
        import torch

        self.context.set_input_shape(self.input, tuple(tensor.shape))
        shape = tuple(self.context.get_tensor_shape(self.output))
        out = torch.empty(shape, dtype=torch.float32, device=tensor.device)
        self.context.set_tensor_address(self.input, tensor.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        stream = torch.cuda.current_stream(tensor.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendUnavailable("TensorRT execute_async_v3 failed (see TensorRT's log)")
        return out


class TensorRTBackend(InferenceBackend):
    """Two TensorRT engines (CNN with a batch profile, head with fixed T) on one CUDA device.

    A short window (fewer than T features: a track that ended early, a photo) does not fit the
    head engine's fixed T: it is scored by the torch model's head (``short_head``, on the CPU),
    which is rare (once per such track) and cheap. Not yet run, like the rest of this backend.
    """

    name = "tensorrt"

    def __init__(
        self,
        spec: ModelSpec,
        cnn: _Engine,
        head: _Engine,
        key: EngineKey,
        device: Any,
        reason: str = "",
        short_head: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``short_head`` scores windows shorter than T (see the class docstring); without
        one such a window is a one-line ``BackendUnavailable``."""
        super().__init__(spec)
        from dfstream.backends.torch_backend import DeviceCrops

        self.cnn, self.head, self.key = cnn, head, key
        self.short_head = short_head
        self.torch_device = device
        self.device = str(device)
        self.reason = reason
        self._crops = DeviceCrops(spec, device)

    @classmethod
    def create(
        cls,
        loaded: LoadedModel,
        *,
        engine_dir: Path,
        onnx_cache: Path,
        device: str = "auto",
        precision: str = "auto",
        max_batch: int = 16,
        build_missing: bool = True,
        rebuild_mismatch: bool = False,
        notice: Callable[[str], None] = lambda _msg: None,
        reason: str = "",
    ) -> TensorRTBackend:
        """Load the engines for ``loaded`` (building them when missing), or say why not."""
        import torch

        trt = import_tensorrt()
        from dfstream.backends.export import cached_export
        from dfstream.backends.torch_backend import resolve_torch_device

        if device == "cpu":
            raise UsageError(
                f"--backend tensorrt runs on a CUDA GPU, not --device cpu; {TRT_NEEDS}"
            )
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"--backend tensorrt: torch sees no CUDA GPU; {TRT_NEEDS}")
        torch_device = resolve_torch_device("cuda" if device == "auto" else device)
        precision = "fp16" if precision == "auto" else precision
        if precision not in ("fp16", "fp32"):
            raise UsageError(f"--backend tensorrt --precision {precision}: expected fp16 or fp32")
        major, minor = torch.cuda.get_device_capability(torch_device)
        key = wanted_key(
            loaded,
            tensorrt_version=str(trt.__version__),
            compute_capability=f"{major}.{minor}",
            precision=precision,
            max_batch=max_batch,
            opt_batch=max_batch,
        )
        paths = EnginePaths.of(engine_dir, key)
        problems = check_engines(paths, key)
        missing = problems == ["not built yet"]
        if (missing and build_missing) or (problems and rebuild_mismatch):
            build_engines(
                trt,
                paths,
                key,
                lambda prec: cached_export(loaded, onnx_cache, precision=prec, notice=notice),
                notice=notice,
            )
        elif problems:
            hint = (
                f"dfstream engine build ... --precision {precision} --max-batch {max_batch} --force"
            )
            raise BackendUnavailable(refuse_message(paths, problems, hint))
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engines = []
        with torch.cuda.device(torch_device):
            for path in (paths.cnn, paths.head):
                engine = runtime.deserialize_cuda_engine(path.read_bytes())
                if engine is None:
                    raise BackendUnavailable(
                        f"{path}: TensorRT {trt.__version__} cannot deserialize this engine; "
                        "rebuild it with `dfstream engine build ... --force`"
                    )
                engines.append(_Engine(trt, engine, path))
        return cls(
            loaded.spec,
            engines[0],
            engines[1],
            key,
            torch_device,
            reason,
            short_head=cpu_head(loaded),
        )

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, crops.shape[0], self.key.max_batch):
                chunk = crops[start : start + self.key.max_batch]
                images = self._crops.upload(chunk, channels_last=False)  # NCHW memory
                parts.append(self.cnn.run(images).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.spec.feature_dim), np.float32)

    def score(self, windows: np.ndarray) -> np.ndarray:
        import torch

        if windows.ndim == 3 and windows.shape[1] != self.key.window:
            if self.short_head is None:
                raise BackendUnavailable(
                    f"--backend tensorrt: the head engine takes windows of {self.key.window} "
                    f"features, not {windows.shape[1]}; use --backend torch or onnx"
                )
            return self.short_head(windows)
        parts = []
        with torch.inference_mode():
            for start in range(0, windows.shape[0], self.key.max_batch):
                chunk = np.ascontiguousarray(
                    windows[start : start + self.key.max_batch], np.float32
                )
                tensor = torch.from_numpy(chunk).to(self.torch_device)
                parts.append(self.head.run(tensor).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def describe(self) -> str:
        line = (
            f"tensorrt {self.key.precision} on {self.device} (TensorRT "
            f"{self.key.tensorrt_version}, sm {self.key.compute_capability}, batch 1-"
            f"{self.key.max_batch})"
        )
        return f"{line}; {self.reason}" if self.reason else line


def cpu_head(loaded: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    """Scores (N, t, F) windows with ``loaded``'s torch head where its weights are (the CPU
    after loading): the fallback for windows the fixed-T head engine cannot take."""
    import torch

    model = loaded.model.eval()

    def score(windows: np.ndarray) -> np.ndarray:
        weight = next(model.parameters())  # wherever the model is now, in its dtype
        tensor = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.inference_mode():
            probs = model.score(tensor.to(weight.device, weight.dtype))
        return probs.float().cpu().numpy()

    return score
