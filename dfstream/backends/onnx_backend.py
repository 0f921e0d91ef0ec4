"""The ONNX Runtime backend: the exported CNN and head run by ``onnxruntime``.

The model is exported once per weights identity into a cache folder (``cached_export``) and both
halves are opened as ``InferenceSession``s. On CPU the ``CPUExecutionProvider`` runs with
``intra_op_num_threads`` from ``--threads`` (0 = ONNX Runtime's default, one per physical core);
the ``CUDAExecutionProvider`` is used when the ``onnxruntime-gpu`` package provides it and the
device is ``cuda`` (or ``auto`` with CUDA present). Precision is fp32, or fp16 on CUDA (an fp16
export); bf16 is not offered (ONNX Runtime's CPU kernels compute bf16 slowly or not at all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.backends.export import (
    CNN_INPUT,
    CNN_OUTPUT,
    HEAD_INPUT,
    HEAD_OUTPUT,
    cached_export,
)
from dfstream.cputime import INFERENCE_THREAD, name_thread
from dfstream.errors import BackendUnavailable, UsageError
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.network import preprocess
from dfstream.model.spec import ModelSpec

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
ORT_INSTALL = 'pip install "dfstream[onnx]"'
ORT_GPU_INSTALL = "pip install onnxruntime-gpu (in place of onnxruntime)"


def import_onnxruntime() -> Any:
    """``onnxruntime``, or BackendUnavailable naming the package to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(
            f"--backend onnx: ONNX Runtime is not installed ({exc}); {ORT_INSTALL}"
        ) from exc
    return onnxruntime


def ort_providers() -> list[str]:
    """Execution providers this ONNX Runtime build offers (empty when it is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def choose_provider(device: str, available: list[str]) -> tuple[str, int]:
    """(provider, device id) for ``--device``: CUDA when asked for (or ``auto`` and offered)."""
    if device == "cpu":
        return CPU_EP, 0
    if device == "auto":
        return (CUDA_EP, 0) if CUDA_EP in available else (CPU_EP, 0)
    if device.startswith("cuda"):
        if CUDA_EP not in available:
            raise BackendUnavailable(
                f"--backend onnx --device {device}: this ONNX Runtime has no CUDA provider "
                f"(providers: {', '.join(available) or 'none'}); {ORT_GPU_INSTALL}, or use "
                "--device cpu"
            )
        _, _, index = device.partition(":")
        if index and not index.isdigit():
            raise UsageError(f"--device {device}: expected cuda or cuda:N")
        return CUDA_EP, int(index or 0)
    raise UsageError(f"--device {device}: expected auto, cpu, cuda or cuda:N")


class OnnxBackend(InferenceBackend):
    """ONNX Runtime sessions for the CNN and the head; crops are preprocessed as for torch."""

    name = "onnx"

    def __init__(
        self,
        spec: ModelSpec,
        cnn: Any,
        head: Any,
        *,
        provider: str,
        precision: str,
        threads: int,
        reason: str = "",
    ) -> None:
        super().__init__(spec)
        self.cnn = cnn
        self.head = head
        self.provider = provider
        self.precision = precision
        self.threads = threads
        self.device = "cuda" if provider == CUDA_EP else "cpu"
        self.reason = reason

    @classmethod
    def create(
        cls,
        loaded: LoadedModel,
        *,
        cache_dir: Path,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        notice: Callable[[str], None] = lambda _msg: None,
        reason: str = "",
    ) -> OnnxBackend:
        """Export (once, cached) and open both sessions on the chosen provider."""
        ort = import_onnxruntime()
        provider, device_id = choose_provider(device, list(ort.get_available_providers()))
        if precision == "auto":
            precision = "fp32"
        if precision not in ("fp32", "fp16"):
            raise UsageError(
                f"--backend onnx --precision {precision}: expected fp32 (CPU or CUDA) or fp16 "
                "(CUDA only); for bf16 use --backend torch"
            )
        if precision == "fp16" and provider != CUDA_EP:
            raise UsageError(
                "--backend onnx --precision fp16 needs the CUDA provider; on CPU use fp32"
            )
        folder, meta = cached_export(loaded, cache_dir, precision=precision, notice=notice)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ONNX Runtime's pool threads spin between runs by default; on a small CPU shared with
        # decoders and the detector that spinning takes the cores they need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers: list[Any] = (
            [(CUDA_EP, {"device_id": device_id}), CPU_EP] if provider == CUDA_EP else [CPU_EP]
        )
        sessions = _on_inference_thread(
            lambda: [
                _open_session(ort, folder / name, options, providers, provider)
                for name in (meta.cnn_file, meta.head_file)
            ]
        )
        return cls(
            loaded.spec,
            sessions[0],
            sessions[1],
            provider=provider,
            precision=precision,
            threads=int(threads or 0),
            reason=reason,
        )

    def embed(self, crops: np.ndarray) -> np.ndarray:
        images = preprocess(crops, self.spec).numpy()
        self.clock.lap("normalise")
        (features,) = self.cnn.run([CNN_OUTPUT], {CNN_INPUT: images})
        return np.asarray(features, dtype=np.float32)

    def score(self, windows: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(windows, dtype=np.float32)
        (probs,) = self.head.run([HEAD_OUTPUT], {HEAD_INPUT: batch})
        return np.asarray(probs, dtype=np.float32)

    def pool_threads(self) -> int | None:
        """ONNX Runtime's intra-op threads as configured (0: its default, one per core)."""
        return self.threads

    def describe(self) -> str:
        plural = "s" if self.threads != 1 else ""
        threads = f", {self.threads} thread{plural}" if self.threads else ""
        line = f"onnx {self.precision} on {self.device} ({self.provider}{threads})"
        return f"{line}; {self.reason}" if self.reason else line


def _on_inference_thread(make: Callable[[], list[Any]]) -> list[Any]:
    """``make()``, run on a short-lived thread named like the inference worker.

    ONNX Runtime starts a session's pool threads when the session is created and Linux gives
    them the creating thread's name, so created here they carry ``dfs-infer`` and the CPU
    account (``dfstream.cputime``) counts them as ``embed`` rather than as the caller's."""
    made: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        name_thread(INFERENCE_THREAD)
        try:
            made.extend(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=work, name=INFERENCE_THREAD, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return made


def _open_session(ort: Any, path: Path, options: Any, providers: list[Any], wanted: str) -> Any:
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendUnavailable(f"{path}: ONNX Runtime cannot open it ({first})") from exc
    if wanted not in session.get_providers():
        raise BackendUnavailable(
            f"{path}: ONNX Runtime fell back from {wanted} to {session.get_providers()} (CUDA or "
            f"cuDNN libraries missing?); {ORT_GPU_INSTALL} matching your CUDA, or use --device cpu"
        )
    return session
