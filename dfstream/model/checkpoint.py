"""Loading and saving model weights without ever unpickling arbitrary objects.

Two file formats load through ``load_weights``:

* **dfstream checkpoints**, written by ``save_checkpoint``: a dict with the format marker, the
  ``ModelSpec`` as JSON, free-form info as JSON, and the state dict.
* **public ResNeXt50+LSTM checkpoints** (``model_*_acc_*_frames_*.pt``): a bare state dict; the
  spec is ``compat_spec`` with T taken from the file name.

Both go through ``torch.load(weights_only=True)``, which refuses any pickle that would construct
objects other than tensors and plain containers, so a malicious file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from dfstream.errors import WeightsError
from dfstream.model.backbones import backbone_names
from dfstream.model.network import DeepfakeNet, build_model
from dfstream.model.spec import (
    FORMAT_VERSION,
    ModelSpec,
    UnknownBackbone,
    compat_spec,
    compat_window_from_name,
)

CHECKPOINT_FORMAT = "dfstream-checkpoint"

WEIGHTS_HELP = (
    "pass --weights PATH (a dfstream checkpoint from `python -m training train`, or a public "
    "ResNeXt50+LSTM file model_*_acc_*_frames_*.pt), or --untrained for a pipeline check with a "
    "random model"
)


@dataclass(frozen=True)
class LoadedModel:
    """A ready model plus where it came from."""

    model: DeepfakeNet
    spec: ModelSpec
    kind: Literal["dfstream", "compat", "untrained"]
    origin: str
    info: Mapping[str, Any]

    @property
    def untrained(self) -> bool:
        """True when the weights are a random initialisation: every output says so."""
        return self.kind == "untrained"

    @property
    def name(self) -> str:
        """The model as a user sees it named: the checkpoint's ``info["name"]`` (for example
        ``dfstream-lite0-v2``), else the weights file's name, else ``untrained (seed N)``."""
        given = self.info.get("name")
        if isinstance(given, str) and given.strip():
            return given.strip()
        if self.untrained:
            return self.origin
        return Path(self.origin).name

    @property
    def threshold(self) -> float | None:
        """The FAKE threshold calibrated for these weights (``info["threshold"]``), or None."""
        return calibrated_threshold(self.info)[0]

    @property
    def threshold_rule(self) -> str | None:
        """How the calibrated threshold was chosen (``info["threshold_rule"]``), or None."""
        return calibrated_threshold(self.info)[1]

    def identity(self) -> str:
        """A stable key for caches derived from these weights (exports, engines)."""
        if self.kind == "untrained":
            return f"untrained-{self.spec.backbone}-seed{self.info.get('seed', 0)}"
        return file_sha256(Path(self.origin))


def calibrated_threshold(info: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """A checkpoint info's calibrated FAKE threshold and the rule that chose it (None, None
    when it carries none)."""
    value = info.get("threshold")
    rule = info.get("threshold_rule")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, None
    return float(value), rule if isinstance(rule, str) and rule else None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def untrained_model(spec: ModelSpec | None = None, *, seed: int = 0) -> LoadedModel:
    """A deterministic random model (same seed -> same weights on every machine and backend)."""
    spec = spec or ModelSpec()
    return LoadedModel(
        model=build_model(spec, seed=seed),
        spec=spec,
        kind="untrained",
        origin=f"untrained (seed {seed})",
        info={"seed": seed},
    )


def save_checkpoint(
    path: Path,
    model: DeepfakeNet,
    *,
    info: Mapping[str, Any] | None = None,
    half: bool = False,
) -> None:
    """Write a dfstream checkpoint: weights plus the model's spec and JSON-able info.

    ``half`` stores every floating tensor as float16 (half the file; the shipped default model
    is written so); ``load_weights`` casts them back to float32. Integer buffers (batch-norm
    counters) are kept as they are.
    """
    _check_info(info or {}, str(path))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": model.spec.to_json(),
        "info": json.dumps(dict(info or {}), sort_keys=True),
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _check_info(info: Mapping[str, Any], where: str) -> None:
    """The info fields dfstream reads must have usable values (``threshold`` in [0, 1])."""
    threshold = info.get("threshold")
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise WeightsError(f"{where}: info threshold: expected a number but got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise WeightsError(f"{where}: info threshold: expected 0..1 but got {threshold}")


def _as_float32(state: Mapping[str, Any]) -> dict[str, Any]:
    """Floating tensors as float32 (a half-precision checkpoint loads as the fp32 model)."""
    return {
        k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in state.items()
    }


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dfstream")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "(this build)"


def _safe_load(path: Path) -> Any:
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file; {WEIGHTS_HELP}")
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, expected a weights file; {WEIGHTS_HELP}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"{path}: refused to load: it holds pickled objects other than tensors, which could "
            f"run code ({first[:160]})"
        ) from exc
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable torch checkpoint ({first[:160]})") from exc


def checkpoint_info(path: Path) -> dict[str, Any]:
    """The info of a dfstream checkpoint (its name, calibrated threshold, ...) without building
    the model; ``{}`` for a public checkpoint. Raises ``WeightsError`` like ``load_weights``."""
    data = _safe_load(path)
    if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
        return {}
    try:
        info = json.loads(str(data.get("info", "{}")))
    except ValueError as exc:
        raise WeightsError(f"{path}: damaged checkpoint metadata ({exc})") from exc
    return info if isinstance(info, dict) else {}


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    # Checkpoints saved from nn.DataParallel carry a "module." prefix on every key.
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def load_state_strict(model: DeepfakeNet, state: Mapping[str, Any], where: str) -> None:
    """Load a state dict strictly; the error names the first key that does not fit."""
    expected = model.state_dict()
    for key, ref in expected.items():
        if key not in state:
            raise WeightsError(f"{where}: weights do not fit the model: missing key {key!r}")
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{where}: weights do not fit the model: {key!r} is not a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise WeightsError(
                f"{where}: weights do not fit the model: {key!r} has shape "
                f"{list(value.shape)}, expected {list(ref.shape)}"
            )
    for key in state:
        if key not in expected:
            raise WeightsError(f"{where}: weights do not fit the model: unexpected key {key!r}")
    model.load_state_dict(state, strict=True)


def load_weights(path: Path, *, window: int | None = None) -> LoadedModel:
    """Load a dfstream or public checkpoint; ``window`` overrides the stored T."""
    data = _safe_load(path)
    if not isinstance(data, Mapping):
        raise WeightsError(f"{path}: expected a dict of weights but found {type(data).__name__}")
    if data.get("format") == CHECKPOINT_FORMAT:
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise WeightsError(
                f"{path}: checkpoint format version {version} is newer than this dfstream "
                f"understands ({FORMAT_VERSION}); upgrade dfstream"
            )
        try:
            spec = ModelSpec.from_json(str(data["metadata"]))
            info = json.loads(str(data.get("info", "{}")))
        except UnknownBackbone as exc:
            raise WeightsError(
                f"{path}: the checkpoint's backbone {exc.name!r} is not known to dfstream "
                f"{_version()} (it knows {', '.join(backbone_names())}); use a dfstream "
                "version that has that backbone"
            ) from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{path}: damaged checkpoint metadata ({exc})") from exc
        if not isinstance(info, dict):
            raise WeightsError(f"{path}: damaged checkpoint metadata (info is not an object)")
        _check_info(info, str(path))
        if window is not None:
            spec = spec.replace(window=window)
        model = DeepfakeNet(spec).eval()
        state = data.get("state_dict")
        if not isinstance(state, Mapping):
            raise WeightsError(f"{path}: damaged checkpoint (no state dict)")
        load_state_strict(model, _as_float32(_strip_prefix(state)), str(path))
        return LoadedModel(model=model, spec=spec, kind="dfstream", origin=str(path), info=info)

    state = _strip_prefix(data)
    if "lstm.weight_ih_l0" in state or any(k.startswith("model.") for k in state):
        spec = compat_spec(window or compat_window_from_name(path.name) or 20)
        model = DeepfakeNet(spec).eval()
        load_state_strict(model, _as_float32(state), str(path))
        return LoadedModel(model=model, spec=spec, kind="compat", origin=str(path), info={})
    first = next(iter(state), None)
    raise WeightsError(
        f"{path}: not a dfstream checkpoint nor a public ResNeXt50+LSTM state dict "
        f"(first key {first!r}); {WEIGHTS_HELP}"
    )
