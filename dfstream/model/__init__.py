"""The CNN + LSTM classifier, its backbones, its metadata and its checkpoint formats."""

from dfstream.model.backbones import Backbone, backbone_names, get_backbone, register_backbone
from dfstream.model.checkpoint import (
    LoadedModel,
    load_weights,
    save_checkpoint,
    untrained_model,
)
from dfstream.model.network import DeepfakeNet, build_model, preprocess
from dfstream.model.shipped import DEFAULT_MODEL_ENV, default_model_path, load_default_model
from dfstream.model.spec import ModelSpec, compat_spec, native_spec

__all__ = [
    "DEFAULT_MODEL_ENV",
    "Backbone",
    "DeepfakeNet",
    "LoadedModel",
    "ModelSpec",
    "backbone_names",
    "build_model",
    "compat_spec",
    "default_model_path",
    "get_backbone",
    "load_default_model",
    "load_weights",
    "native_spec",
    "preprocess",
    "register_backbone",
    "save_checkpoint",
    "untrained_model",
]
