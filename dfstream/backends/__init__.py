"""Inference backends behind one interface, chosen by ``--backend``.

Optional libraries are imported inside their backend module only, so ``import dfstream`` works
without them.
"""

from __future__ import annotations

from dfstream.backends.base import InferenceBackend
from dfstream.errors import UsageError
from dfstream.model.checkpoint import LoadedModel

BACKENDS = ("auto", "torch")


def create_backend(kind: str, loaded: LoadedModel, *, device: str = "auto") -> InferenceBackend:
    """Build the backend named by ``--backend`` for ``loaded`` on ``device``."""
    if kind in ("auto", "torch"):
        from dfstream.backends.torch_backend import TorchBackend

        return TorchBackend.create(loaded, device=device)
    raise UsageError(f"--backend {kind}: expected one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "InferenceBackend", "create_backend"]
