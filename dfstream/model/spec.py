"""ModelSpec: everything a runtime must know about a model besides its weights.

The spec travels inside every dfstream checkpoint (as JSON) so that crops, normalisation, window
length and label order are never guessed at serving time. Two presets exist: ``native`` (dfstream's
own ResNeXt50+LSTM head, trained by ``training/``) and ``compat`` (the public
``model_*_acc_*_frames_*.pt`` checkpoints, reproduced with their authors' quirks).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

FORMAT_VERSION = 1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Backbone = Literal["resnext50", "small"]
HeadMode = Literal["sequence", "last_frame_step"]
ColorOrder = Literal["BGR", "RGB"]

FEATURE_DIMS: dict[str, int] = {"resnext50": 2048, "small": 512}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and input conventions of a ResNeXt-style CNN + LSTM deepfake classifier.

    ``head_mode`` is ``sequence`` for dfstream's head (the LSTM runs over the T features of a
    window, its last hidden state is classified) and ``last_frame_step`` for the public
    checkpoints, whose prediction code fed each frame as its own length-1 sequence from a zero
    state and classified the last frame's output only.
    """

    backbone: Backbone = "resnext50"
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
        if self.backbone not in FEATURE_DIMS:
            raise ValueError(
                f"ModelSpec.backbone: expected one of {sorted(FEATURE_DIMS)} but got "
                f"{self.backbone!r}"
            )
        if self.head_mode not in ("sequence", "last_frame_step"):
            raise ValueError(f"ModelSpec.head_mode: unknown mode {self.head_mode!r}")
        if self.color_order not in ("BGR", "RGB"):
            raise ValueError(
                f"ModelSpec.color_order: expected 'BGR' or 'RGB' but got {self.color_order!r}"
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
        return FEATURE_DIMS[self.backbone]

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
    """dfstream's own architecture (the default for ``--untrained`` and for training)."""
    return ModelSpec().replace(**changes) if changes else ModelSpec()


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
