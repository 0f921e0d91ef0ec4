"""The CNN + LSTM deepfake classifier, split into ``embed`` (crops -> features) and ``score``
(windows of features -> P(fake)) so that every crop goes through the CNN exactly once.

The trunk comes from the backbone registry (``dfstream.model.backbones``). Parameter names
follow the public ResNeXt50+LSTM checkpoints (``model.*`` for the trunk, ``lstm.*``,
``linear1.*``) so those state dicts load strictly into the same class, whatever the backbone.

``preprocess`` (numpy crops) and ``normalize_crops`` (a uint8 tensor on any device) are the one
definition of a spec's input normalisation, used by training, evaluation and every backend.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dfstream.model.backbones import get_backbone
from dfstream.model.spec import ModelSpec


class DeepfakeNet(nn.Module):
    """Backbone trunk -> global average pool -> LSTM temporal head -> linear -> class logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.model = get_backbone(spec.backbone).build()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.lstm = nn.LSTM(
            spec.feature_dim,
            spec.hidden_size,
            1,
            bias=spec.lstm_bias,
            batch_first=spec.head_mode == "sequence",
        )
        self.dp = nn.Dropout(spec.dropout)
        self.linear1 = nn.Linear(spec.hidden_size, len(spec.labels))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, feature_dim) features."""
        return torch.flatten(self.avgpool(self.model(images)), 1)

    def logits(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, T, feature_dim) windows of features -> (N, classes) logits."""
        if self.spec.head_mode == "sequence":
            out, _ = self.lstm(windows)
            last = out[:, -1, :]
        else:
            # The public checkpoints' prediction code handed a (1, T, F) tensor to an LSTM with
            # batch_first=False: every frame is its own length-1 sequence from a zero state, and
            # only the last frame's output is classified. Reproduce exactly that.
            step = windows[:, -1:, :].transpose(0, 1)  # (1, N, F): one step, N sequences
            out, _ = self.lstm(step)
            last = out[0]
        return self.linear1(self.dp(last))

    def score(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, T, feature_dim) -> (N,) probability of FAKE."""
        return torch.softmax(self.logits(windows).float(), dim=1)[:, self.spec.fake_index]

    # -- the reuse path: each feature's LSTM input projection computed once --------------------
    #
    # With ``head_mode == "sequence"`` a window's LSTM runs T steps; each step's gates are
    # ``W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``. The first half depends only on the frame, not
    # on the window, and for a wide feature it is most of the work (2048 -> 4 x 512: four
    # fifths). ``project`` computes it once per feature; ``score_projected`` runs only the
    # recurrence. Together they equal ``score`` to float rounding (checked in the tests). The
    # public checkpoints' ``last_frame_step`` mode classifies one step of the window's last
    # feature, so each frame's output there is computed once per window already, which at stride
    # 1 is once.

    @property
    def projects(self) -> bool:
        """Whether the reuse path applies (a ``sequence`` head)."""
        return self.spec.head_mode == "sequence"

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) features -> (N, 4 * hidden) LSTM input projections, both biases
        included."""
        lstm = self.lstm
        out = features @ lstm.get_parameter("weight_ih_l0").t()
        if self.spec.lstm_bias:
            out = out + (lstm.get_parameter("bias_ih_l0") + lstm.get_parameter("bias_hh_l0"))
        return out

    def score_projected(self, projected: torch.Tensor) -> torch.Tensor:
        """(N, t, 4 * hidden) projected windows -> (N,) probability of FAKE, as ``score`` of the
        features they were projected from (gate order i, f, g, o, as ``nn.LSTM``)."""
        n, steps, _ = projected.shape
        hidden = self.spec.hidden_size
        h = projected.new_zeros((n, hidden))
        c = projected.new_zeros((n, hidden))
        w_hh = self.lstm.get_parameter("weight_hh_l0").t()
        for step in range(steps):
            gates = projected[:, step] + h @ w_hh
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        logits = self.linear1(self.dp(h))
        return torch.softmax(logits.float(), dim=1)[:, self.spec.fake_index]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, S, S) clips -> (N,) P(fake); used by training and the naive reference."""
        n, t = clips.shape[:2]
        feats = self.embed(clips.flatten(0, 1)).view(n, t, -1)
        return self.score(feats)


def build_model(spec: ModelSpec, *, seed: int | None = None) -> DeepfakeNet:
    """A model in eval mode; with ``seed`` its random initialisation is deterministic and
    independent of the global RNG (always drawn on the CPU, whatever device it runs on later)."""
    if seed is None:
        return DeepfakeNet(spec).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DeepfakeNet(spec).eval()


def normalize_crops(crops: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """(N, S, S, 3) uint8 tensor (any device) -> (N, 3, S, S) float32 ``(x / 255 - mean) / std``
    with the spec's mean/std: the normalisation every path applies."""
    images = crops.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=crops.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=crops.device).view(1, 3, 1, 1)
    return (images - mean) / std


def preprocess(crops: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """(N, S, S, 3) uint8 crops in the model's colour order -> (N, 3, S, S) float32 normalised
    by ``normalize_crops``. The single definition used by training and serving."""
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops: expected (N, S, S, 3) uint8 but got {crops.shape} {crops.dtype}")
    if crops.shape[1] != spec.input_size or crops.shape[2] != spec.input_size:
        raise ValueError(
            f"crops: expected {spec.input_size}x{spec.input_size} but got "
            f"{crops.shape[1]}x{crops.shape[2]}"
        )
    if not crops.flags.writeable:  # a read-only cache array: torch warns on wrapping one
        crops = crops.copy()
    return normalize_crops(torch.from_numpy(np.ascontiguousarray(crops)), spec).contiguous()
