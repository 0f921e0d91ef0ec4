"""ModelSpec: everything a runtime must know about a model besides its weights.

The spec travels inside every dfstream checkpoint (as JSON) so that crops, normalisation, window
length and label order are never guessed at serving time. Two presets exist: ``native`` (dfstream's
own CNN+LSTM head on any registered backbone, trained by ``training/``, with the backbone's input
conventions) and ``compat`` (the public ``model_*_acc_*_frames_*.pt`` checkpoints, reproduced with
their authors' quirks). Backbone names, feature widths and input conventions come from
``dfstream.model.backbones``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from dfstream.model.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ColorOrder,
    backbone_names,
    get_backbone,
    is_backbone,
)

FORMAT_VERSION = 1
"""Version of the checkpoint layout; the spec fields are unchanged since version 1."""

HeadMode = Literal["sequence", "last_frame_step"]

DEFAULT_BACKBONE = "resnext50"


class UnknownBackbone(ValueError):
    """A spec names a backbone that is not registered in this build."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"ModelSpec.backbone: expected one of {list(backbone_names())} but got {name!r}"
        )
        self.name = name


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and input conventions of a CNN + LSTM deepfake classifier.

    ``backbone`` is a name from the backbone registry. Crops are ``input_size`` pixels square in
    ``color_order`` and normalised as ``(x / 255 - mean) / std`` (``preprocess``). The field
    defaults are the ResNeXt50 backbone's conventions; ``native_spec(backbone=...)`` takes
    another backbone's from the registry.

    ``head_mode`` is ``sequence`` for dfstream's head (the LSTM runs over the T features of a
    window, its last hidden state is classified) and ``last_frame_step`` for the public
    checkpoints, whose prediction code fed each frame as its own length-1 sequence from a zero
    state and classified the last frame's output only.
    """

    backbone: str = DEFAULT_BACKBONE
    hidden_size: int = 512
    lstm_bias: bool = True
    head_mode: HeadMode = "sequence"
    dropout: float = 0.4
    input_size: int = 112
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: ColorOrder = "RGB"
    window: int = 20
    labels: tuple[str, ...] = ("REAL", "FAKE")
    crop_margin: float = 0.2
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not is_backbone(self.backbone):
            raise UnknownBackbone(self.backbone)
        if self.head_mode not in ("sequence", "last_frame_step"):
            raise ValueError(f"ModelSpec.head_mode: unknown mode {self.head_mode!r}")
        if self.color_order not in ("BGR", "RGB"):
            raise ValueError(
                f"ModelSpec.color_order: expected 'BGR' or 'RGB' but got {self.color_order!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(
                f"ModelSpec: expected 3 means and 3 positive stds but got {self.mean} and "
                f"{self.std}"
            )
        if "FAKE" not in self.labels:
            raise ValueError(f"ModelSpec.labels: expected a 'FAKE' label but got {self.labels}")
        if self.window < 1 or self.input_size < 16:
            raise ValueError(
                f"ModelSpec: expected window >= 1 and input_size >= 16 but got "
                f"{self.window} and {self.input_size}"
            )

    @property
    def feature_dim(self) -> int:
        """Length of one crop's feature vector (the LSTM input size)."""
        return get_backbone(self.backbone).feature_dim

    @property
    def fake_index(self) -> int:
        """Index of the FAKE class in the classifier's output."""
        return self.labels.index("FAKE")

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """Serialise for a checkpoint."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse a spec written by ``to_json``; unknown keys are an error, not ignored."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("model metadata is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model metadata has unknown fields {unknown}")
        for key in ("mean", "std", "labels"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def native_spec(**changes: Any) -> ModelSpec:
    """dfstream's own head on ``backbone`` (default resnext50: the default for ``--untrained``
    and for training), with that backbone's input size, normalisation and colour order unless
    ``changes`` set them."""
    name = changes.get("backbone", DEFAULT_BACKBONE)
    if not isinstance(name, str) or not is_backbone(name):
        raise UnknownBackbone(str(name))
    return ModelSpec(backbone=name, **get_backbone(name).input_conventions()).replace(**changes)


def compat_spec(window: int = 20) -> ModelSpec:
    """The public ResNeXt50+LSTM checkpoints: 112 px BGR crops, ImageNet normalisation,
    LSTM(2048, 2048) without bias, index 0 = FAKE, per-frame LSTM step."""
    return ModelSpec(
        backbone="resnext50",
        hidden_size=2048,
        lstm_bias=False,
        head_mode="last_frame_step",
        dropout=0.4,
        input_size=112,
        color_order="BGR",
        window=window,
        labels=("FAKE", "REAL"),
        crop_margin=0.1,
    )


_COMPAT_NAME = re.compile(r"model_(?P<acc>\d+)_acc_(?P<frames>\d+)_frames", re.IGNORECASE)


def compat_window_from_name(filename: str) -> int | None:
    """The sequence length encoded in a public checkpoint's file name
    (``model_93_acc_100_frames_final_data.pt`` -> 100), or None."""
    match = _COMPAT_NAME.search(filename)
    return int(match.group("frames")) if match else None
