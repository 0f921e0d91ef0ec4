"""The model dfstream ships: ``dfstream/model/default/default.pt``, used when a run names no
weights (neither ``--weights`` nor ``--untrained``).

It is an ordinary dfstream checkpoint (``save_checkpoint(..., half=True)``: float16 weights, so
that the wheel stays small), whose info names it (``info["name"]``) and may carry the FAKE
threshold calibrated for it (``info["threshold"]``, ``info["threshold_rule"]``). A user may
delete the file, and a checkout may not have it yet: then a run without weights fails with a
one-line ``WeightsError`` (exit 4) saying how to give a model.

The command line lets ``DFSTREAM_DEFAULT_MODEL`` name another file in its place (it reads the
variable at the edge and passes the path down as ``AnalysisConfig.default_weights``).
"""

from __future__ import annotations

from pathlib import Path

from dfstream.errors import WeightsError
from dfstream.model.checkpoint import WEIGHTS_HELP, LoadedModel, load_weights

DEFAULT_MODEL_ENV = "DFSTREAM_DEFAULT_MODEL"
"""The environment variable the command line reads to replace the shipped model's path."""

_SHIPPED = Path(__file__).resolve().parent / "default" / "default.pt"


def default_model_path() -> Path:
    """Where the shipped default model lives inside the installed package (it may be absent)."""
    return _SHIPPED


def load_default_model(path: Path | None = None, *, window: int | None = None) -> LoadedModel:
    """Load the default model (``path``, else the shipped file); a missing file is a one-line
    ``WeightsError`` naming the file and the flags that give a model instead."""
    target = path if path is not None else default_model_path()
    if not target.is_file():
        where = "the shipped default model" if path is None else f"the default model ({path})"
        raise WeightsError(
            f"no model given and {where} is not installed at {target}: {WEIGHTS_HELP}"
        )
    return load_weights(target, window=window)
