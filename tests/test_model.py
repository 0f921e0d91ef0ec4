"""Model, checkpoints and the public-checkpoint compatibility path."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models, transforms

from dfstream.backends.torch_backend import TorchBackend
from dfstream.errors import WeightsError
from dfstream.model import (
    ModelSpec,
    build_model,
    compat_spec,
    load_weights,
    preprocess,
    save_checkpoint,
    untrained_model,
)
from dfstream.model.spec import compat_window_from_name, native_spec

KEYS_JSON = Path(__file__).resolve().parents[2] / "shared/fixtures/resnext_lstm_reference_keys.json"


def _reference_shapes() -> dict[str, list[int]]:
    if not KEYS_JSON.exists():
        pytest.skip(f"../shared is absent: {KEYS_JSON} not found")
    return json.loads(KEYS_JSON.read_text())


def _random_state_dict(shapes: dict[str, list[int]], seed: int = 1) -> dict[str, torch.Tensor]:
    """Plausible random weights with exactly the reference keys and shapes."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif len(shape) == 4:  # conv: He initialisation keeps activations finite
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.startswith("model.") and key.endswith("weight"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=gen)
    return state


class AuthorsModel(nn.Module):
    """The public checkpoints' model as their authors defined it, written from the format notes:
    ResNeXt50 trunk, adaptive average pool, nn.LSTM(2048, 2048, 1, False) with batch_first
    False, dropout, linear1; prediction classifies the LSTM output of the last frame."""

    def __init__(self) -> None:
        super().__init__()
        net = models.resnext50_32x4d(weights=None)
        self.model = nn.Sequential(*list(net.children())[:-2])
        self.lstm = nn.LSTM(2048, 2048, 1, False)
        self.dp = nn.Dropout(0.4)
        self.linear1 = nn.Linear(2048, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, seq_length, c, h, w = x.shape
        fmap = self.model(x.view(batch_size * seq_length, c, h, w))
        feats = self.avgpool(fmap).view(batch_size, seq_length, 2048)
        x_lstm, _ = self.lstm(feats, None)
        return self.dp(self.linear1(x_lstm[:, -1, :]))


def test_compat_checkpoint_loads_strictly_and_matches_authors_forward(tmp_path: Path) -> None:
    shapes = _reference_shapes()
    state = _random_state_dict(shapes)
    path = tmp_path / "model_90_acc_6_frames_test.pt"
    torch.save(state, path)

    loaded = load_weights(path)
    assert loaded.kind == "compat"
    assert loaded.spec.window == 6
    assert loaded.spec.color_order == "BGR" and loaded.spec.input_size == 112
    assert loaded.spec.labels[0] == "FAKE"
    assert sorted(loaded.model.state_dict()) == sorted(shapes)

    rng = np.random.default_rng(0)
    crops_bgr = rng.integers(0, 256, size=(6, 112, 112, 3), dtype=np.uint8)
    backend = TorchBackend.create(loaded, device="cpu")
    window = backend.embed(crops_bgr)[None]
    ours = float(backend.score(window)[0])

    # The authors' inference: cv2 frames (BGR) -> ToPILImage -> ToTensor -> Normalize, then
    # model(x) on a (1, T, 3, 112, 112) tensor, softmax, index 0 = FAKE.
    authors = AuthorsModel().eval()
    authors.load_state_dict(state, strict=True)
    tf = transforms.Compose(
        [
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    clip = torch.stack([tf(c) for c in crops_bgr])[None]
    with torch.no_grad():
        theirs = float(torch.softmax(authors(clip), dim=1)[0, 0])
    assert 0.0 <= ours <= 1.0
    assert ours == pytest.approx(theirs, abs=1e-5)

    # The quirk: only the last frame matters in their prediction code.
    other = window.copy()
    other[0, :-1] = backend.embed(crops_bgr[::-1].copy())[:-1]
    assert float(backend.score(other)[0]) == pytest.approx(ours, abs=1e-6)


def test_wrong_shape_names_first_mismatching_key(tmp_path: Path) -> None:
    shapes = _reference_shapes()
    state = _random_state_dict(shapes)
    state["linear1.weight"] = torch.zeros(3, 2048)
    path = tmp_path / "model_1_acc_20_frames.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"'linear1\.weight' has shape \[3, 2048\]"):
        load_weights(path)


def test_missing_key_is_named(tmp_path: Path) -> None:
    shapes = _reference_shapes()
    state = _random_state_dict(shapes)
    del state["lstm.weight_hh_l0"]
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing key 'lstm\.weight_hh_l0'"):
        load_weights(path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        # Unpickling this calls open(marker, "w"): a file appears if the code ran.
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"state_dict": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
        # Prove the file really would run code when loaded the unsafe way.
        torch.load(path, weights_only=False)["state_dict"].close()
    else:
        with path.open("wb") as fh:
            pickle.dump(payload, fh)
        with path.open("rb") as fh:
            pickle.load(fh)["state_dict"].close()
    assert marker.exists()
    marker.unlink()

    with pytest.raises(WeightsError, match="refused to load"):
        load_weights(path)
    assert not marker.exists()


def test_non_checkpoint_files_are_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="not a readable torch checkpoint"):
        load_weights(text)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "absent.pt")


def test_dfstream_checkpoint_round_trip(tmp_path: Path) -> None:
    spec = ModelSpec(backbone="small", hidden_size=64, window=4, crop_margin=0.3)
    model = build_model(spec, seed=3)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, info={"epoch": 2})
    loaded = load_weights(path)
    assert loaded.kind == "dfstream"
    assert loaded.spec == spec
    assert loaded.info == {"epoch": 2}
    crops = np.random.default_rng(1).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    with torch.inference_mode():
        a = model.embed(preprocess(crops, spec))
        b = loaded.model.embed(preprocess(crops, spec))
        assert torch.equal(a, b)
        win = a[:4][None]
        assert torch.equal(model.score(win), loaded.model.score(win))


def test_untrained_is_deterministic_per_seed() -> None:
    spec = ModelSpec(backbone="small", hidden_size=32)
    a = untrained_model(spec, seed=5).model.state_dict()
    b = untrained_model(spec, seed=5).model.state_dict()
    c = untrained_model(spec, seed=6).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_spec_json_round_trip_and_validation() -> None:
    spec = compat_spec(window=30)
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown fields"):
        ModelSpec.from_json('{"bogus": 1}')
    with pytest.raises(ValueError, match="color_order"):
        ModelSpec(color_order="XYZ")  # type: ignore[arg-type]
    assert compat_window_from_name("model_93_acc_100_frames_final_data.pt") == 100
    assert compat_window_from_name("weights.pt") is None


def test_preprocess_rejects_wrong_crops() -> None:
    spec = ModelSpec()
    with pytest.raises(ValueError, match="expected 112x112"):
        preprocess(np.zeros((1, 64, 64, 3), np.uint8), spec)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((1, 112, 112, 3), np.float32), spec)


@pytest.mark.parametrize("bias", [True, False])
def test_projected_head_scores_like_the_plain_head_at_every_window_length(bias: bool) -> None:
    # Weights and features scaled up so that the gates saturate differently per window: a
    # wrong gate order, a missing bias or a step off by one moves the scores far beyond 1e-5.
    spec = native_spec(backbone="tiny", window=6, hidden_size=16, lstm_bias=bias)
    model = build_model(spec, seed=3)
    with torch.no_grad():
        for name, param in model.lstm.named_parameters():
            param.mul_(4.0 if "weight" in name else 2.0)
        model.linear1.weight.mul_(6.0)
    backend = TorchBackend(model, torch.device("cpu"))
    assert backend.projects
    rng = np.random.default_rng(0)
    features = rng.standard_normal((30, spec.feature_dim)).astype(np.float32)
    projected = backend.project(features)
    assert projected.shape == (30, 4 * spec.hidden_size)
    for length in range(1, spec.window + 1):
        index = rng.integers(0, 30, (12, length))
        plain = backend.score(features[index])
        reused = backend.score_projected(projected[index])
        assert plain.std() > 0.05  # the scores differ between windows: the check has teeth
        np.testing.assert_allclose(reused, plain, atol=1e-5)


def test_the_public_heads_last_frame_step_does_not_project() -> None:
    spec = compat_spec(window=4)
    assert spec.head_mode == "last_frame_step"
    assert not build_model(spec, seed=0).projects
