"""ONNX export and the ONNX Runtime backend against torch; torch precisions; CUDA paths (gpu)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dfstream.api import Analysis
from dfstream.backends import create_backend
from dfstream.backends.export import cached_export, export_onnx, parity, read_export
from dfstream.backends.onnx_backend import CPU_EP, CUDA_EP, OnnxBackend, choose_provider
from dfstream.backends.torch_backend import TorchBackend, resolve_torch_precision
from dfstream.config import AnalysisConfig
from dfstream.cputime import read_threads
from dfstream.errors import BackendUnavailable, UsageError
from dfstream.model import compat_spec, load_weights, save_checkpoint, untrained_model
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.spec import native_spec
from dfstream.sinks.base import Sink
from dfstream.types import Event, ScoreEvent

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sharp_model(seed: int = 3, gain: float = 40.0) -> LoadedModel:
    """An untrained model whose classifier is scaled up, so window scores spread over (0, 1)
    instead of sitting at 0.5: differences between backends become visible."""
    loaded = untrained_model(seed=seed)
    with torch.no_grad():
        loaded.model.linear1.weight.mul_(gain)
    return loaded


class _Collect(Sink):
    def __init__(self) -> None:
        self.scores: list[ScoreEvent] = []

    def handle(self, event: Event) -> None:
        if isinstance(event, ScoreEvent):
            self.scores.append(event)


def test_export_cli_untrained_parity_and_checker(tmp_path: Path) -> None:
    out = tmp_path / "export"
    proc = subprocess.run(
        [sys.executable, "-m", "dfstream", "export", "--untrained", "--out", str(out), "--json"],
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

    for name in ("cnn.onnx", "head.onnx"):
        onnx.checker.check_model(str(out / name), full_check=True)
    meta = read_export(out)
    assert meta.identity == "untrained-resnext50-seed0" and meta.precision == "fp32"
    cnn = onnx.load(str(out / "cnn.onnx"), load_external_data=False)
    batch_dim = cnn.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch
    head = onnx.load(str(out / "head.onnx"), load_external_data=False)
    dims = head.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_param and not dims[1].dim_value  # window length 1..T: short windows
    assert dims[2].dim_value == 2048


@pytest.mark.slow
def test_export_of_public_checkpoint_head_mode(tmp_path: Path) -> None:
    """The public checkpoints' last-frame-step head exports as it is and keeps parity."""
    loaded = untrained_model(compat_spec(window=8), seed=1)
    meta = export_onnx(loaded, tmp_path)
    assert meta.spec.head_mode == "last_frame_step"
    result = parity(loaded, tmp_path, meta, crops=4)
    assert result.worst <= 1e-4


@pytest.mark.slow
def test_fp16_export_for_strongly_typed_tensorrt(tmp_path: Path) -> None:
    """The fp16 export (TensorRT 11's input) computes in fp16 behind fp32 inputs/outputs."""
    import onnx

    loaded = _sharp_model()
    meta = export_onnx(loaded, tmp_path, precision="fp16")
    model = onnx.load(str(tmp_path / meta.cnn_file))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    result = parity(loaded, tmp_path, meta, crops=4)
    assert 0 < result.worst <= 5e-2


def test_onnx_head_scores_short_windows_like_torch(tmp_path: Path) -> None:
    """Windows of 1..T features (a track that ended early, a photo) run on the one exported
    head and score as torch scores them."""
    loaded = untrained_model(native_spec(backbone="tiny", window=6), seed=1)
    with torch.no_grad():
        loaded.model.linear1.weight.mul_(40.0)
    onnx_backend = OnnxBackend.create(loaded, cache_dir=tmp_path, device="cpu")
    torch_backend = TorchBackend.create(loaded, device="cpu", precision="fp32")
    rng = np.random.default_rng(0)
    size = loaded.spec.input_size
    crops = rng.integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    features = torch_backend.embed(crops)
    spread = []
    for length in (1, 3, 6):
        windows = np.stack([features[:length], features[-length:]])
        expected = torch_backend.score(windows)
        got = onnx_backend.score(windows)
        assert got.shape == (2,)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        spread.extend(expected.tolist())
    assert max(spread) - min(spread) > 1e-3  # not a comparison between constants


def _thread_names() -> list[str]:
    return [name for name, _cpu in read_threads().values()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_onnx_pool_threads_carry_the_inference_name(tmp_path: Path) -> None:
    """ONNX Runtime's pool threads inherit the name of the thread that opened the session; the
    backend opens it on a ``dfs-infer`` thread so that the CPU account counts them as embed."""
    loaded = untrained_model(native_spec(backbone="tiny", window=4), seed=1)
    before = _thread_names().count("dfs-infer")
    backend = OnnxBackend.create(loaded, cache_dir=tmp_path, device="cpu", threads=2)
    after = _thread_names().count("dfs-infer")
    assert after - before >= 1  # intra-op pools of 2 threads: one worker each
    size = loaded.spec.input_size
    crops = np.zeros((2, size, size, 3), dtype=np.uint8)
    assert backend.score(backend.embed(crops)[None]).shape == (1,)


def test_onnx_and_torch_window_scores_agree(tmp_path: Path, clip_path: Path) -> None:
    weights = tmp_path / "sharp.pt"
    save_checkpoint(weights, _sharp_model().model, info={"test": "sharp head"})
    runs: dict[str, list[ScoreEvent]] = {}
    cache = tmp_path / "onnx-cache"
    run_notices: list[str] = []
    for backend in ("torch", "onnx"):
        config = AnalysisConfig(
            sources=(str(clip_path),),
            weights=weights,
            detector="none",
            window=5,
            stride=2,
            batch=8,
            backend=backend,
            precision="fp32",
            device="cpu",
            onnx_cache=cache,
        )
        collect = _Collect()
        run = Analysis(config, sinks=[collect], on_notice=run_notices.append)
        assert run.backend.name == backend
        run.run()
        runs[backend] = collect.scores
    torch_scores, onnx_scores = runs["torch"], runs["onnx"]
    assert len(torch_scores) == len(onnx_scores) >= 10
    scores = np.array([e.score for e in torch_scores])
    assert scores.max() - scores.min() > 2e-3  # the comparison is not between constants
    for a, b in zip(torch_scores, onnx_scores, strict=True):
        assert (a.track_id, a.frame_index) == (b.track_id, b.frame_index)
        assert abs(a.score - b.score) <= 1e-3, (a.frame_index, a.score, b.score)
    # The export was cached: it happened once, and loading the same weights again reuses it.
    assert "exporting the model to ONNX" in "\n".join(run_notices)
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1
    notices: list[str] = []
    cached_export(load_weights(weights, window=5), cache, notice=notices.append)
    assert notices == []


def test_bf16_autocast_scores_close_to_fp32() -> None:
    loaded = _sharp_model(seed=5)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (24, 112, 112, 3), dtype=np.uint8)
    fp32 = TorchBackend(loaded.model, torch.device("cpu"), precision="fp32")
    bf16 = TorchBackend(loaded.model, torch.device("cpu"), precision="bf16")
    f32, f16 = fp32.embed(crops), bf16.embed(crops)
    assert f16.dtype == np.float32 and f16.shape == f32.shape
    rel = np.abs(f16 - f32).max() / np.abs(f32).max()
    assert 0 < rel < 0.05  # bf16 really ran (not identical) and stays close
    windows = np.stack([f32[i : i + 20] for i in range(4)])
    windows16 = np.stack([f16[i : i + 20] for i in range(4)])
    assert np.abs(fp32.score(windows) - bf16.score(windows16)).max() <= 2e-2
    assert "bf16" in bf16.describe()


@pytest.mark.parametrize(
    ("precision", "device", "native", "expected"),
    [
        ("auto", "cpu", True, "bf16"),
        ("auto", "cpu", False, "fp32"),
        ("fp32", "cpu", True, "fp32"),
        ("bf16", "cpu", False, "bf16"),
        ("fp16", "cpu", True, UsageError),
        ("int8", "cpu", True, UsageError),
    ],
)
def test_torch_precision_resolution(
    monkeypatch: pytest.MonkeyPatch, precision: str, device: str, native: bool, expected: object
) -> None:
    monkeypatch.setattr("dfstream.backends.torch_backend.cpu_has_native_bf16", lambda: native)
    if isinstance(expected, type):
        with pytest.raises(expected):
            resolve_torch_precision(precision, torch.device(device))
    else:
        assert resolve_torch_precision(precision, torch.device(device)) == expected


@pytest.mark.parametrize(
    ("device", "providers", "expected"),
    [
        ("cpu", [CUDA_EP, CPU_EP], (CPU_EP, 0)),
        ("auto", [CPU_EP], (CPU_EP, 0)),
        ("auto", [CUDA_EP, CPU_EP], (CUDA_EP, 0)),
        ("cuda:1", [CUDA_EP, CPU_EP], (CUDA_EP, 1)),
        ("cuda", [CPU_EP], BackendUnavailable),
        ("cuda:x", [CUDA_EP], UsageError),
        ("tpu", [CPU_EP], UsageError),
    ],
)
def test_onnx_provider_choice(device: str, providers: list[str], expected: object) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            choose_provider(device, providers)
    else:
        assert choose_provider(device, providers) == expected


def test_onnx_backend_refuses_bf16_before_exporting(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="bf16"):
        OnnxBackend.create(untrained_model(), cache_dir=tmp_path, device="cpu", precision="bf16")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_unknown_backend_and_precision_are_usage_errors() -> None:
    loaded = untrained_model()
    with pytest.raises(UsageError, match="expected one of auto, torch, onnx, tensorrt"):
        create_backend("openvino", loaded)
    with pytest.raises(UsageError, match="--precision"):
        create_backend("torch", loaded, precision="int4")


def _cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA torch (run on a GPU machine with -m gpu)")
    return torch.device("cuda")


@pytest.mark.gpu
def test_cuda_fp16_and_graphs_match_fp32() -> None:
    """Unverified here (no GPU): fp16 autocast within 1e-2 of fp32, CUDA graphs == eager."""
    device = _cuda()
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (13, 112, 112, 3), dtype=np.uint8)
    ref = TorchBackend(_sharp_model().model, device, precision="fp32")
    fast = TorchBackend(_sharp_model().model, device, precision="fp16")
    graphs = TorchBackend(_sharp_model().model, device, precision="fp16", cuda_graphs=True)
    f32, f16, fg = ref.embed(crops), fast.embed(crops), graphs.embed(crops)
    np.testing.assert_allclose(fg, f16, atol=1e-2)
    windows = np.stack([f32[i : i + 5] for i in range(8)])
    windows16 = np.stack([f16[i : i + 5] for i in range(8)])
    spec_window = ref.spec.window
    windows = np.repeat(windows, spec_window // 5, axis=1)
    windows16 = np.repeat(windows16, spec_window // 5, axis=1)
    assert np.abs(ref.score(windows) - fast.score(windows16)).max() <= 1e-2
