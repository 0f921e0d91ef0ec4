"""ONNX export of a model's two halves, its metadata, parity checks and the export cache.

``export_onnx`` writes three files into a folder:

* ``cnn.onnx``: ``images`` (N, 3, S, S) float32, normalised -> ``features`` (N, F) float32, with
  a dynamic batch dimension ``batch``;
* ``head.onnx``: ``windows`` (N, t, F) float32 -> ``p_fake`` (N,) float32: ``DeepfakeNet.score``
  exported as it is (both head modes), batch and window length ``seq`` (1..T) dynamic: short
  windows (a track that ends before it holds T crops, a photo) run on the same file;
* ``dfstream-onnx.json``: the ``ModelSpec``, the weights' identity (``LoadedModel.identity()``),
  the precision, torch/onnx versions and the file names.

``precision="fp16"`` exports the network computing in fp16 behind fp32 inputs and outputs (casts
inside the graph): the typed ONNX that a strongly typed TensorRT network needs.

The exporter is ``torch.onnx.export(..., dynamo=True)`` (the default since torch 2.9), which works
offline; ``onnx.checker`` validates each file. ``cached_export`` keeps one export per weights
identity, spec, precision and torch version under a cache folder, so it happens once.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dfstream.errors import BackendUnavailable, OutputError
from dfstream.model.checkpoint import LoadedModel
from dfstream.model.network import DeepfakeNet, preprocess
from dfstream.model.spec import ModelSpec

ExportPrecision = Literal["fp32", "fp16"]

EXPORT_FORMAT = "dfstream-onnx"
EXPORT_VERSION = 2
"""2: the head's window length is dynamic (version 1 fixed T); a cached version 1 export is
exported again."""
META_FILE = "dfstream-onnx.json"
CNN_FILE = "cnn.onnx"
HEAD_FILE = "head.onnx"
CNN_INPUT, CNN_OUTPUT = "images", "features"
HEAD_INPUT, HEAD_OUTPUT = "windows", "p_fake"


class _Embed(nn.Module):
    """``DeepfakeNet.embed`` as a module, optionally computing in fp16 behind fp32 I/O."""

    def __init__(self, net: DeepfakeNet, half: bool) -> None:
        super().__init__()
        self.net = net
        self.half_ = half

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.half_:
            return self.net.embed(images.half()).float()
        return self.net.embed(images)


class _Score(nn.Module):
    """``DeepfakeNet.score`` as a module (``score`` already returns fp32)."""

    def __init__(self, net: DeepfakeNet, half: bool) -> None:
        super().__init__()
        self.net = net
        self.half_ = half

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net.score(windows.half() if self.half_ else windows)


@dataclass(frozen=True)
class ExportMeta:
    """What an export folder holds; written as ``dfstream-onnx.json`` next to the ONNX files."""

    spec: ModelSpec
    identity: str
    precision: str
    torch_version: str
    onnx_opset: int
    cnn_file: str = CNN_FILE
    head_file: str = HEAD_FILE
    format: str = EXPORT_FORMAT
    format_version: int = EXPORT_VERSION

    def to_json(self) -> str:
        """Serialise (the spec as a nested object)."""
        data = dataclasses.asdict(self)
        data["spec"] = json.loads(self.spec.to_json())
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExportMeta:
        """Parse ``to_json`` output; raises ValueError on anything unexpected."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"not a {EXPORT_FORMAT} metadata file")
        if data.get("format_version") != EXPORT_VERSION:
            raise ValueError(f"export format version {data.get('format_version')} unsupported")
        data["spec"] = ModelSpec.from_json(json.dumps(data["spec"]))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Parity:
    """Largest absolute differences between ONNX Runtime and torch fp32 on random crops and
    on windows of T, about T/2 and 1 features (``scores_max_abs``: the worst of those)."""

    features_max_abs: float
    scores_max_abs: float
    crops: int
    windows: int

    @property
    def worst(self) -> float:
        """The larger of the two differences."""
        return max(self.features_max_abs, self.scores_max_abs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _export_module(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: tuple[str, str],
    *,
    max_seq: int | None = None,
) -> object:
    """Export ``module`` with a dynamic batch axis and, with ``max_seq``, a dynamic axis 1
    of length 1..``max_seq`` (the head's window length)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    axes: dict[int, Any] = {0: batch}
    if max_seq is not None:
        axes[1] = torch.export.Dim("seq", min=1, max=max_seq)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module.eval(),
                (example,),
                str(path),
                input_names=[names[0]],
                output_names=[names[1]],
                dynamic_shapes={next(iter(_forward_arg(module))): axes},
                external_data=False,
                dynamo=True,
            )
    except Exception as exc:
        raise BackendUnavailable(
            f"ONNX export of {path.name} failed with torch {torch.__version__}: "
            f"{_first_line(exc)} (rerun with --debug for details)"
        ) from exc
    return program


def _forward_arg(module: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p != "self"]


def check_onnx(path: Path) -> None:
    """Run ``onnx.checker`` (with shape inference) on an exported file."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises its own ValidationError subclasses
        raise BackendUnavailable(f"{path}: fails onnx.checker: {_first_line(exc)}") from exc


def export_onnx(loaded: LoadedModel, out_dir: Path, *, precision: str = "fp32") -> ExportMeta:
    """Export ``loaded`` into ``out_dir`` (created), check both files and write the metadata."""
    import onnx

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision: expected fp32 or fp16 but got {precision!r}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the export folder ({exc})") from exc
    spec = loaded.spec
    half = precision == "fp16"
    net = copy.deepcopy(loaded.model).float().cpu().eval()
    if half:
        net = net.half()
    images = torch.zeros(2, 3, spec.input_size, spec.input_size)
    windows = torch.zeros(2, spec.window, spec.feature_dim)
    cnn, head = out_dir / CNN_FILE, out_dir / HEAD_FILE
    _export_module(_Embed(net, half), images, cnn, (CNN_INPUT, CNN_OUTPUT))
    _export_module(_Score(net, half), windows, head, (HEAD_INPUT, HEAD_OUTPUT), max_seq=spec.window)
    for path in (cnn, head):
        check_onnx(path)
    opset = next(
        (
            o.version
            for o in onnx.load(str(head), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        ),
        0,
    )
    meta = ExportMeta(
        spec=spec,
        identity=loaded.identity(),
        precision=precision,
        torch_version=torch.__version__,
        onnx_opset=int(opset),
    )
    (out_dir / META_FILE).write_text(meta.to_json() + "\n")
    return meta


def read_export(folder: Path) -> ExportMeta:
    """The metadata of an export folder; ValueError when it is missing or damaged."""
    path = folder / META_FILE
    try:
        meta = ExportMeta.from_json(path.read_text())
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    for name in (meta.cnn_file, meta.head_file):
        if not (folder / name).is_file():
            raise ValueError(f"{folder / name}: missing")
    return meta


def export_key(loaded: LoadedModel, precision: str) -> str:
    """Cache key of an export: weights identity, spec, precision, torch version, format."""
    text = "|".join(
        (
            loaded.identity(),
            loaded.spec.to_json(),
            precision,
            torch.__version__,
            str(EXPORT_VERSION),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_export(
    loaded: LoadedModel,
    cache_dir: Path,
    *,
    precision: str = "fp32",
    notice: Callable[[str], None] = lambda _msg: None,
) -> tuple[Path, ExportMeta]:
    """The export folder of ``loaded`` under ``cache_dir``, exporting only when it is absent or
    does not match (written to a temporary folder and renamed, so a half export is never used)."""
    key = export_key(loaded, precision)
    folder = cache_dir / key
    with contextlib.suppress(ValueError):
        meta = read_export(folder)
        if (
            meta.identity == loaded.identity()
            and meta.spec == loaded.spec
            and meta.precision == precision
        ):
            return folder, meta
    notice(f"exporting the model to ONNX ({precision}) into {folder} (once per weights)")
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        meta = export_onnx(loaded, tmp, precision=precision)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, meta


def parity(
    loaded: LoadedModel, folder: Path, meta: ExportMeta, *, crops: int = 8, seed: int = 0
) -> Parity:
    """Run ONNX Runtime (CPU) and torch fp32 on the same random crops and windows."""
    import onnxruntime as ort

    spec = loaded.spec
    rng = np.random.default_rng(seed)
    images = preprocess(
        rng.integers(0, 256, (crops, spec.input_size, spec.input_size, 3), dtype=np.uint8), spec
    )
    model = loaded.model
    first = next(model.parameters())
    if first.device.type != "cpu" or first.dtype != torch.float32:
        model = copy.deepcopy(model).float().cpu()
    model.eval()
    with torch.inference_mode():
        ref_feats = model.embed(images).numpy()
    cnn = ort.InferenceSession(str(folder / meta.cnn_file), providers=["CPUExecutionProvider"])
    feats = cnn.run([CNN_OUTPUT], {CNN_INPUT: images.numpy()})[0]
    # Windows made of real features, in random order: realistic magnitudes for the LSTM.
    n_windows = max(2, crops // 2)
    windows = ref_feats[rng.integers(0, crops, (n_windows, spec.window))].astype(np.float32)
    head = ort.InferenceSession(str(folder / meta.head_file), providers=["CPUExecutionProvider"])
    # Full windows, and the short ones a track that ends early gives (1 and about T/2 crops).
    scores_max_abs = 0.0
    for length in sorted({spec.window, 1, max(1, spec.window // 2)}):
        part = np.ascontiguousarray(windows[:, -length:])
        with torch.inference_mode():
            ref_scores = model.score(torch.from_numpy(part)).numpy()
        scores = head.run([HEAD_OUTPUT], {HEAD_INPUT: part})[0]
        scores_max_abs = max(scores_max_abs, float(np.abs(scores - ref_scores).max()))
    return Parity(
        features_max_abs=float(np.abs(feats - ref_feats).max()),
        scores_max_abs=scores_max_abs,
        crops=crops,
        windows=n_windows,
    )


def describe_meta(meta: ExportMeta) -> dict[str, Any]:
    """A few fields of the metadata for printing."""
    return {
        "identity": meta.identity,
        "precision": meta.precision,
        "window": meta.spec.window,
        "head_mode": meta.spec.head_mode,
        "opset": meta.onnx_opset,
    }
