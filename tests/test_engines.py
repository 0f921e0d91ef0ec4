"""TensorRT around the library (keys, files, flags, errors), the auto rule, and ``doctor``.

TensorRT cannot be installed here: a stand-in ``tensorrt`` module records what the build code
asks of it. Only the calls' names and arguments are checked, against the TensorRT 10/11 Python
API documentation; the real engines are untested (see tests marked ``trt``).
"""

from __future__ import annotations

import importlib.machinery
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from dfstream.backends.engines import (
    EngineKey,
    EnginePaths,
    build_engines,
    check_engines,
    network_flags,
    refuse_message,
    wanted_key,
)
from dfstream.backends.select import Facts, choose, expected_batch
from dfstream.backends.tensorrt_backend import TRT_INSTALL, tensorrt_unavailable_reason
from dfstream.model import untrained_model
from dfstream.sources import parse_source

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    """Collects (call, args) pairs from every fake TensorRT object."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def obj(self, name: str, **returns: Any) -> Any:
        recorder = self

        class _Fake:
            def __getattr__(self, attr: str) -> Any:
                def call(*args: Any) -> Any:
                    recorder.calls.append((f"{name}.{attr}", args))
                    return returns.get(attr)

                return call

        return _Fake()


def fake_trt(version: str, *, fp16_flag: bool) -> tuple[types.ModuleType, _Recorder]:
    """A stand-in ``tensorrt`` module: 10.x has BuilderFlag.FP16, 11.x does not."""
    rec = _Recorder()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # find_spec callers
    flags = {"TF32": 7} | ({"FP16": 0} if fp16_flag else {})
    trt.BuilderFlag = types.SimpleNamespace(**flags)  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)  # type: ignore[attr-defined]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    profile = rec.obj("profile")
    config = rec.obj("config")
    network = rec.obj("network")
    parser = rec.obj("parser", parse_from_file=True)
    builder = rec.obj(
        "builder",
        create_network=network,
        create_builder_config=config,
        create_optimization_profile=profile,
        build_serialized_network=b"ENGINE",
    )
    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Builder = lambda logger: builder  # type: ignore[attr-defined]
    trt.OnnxParser = lambda net, logger: parser  # type: ignore[attr-defined]
    return trt, rec


def _key(**changes: Any) -> EngineKey:
    base = wanted_key(
        untrained_model(),
        tensorrt_version="10.9.0",
        compute_capability="8.9",
        precision="fp16",
        max_batch=32,
        opt_batch=16,
    )
    return EngineKey(**{**base.__dict__, **changes})


def test_engine_key_roundtrip_and_mismatches() -> None:
    key = _key()
    assert EngineKey.from_json(key.to_json()) == key
    assert key.weights == "untrained-resnext50-seed0" and key.window == 20
    assert (key.min_batch, key.opt_batch, key.max_batch) == (1, 16, 32)
    assert key.mismatches(_key(max_batch=8)) == []  # a bigger engine serves a smaller batch
    problems = _key().mismatches(_key(tensorrt_version="11.1.0", max_batch=64))
    assert problems == ["tensorrt_version 10.9.0 (needed 11.1.0)", "max_batch 32 (needed >= 64)"]
    assert _key().mismatches(_key(compute_capability="9.0")) == [
        "compute_capability 8.9 (needed 9.0)"
    ]
    with pytest.raises(ValueError, match="not a dfstream engine key"):
        EngineKey.from_json(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="precision"):
        wanted_key(
            untrained_model(),
            tensorrt_version="10",
            compute_capability="8.0",
            precision="int8",
            max_batch=4,
        )


def test_engine_files_are_checked_and_refused_with_the_fix(tmp_path: Path) -> None:
    key = _key()
    paths = EnginePaths.of(tmp_path, key)
    assert paths == EnginePaths.of(tmp_path, _key(tensorrt_version="11.0"))  # same files
    assert paths != EnginePaths.of(tmp_path, _key(precision="fp32"))
    assert check_engines(paths, key) == ["not built yet"]
    paths.cnn.write_bytes(b"x")
    paths.head.write_bytes(b"x")
    paths.key.write_text(key.to_json())
    assert check_engines(paths, key) == []
    problems = check_engines(paths, _key(tensorrt_version="11.0"))
    message = refuse_message(paths, problems, "dfstream engine build ... --force")
    assert "tensorrt_version 10.9.0 (needed 11.0)" in message and "--force" in message
    assert "\n" not in message
    paths.key.write_text("{broken")
    assert check_engines(paths, key)[0].startswith("unreadable key")


@pytest.mark.parametrize(
    ("fp16_flag", "precision", "expected"),
    [
        (True, "fp16", (0, False, True)),  # 10.x: fp32 ONNX + BuilderFlag.FP16
        (True, "fp32", (2, False, False)),  # strongly typed fp32
        (False, "fp16", (2, True, False)),  # 11.x: strongly typed network from the fp16 ONNX
        (False, "fp32", (2, False, False)),
    ],
)
def test_network_flags_follow_the_tensorrt_version(
    fp16_flag: bool, precision: str, expected: tuple[int, bool, bool]
) -> None:
    trt, _ = fake_trt("10.9.0" if fp16_flag else "11.1.0", fp16_flag=fp16_flag)
    assert network_flags(trt, precision) == expected


@pytest.mark.parametrize(("version", "fp16_flag"), [("10.9.0", True), ("11.1.0", False)])
def test_build_engines_calls_and_files(tmp_path: Path, version: str, fp16_flag: bool) -> None:
    trt, rec = fake_trt(version, fp16_flag=fp16_flag)
    key = _key(tensorrt_version=version)
    paths = EnginePaths.of(tmp_path / "engines", key)
    asked: list[str] = []

    def onnx_folder(precision: str) -> tuple[Path, Any]:
        asked.append(precision)
        return tmp_path, types.SimpleNamespace(cnn_file="cnn.onnx", head_file="head.onnx")

    build_engines(trt, paths, key, onnx_folder)
    assert asked == (["fp32"] if fp16_flag else ["fp16"])
    assert paths.cnn.read_bytes() == b"ENGINE" and paths.head.read_bytes() == b"ENGINE"
    assert EngineKey.from_json(paths.key.read_text()) == key
    shapes = [args for name, args in rec.calls if name == "profile.set_shape"]
    assert shapes == [
        ("images", (1, 3, 112, 112), (16, 3, 112, 112), (32, 3, 112, 112)),
        ("windows", (1, 20, 2048), (16, 20, 2048), (32, 20, 2048)),
    ]
    flag_calls = [args for name, args in rec.calls if name == "config.set_flag"]
    assert flag_calls == ([(0,)] * 2 if fp16_flag else [])
    parsed = [args[0] for name, args in rec.calls if name == "parser.parse_from_file"]
    assert parsed == [str(tmp_path / "cnn.onnx"), str(tmp_path / "head.onnx")]


def test_tensorrt_reason_without_and_with_a_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails like a missing package
    reason = tensorrt_unavailable_reason()
    assert reason is not None and TRT_INSTALL in reason and "NVIDIA GPU" in reason
    if torch.cuda.is_available():
        return
    trt, _ = fake_trt("10.9.0", fp16_flag=True)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    reason = tensorrt_unavailable_reason()
    assert reason is not None and "10.9.0 is installed but torch sees no CUDA GPU" in reason


def test_backend_tensorrt_without_tensorrt_is_one_line(clip_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfstream",
            str(clip_path),
            "--untrained",
            "--backend",
            "tensorrt",
            "--no-dashboard",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0:
        pytest.skip("TensorRT and a GPU are present here")
    assert proc.returncode == 5
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert 'pip install "dfstream[tensorrt]"' in lines[0] and "NVIDIA GPU" in lines[0]
    assert str(clip_path) not in proc.stdout  # failed before any analysis


def test_doctor_lists_backends_and_the_same_reason() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dfstream", "doctor", "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for name in (
        "python",
        "torch",
        "torchvision",
        "onnxruntime",
        "tensorrt",
        "av (PyAV)",
        "opencv",
        "ffmpeg (PyAV's)",
    ):
        assert data["versions"][name]
    assert "libavcodec" in data["versions"]["ffmpeg (PyAV's)"]
    backends = {b["name"]: b for b in data["backends"]}
    assert backends["torch (cpu)"]["usable"] and backends["onnx (cpu)"]["usable"]
    trt = backends["tensorrt"]
    if not trt["usable"]:
        assert 'pip install "dfstream[tensorrt]"' in trt["detail"]
        assert "NVIDIA GPU" in trt["detail"]
    assert data["auto"]["backend"] in ("torch", "onnx", "tensorrt") and data["auto"]["reason"]
    text = subprocess.run(
        [sys.executable, "-m", "dfstream", "doctor"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"},
    )
    assert text.returncode == 0 and "backends" in text.stdout
    if not trt["usable"]:
        assert "dfstream[tensorrt]" in text.stdout  # not eaten as rich markup


CPU_BF16 = Facts(cuda=False, tensorrt_reason="no TensorRT", native_bf16=True, onnxruntime=True)
CPU_PLAIN = Facts(cuda=False, tensorrt_reason="no TensorRT", native_bf16=False, onnxruntime=True)
GPU_TRT = Facts(cuda=True, tensorrt_reason=None, native_bf16=False, onnxruntime=True)
GPU_ONLY = Facts(
    cuda=True, tensorrt_reason="TensorRT is not installed", native_bf16=True, onnxruntime=True
)
NO_ORT = Facts(cuda=False, tensorrt_reason="x", native_bf16=False, onnxruntime=False)


@pytest.mark.parametrize(
    ("facts", "device", "batch", "precision", "expected"),
    [
        (GPU_TRT, "auto", 16, "auto", ("tensorrt", "cuda", "fp16")),
        (GPU_TRT, "cpu", 16, "auto", ("onnx", "cpu", "fp32")),
        (GPU_ONLY, "auto", 1, "auto", ("torch", "cuda", "auto")),
        (GPU_ONLY, "cuda:1", 8, "fp32", ("torch", "cuda:1", "fp32")),
        (CPU_BF16, "auto", 16, "auto", ("torch", "cpu", "bf16")),
        (CPU_BF16, "auto", 4, "auto", ("torch", "cpu", "bf16")),
        (CPU_BF16, "auto", 1, "auto", ("onnx", "cpu", "fp32")),
        (CPU_BF16, "auto", 16, "fp32", ("onnx", "cpu", "fp32")),
        (CPU_PLAIN, "auto", 64, "auto", ("onnx", "cpu", "fp32")),
        (NO_ORT, "auto", 8, "auto", ("torch", "cpu", "fp32")),
        (CPU_PLAIN, "cuda", 8, "auto", ("torch", "cuda", "auto")),
    ],
)
def test_auto_rule(
    facts: Facts, device: str, batch: int, precision: str, expected: tuple[str, str, str]
) -> None:
    choice = choose(facts, device=device, batch=batch, precision=precision)
    assert (choice.backend, choice.device, choice.precision) == expected
    assert choice.reason.startswith("auto:")


@pytest.mark.parametrize(
    ("load", "batch", "expected"),
    [
        (0.3, 16, ("torch", "bf16", None)),
        (4.5, 16, ("torch", "bf16", 1)),  # busy CPU: same backend rule, one thread
        (4.5, 1, ("onnx", "fp32", 1)),
        (0.9, 1, ("onnx", "fp32", None)),
    ],
)
def test_auto_rule_threads_on_a_busy_cpu(
    load: float, batch: int, expected: tuple[str, str, int | None]
) -> None:
    facts = Facts(
        cuda=False, tensorrt_reason="x", native_bf16=True, onnxruntime=True, load_per_core=load
    )
    choice = choose(facts, device="auto", batch=batch)
    assert (choice.backend, choice.precision, choice.threads) == expected
    assert ("CPU busy" in choice.reason) == (expected[2] == 1)


def test_expected_batch_from_sources() -> None:
    def batch(texts: list[str]) -> int:
        return expected_batch([parse_source(t) for t in texts], 16)

    assert batch(["a.mp4", "b.mp4"]) == 16
    assert batch(["file:///tmp/a.mp4"]) == 16
    assert batch(["rtsp://a/1"]) == 1 and batch(["webcam:0"]) == 1
    assert batch(["rtsp://a/1", "http://b/x.m3u8", "c.mp4"]) == 2
    assert batch([f"rtsp://cam/{i}" for i in range(40)]) == 16


def test_tensorrt_backend_refuses_cpu_and_missing_cuda(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dfstream.backends.tensorrt_backend import TensorRTBackend
    from dfstream.errors import BackendUnavailable, UsageError

    trt, _ = fake_trt("11.1.0", fp16_flag=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    loaded = untrained_model()
    with pytest.raises(UsageError, match="not --device cpu"):
        TensorRTBackend.create(loaded, engine_dir=tmp_path, onnx_cache=tmp_path, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match=r"no CUDA GPU.*NVIDIA GPU"):
            TensorRTBackend.create(loaded, engine_dir=tmp_path, onnx_cache=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing exported or built on the way to the error


def test_engine_build_without_tensorrt_exits_5_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfstream",
            "engine",
            "build",
            "--untrained",
            "--engine-dir",
            str(tmp_path / "engines"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0:
        pytest.skip("TensorRT and a GPU are present here")
    assert proc.returncode == 5
    assert len(proc.stderr.strip().splitlines()) == 1
    assert 'pip install "dfstream[tensorrt]"' in proc.stderr or "CUDA GPU" in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "dfstream", "engine", "build", "--untrained", "--precision", "int8"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.trt
def test_tensorrt_engines_match_torch(tmp_path: Path) -> None:
    """Unverified here (no GPU, no TensorRT): fp32 engines reproduce torch within 1e-3."""
    pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'dfstream[tensorrt]'")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    import numpy as np

    from dfstream.backends.tensorrt_backend import TensorRTBackend
    from dfstream.backends.torch_backend import TorchBackend

    loaded = untrained_model()
    trt_backend = TensorRTBackend.create(
        loaded,
        engine_dir=tmp_path / "engines",
        onnx_cache=tmp_path / "onnx",
        precision="fp32",
        max_batch=8,
    )
    ref = TorchBackend(loaded.model, torch.device("cuda"), precision="fp32")
    crops = np.random.default_rng(0).integers(0, 256, (11, 112, 112, 3), dtype=np.uint8)
    feats, ref_feats = trt_backend.embed(crops), ref.embed(crops)
    assert np.abs(feats - ref_feats).max() <= 1e-2 * np.abs(ref_feats).max()
    windows = np.stack([np.resize(ref_feats, (20, ref_feats.shape[1]))] * 3)
    assert np.abs(trt_backend.score(windows) - ref.score(windows)).max() <= 1e-3


def test_tensorrt_short_windows_go_to_the_torch_head() -> None:
    """Windows shorter than the head engine's fixed T are scored by the torch head (the engine
    itself is never called for them); full windows still go to the engine."""
    import numpy as np

    from dfstream.backends.tensorrt_backend import TensorRTBackend, cpu_head
    from dfstream.errors import BackendUnavailable
    from dfstream.model.spec import native_spec

    loaded = untrained_model(native_spec(backbone="tiny", window=4), seed=2)
    key = wanted_key(
        loaded, tensorrt_version="10.0", compute_capability="8.9", precision="fp32", max_batch=4
    )

    class NoEngine:
        def run(self, tensor: Any) -> Any:
            raise AssertionError("the fixed-T engine got a short window")

    backend = TensorRTBackend(
        loaded.spec,
        NoEngine(),  # type: ignore[arg-type]
        NoEngine(),  # type: ignore[arg-type]
        key,
        torch.device("cpu"),
        short_head=cpu_head(loaded),
    )
    windows = np.random.default_rng(0).standard_normal((2, 3, loaded.spec.feature_dim))
    windows = windows.astype(np.float32)
    with torch.inference_mode():
        expected = loaded.model.score(torch.from_numpy(windows)).numpy()
    np.testing.assert_allclose(backend.score(windows), expected, atol=1e-6)
    with pytest.raises(AssertionError, match="fixed-T engine"):
        backend.score(np.zeros((1, 4, loaded.spec.feature_dim), np.float32))
    backend.short_head = None
    with pytest.raises(BackendUnavailable, match="windows of 4 features, not 3"):
        backend.score(windows)
