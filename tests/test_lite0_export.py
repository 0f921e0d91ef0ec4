"""EfficientNet-Lite0 through `dfstream export`, ONNX Runtime and the TensorRT engine plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dfstream.backends.engines import EnginePaths, build_engines, wanted_key
from dfstream.backends.onnx_backend import OnnxBackend
from dfstream.backends.torch_backend import TorchBackend
from dfstream.errors import WeightsError
from dfstream.model import build_model, load_weights, save_checkpoint
from dfstream.model.backbones import get_backbone, lite0_imagenet_file
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.spec import native_spec

REPO_ROOT = Path(__file__).resolve().parents[1]


def _lite0_checkpoint(path: Path, *, input_size: int = 112, window: int = 4) -> Path:
    """A Lite0 checkpoint with ImageNet trunk weights (realistic activations, including the
    zero-variance BatchNorm channels) and a scaled-up head so scores spread over (0, 1)."""
    spec = native_spec(backbone="efficientnet_lite0", input_size=input_size, window=window)
    model = build_model(spec, seed=7)
    try:
        lite0_imagenet_file()
    except WeightsError as exc:
        pytest.skip(str(exc))
    loader = get_backbone("efficientnet_lite0").imagenet
    assert loader is not None
    loader(model.model, None)
    with torch.no_grad():
        model.linear1.weight.mul_(40.0)
    save_checkpoint(path, model.eval())
    return path


def _face_like_crops(n: int, size: int) -> np.ndarray:
    """Smooth random images (blurred noise plus gradients): closer to photos than white noise."""
    rng = np.random.default_rng(11)
    coarse = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8).astype(np.float32)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(coarse).permute(0, 3, 1, 2), size=(size, size), mode="bicubic"
    )
    return np.clip(up.permute(0, 2, 3, 1).numpy(), 0, 255).astype(np.uint8)


def test_export_cli_parity_for_lite0(tmp_path: Path) -> None:
    weights = _lite0_checkpoint(tmp_path / "lite.pt")
    out = tmp_path / "export"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfstream",
            "export",
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["checker"] == "passed"
    assert result["features_max_abs"] <= 1e-4 and result["scores_max_abs"] <= 1e-4
    import onnx

    cnn = onnx.load(str(out / "cnn.onnx"), load_external_data=False)
    dims = cnn.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 112, 112]
    # TF "same" padding of the stride-2 convolutions at 112 px (the exporter folds the Pad into
    # the Conv's pads: top, left, bottom, right): the odd pixel goes bottom/right.
    strided = [
        {a.name: list(a.ints) for a in node.attribute}["pads"]
        for node in cnn.graph.node
        if node.op_type == "Conv" and [2, 2] in [list(a.ints) for a in node.attribute]
    ]
    assert strided == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 2, 2], [0, 0, 1, 1], [2, 2, 2, 2]]
    head = onnx.load(str(out / "head.onnx"), load_external_data=False)
    dims = head.graph.input[0].type.tensor_type.shape.dim
    # window length is dynamic (1..T: short windows and photos), the feature width fixed
    assert dims[1].dim_param and not dims[1].dim_value and dims[2].dim_value == 1280


def test_onnx_backend_matches_torch_for_lite0(tmp_path: Path) -> None:
    loaded = load_weights(_lite0_checkpoint(tmp_path / "lite.pt"))
    crops = _face_like_crops(6, 112)
    torch_backend = TorchBackend.create(loaded, device="cpu", precision="fp32")
    onnx_backend = OnnxBackend.create(loaded, cache_dir=tmp_path / "cache", device="cpu")
    ref, got = torch_backend.embed(crops), onnx_backend.embed(crops)
    assert ref.shape == (6, 1280)
    assert float(np.abs(ref - got).max()) <= 1e-4
    windows = np.stack([ref[[0, 1, 2, 3]], ref[[2, 3, 4, 5]], ref[[5, 4, 1, 0]]])
    ref_scores, got_scores = torch_backend.score(windows), onnx_backend.score(windows)
    assert float(ref_scores.max() - ref_scores.min()) > 1e-3  # not a comparison of constants
    assert float(np.abs(ref_scores - got_scores).max()) <= 1e-4


def test_tensorrt_plan_takes_lite0_shapes_from_the_spec(tmp_path: Path) -> None:
    from test_engines import fake_trt  # the stand-in tensorrt module of the engine tests

    spec = native_spec(backbone="efficientnet_lite0", window=8)  # 224 px, 1280 features
    loaded = LoadedModel(build_model(spec, seed=0), spec, "untrained", "untrained (seed 0)", {})
    key = wanted_key(
        loaded, tensorrt_version="10.9.0", compute_capability="9.0", precision="fp16",
        max_batch=32, opt_batch=16,
    )  # fmt: skip
    assert (key.input_size, key.feature_dim, key.window) == (224, 1280, 8)
    trt, rec = fake_trt("10.9.0", fp16_flag=True)
    paths = EnginePaths.of(tmp_path / "engines", key)

    def onnx_folder(_precision: str) -> tuple[Path, Any]:
        import types

        return tmp_path, types.SimpleNamespace(cnn_file="cnn.onnx", head_file="head.onnx")

    build_engines(trt, paths, key, onnx_folder)
    shapes = [args for name, args in rec.calls if name == "profile.set_shape"]
    assert shapes == [
        ("images", (1, 3, 224, 224), (16, 3, 224, 224), (32, 3, 224, 224)),
        ("windows", (1, 8, 1280), (16, 8, 1280), (32, 8, 1280)),
    ]
