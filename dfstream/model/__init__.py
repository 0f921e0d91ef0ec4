"""The CNN + LSTM classifier, its metadata and its checkpoint formats."""

from dfstream.model.checkpoint import (
    LoadedModel,
    load_weights,
    save_checkpoint,
    untrained_model,
)
from dfstream.model.network import DeepfakeNet, build_model, preprocess
from dfstream.model.spec import ModelSpec, compat_spec, native_spec

__all__ = [
    "DeepfakeNet",
    "LoadedModel",
    "ModelSpec",
    "build_model",
    "compat_spec",
    "load_weights",
    "native_spec",
    "preprocess",
    "save_checkpoint",
    "untrained_model",
]
