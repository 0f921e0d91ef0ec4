"""Inference backends behind one interface, chosen by ``--backend``.

``torch`` (reference; bf16/fp16 autocast fast paths), ``onnx`` (ONNX Runtime on the cached ONNX
export), ``tensorrt`` (engines built from that export; NVIDIA GPUs) and ``auto`` (the rule in
``dfstream.backends.select``). Optional libraries are imported inside their backend module only,
so ``import dfstream`` works without them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from dfstream.backends.base import InferenceBackend
from dfstream.errors import UsageError
from dfstream.model.checkpoint import LoadedModel
from dfstream.sources import SourceSpec

BACKENDS = ("auto", "torch", "onnx", "tensorrt")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _fallback_cache(kind: str) -> Path:
    # Library callers that pass no folder (tests, scripts) share one under the temp folder; the
    # CLI always passes ~/.cache/dfstream/<kind> (or its --onnx-cache / --engine-dir).
    return Path(tempfile.gettempdir()) / f"dfstream-{kind}-cache"


def create_backend(
    kind: str,
    loaded: LoadedModel,
    *,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    onnx_cache: Path | None = None,
    engine_dir: Path | None = None,
    sources: Sequence[SourceSpec] = (),
    batch: int = 16,
    cuda_graphs: bool = False,
    notice: Callable[[str], None] = lambda _msg: None,
) -> InferenceBackend:
    """Build the backend named by ``--backend`` for ``loaded`` on ``device``.

    ``sources`` and ``batch`` let ``auto`` estimate the batch size the pipeline will run.
    """
    if kind not in BACKENDS:
        raise UsageError(f"--backend {kind}: expected one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    reason = ""
    if kind == "auto":
        from dfstream.backends.select import auto_choice

        choice = auto_choice(device=device, sources=sources, batch=batch, precision=precision)
        kind, device, precision, reason = (
            choice.backend,
            choice.device,
            choice.precision,
            choice.reason,
        )
        threads = threads if threads is not None else choice.threads
    if kind == "torch":
        from dfstream.backends.torch_backend import TorchBackend

        return TorchBackend.create(
            loaded,
            device=device,
            precision=precision,
            cuda_graphs=cuda_graphs,
            threads=threads,
            reason=reason,
        )
    onnx_dir = onnx_cache or _fallback_cache("onnx")
    if kind == "onnx":
        from dfstream.backends.onnx_backend import OnnxBackend

        return OnnxBackend.create(
            loaded,
            cache_dir=onnx_dir,
            device=device,
            precision=precision,
            threads=threads,
            notice=notice,
            reason=reason,
        )
    from dfstream.backends.tensorrt_backend import TensorRTBackend
    from dfstream.errors import BackendUnavailable

    try:
        return TensorRTBackend.create(
            loaded,
            engine_dir=engine_dir or Path("engines"),
            onnx_cache=onnx_dir,
            device=device,
            precision=precision,
            max_batch=batch,
            rebuild_mismatch=bool(reason),  # auto: engines are derived files, rebuild them
            notice=notice,
            reason=reason,
        )
    except BackendUnavailable as exc:
        if not reason:
            raise
        # auto chose TensorRT but it failed (build error, bad driver): torch CUDA still works.
        notice(f"TensorRT failed, falling back to torch: {exc}")
        from dfstream.backends.torch_backend import TorchBackend

        return TorchBackend.create(
            loaded,
            device=device,
            precision="auto" if precision == "auto" else precision,
            cuda_graphs=cuda_graphs,
            reason=f"auto: TensorRT failed ({str(exc)[:80]})",
        )


__all__ = ["BACKENDS", "PRECISIONS", "InferenceBackend", "create_backend"]
