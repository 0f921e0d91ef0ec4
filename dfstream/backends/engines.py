"""TensorRT engines for a model: their key, where they live, and how they are built.

Written against the TensorRT 10.x / 11.x Python API documentation and **not yet run**: TensorRT
cannot be installed where dfstream is built and tested (no NVIDIA GPU, and the ``tensorrt`` wheels
fetch their libraries from NVIDIA's index). Everything around the ``tensorrt`` calls (keys,
metadata, file names, mismatch handling, which flags a TensorRT version gets) is unit-tested with
a stand-in module.

Two engines per model, built from the ONNX export (``dfstream.backends.export``):

* ``<stem>.cnn.engine``: images (N, 3, S, S) -> features, one optimisation profile with
  min 1 / opt ``opt_batch`` / max ``max_batch``;
* ``<stem>.head.engine``: windows (N, T, F) -> P(fake), T fixed (the LSTM is unrolled over T),
  the same batch profile.

``<stem>.json`` holds the ``EngineKey`` (TensorRT version, GPU compute capability, precision,
shapes, weights identity). fp16 is built the way the installed TensorRT supports: TensorRT 10.x
(``BuilderFlag.FP16`` exists) gets the fp32 ONNX with that flag; TensorRT 11.x (the flag is gone,
networks are strongly typed) gets the fp16 ONNX export as a strongly typed network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfstream.errors import BackendUnavailable, OutputError
from dfstream.model.checkpoint import LoadedModel

ENGINE_FORMAT = "dfstream-trt-engine"
WORKSPACE_BYTES = 4 << 30


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; an engine is used only when its key fits."""

    tensorrt_version: str
    compute_capability: str
    precision: str
    input_size: int
    window: int
    feature_dim: int
    min_batch: int
    opt_batch: int
    max_batch: int
    weights: str
    spec_sha: str
    format: str = ENGINE_FORMAT

    def to_json(self) -> str:
        """Serialise for ``<stem>.json``."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineKey:
        """Parse ``to_json`` output; ValueError when it is not an engine key."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != ENGINE_FORMAT:
            raise ValueError("not a dfstream engine key")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def mismatches(self, wanted: EngineKey) -> list[str]:
        """Human-readable differences that make this engine unusable for ``wanted``.

        A larger ``max_batch`` than needed is fine; ``opt_batch`` only tunes speed.
        """
        out: list[str] = []
        for name in (
            "tensorrt_version",
            "compute_capability",
            "precision",
            "input_size",
            "window",
            "feature_dim",
            "weights",
            "spec_sha",
        ):
            have, want = getattr(self, name), getattr(wanted, name)
            if have != want:
                out.append(f"{name} {have} (needed {want})")
        if self.max_batch < wanted.max_batch:
            out.append(f"max_batch {self.max_batch} (needed >= {wanted.max_batch})")
        return out


def wanted_key(
    loaded: LoadedModel,
    *,
    tensorrt_version: str,
    compute_capability: str,
    precision: str,
    max_batch: int,
    opt_batch: int | None = None,
) -> EngineKey:
    """The key an engine for ``loaded`` must have on this machine."""
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision: expected fp16 or fp32 but got {precision!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch: expected >= 1 but got {max_batch}")
    spec = loaded.spec
    opt = min(max_batch, opt_batch or max_batch)
    return EngineKey(
        tensorrt_version=tensorrt_version,
        compute_capability=compute_capability,
        precision=precision,
        input_size=spec.input_size,
        window=spec.window,
        feature_dim=spec.feature_dim,
        min_batch=1,
        opt_batch=max(1, opt),
        max_batch=max_batch,
        weights=loaded.identity(),
        spec_sha=hashlib.sha256(spec.to_json().encode()).hexdigest()[:16],
    )


@dataclass(frozen=True)
class EnginePaths:
    """The three files of one model's engines in an engine folder."""

    cnn: Path
    head: Path
    key: Path

    @classmethod
    def of(cls, engine_dir: Path, key: EngineKey) -> EnginePaths:
        """Files named by weights, spec and precision: a machine or TensorRT change (or a larger
        batch) finds the same files and is reported as a mismatch, not silently ignored."""
        digest = hashlib.sha256(f"{key.weights}|{key.spec_sha}".encode()).hexdigest()[:16]
        stem = engine_dir / f"dfstream-{digest}-{key.precision}"
        return cls(
            cnn=stem.with_name(stem.name + ".cnn.engine"),
            head=stem.with_name(stem.name + ".head.engine"),
            key=stem.with_name(stem.name + ".json"),
        )

    def present(self) -> bool:
        """All three files exist."""
        return self.cnn.is_file() and self.head.is_file() and self.key.is_file()


def check_engines(paths: EnginePaths, wanted: EngineKey) -> list[str]:
    """Why the engines at ``paths`` cannot be used (empty list: they can)."""
    if not paths.present():
        return ["not built yet"]
    try:
        have = EngineKey.from_json(paths.key.read_text())
    except (OSError, ValueError, TypeError) as exc:
        return [f"unreadable key {paths.key} ({exc})"]
    return have.mismatches(wanted)


def refuse_message(paths: EnginePaths, problems: list[str], rebuild_hint: str) -> str:
    """One line: which engine, what does not fit, and the command that fixes it."""
    return (
        f"TensorRT engine {paths.cnn.name} does not fit this machine/model: "
        f"{'; '.join(problems)}; rebuild it with `{rebuild_hint}`"
    )


def network_flags(trt: Any, precision: str) -> tuple[int, bool, bool]:
    """(network creation flags, use the fp16 ONNX, set BuilderFlag.FP16) for this TensorRT.

    TensorRT 10.x has ``BuilderFlag.FP16`` (weak typing): fp32 ONNX + the flag. TensorRT 11.x
    removed it: strongly typed network from the fp16 ONNX. ``STRONGLY_TYPED`` is set whenever
    the flag is not used and the creation flag exists (required on 10.x, ignored on 11.x).
    """
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    use_flag = precision == "fp16" and has_fp16_flag
    fp16_onnx = precision == "fp16" and not has_fp16_flag
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None and not use_flag:
        flags |= 1 << int(strongly)
    return flags, fp16_onnx, use_flag


def build_engine(
    trt: Any,
    onnx_path: Path,
    *,
    input_name: str,
    sample_shape: tuple[int, ...],
    key: EngineKey,
    log_lines: list[str],
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine with a batch profile (min/opt/max).

    ``sample_shape`` is the input shape without the batch dimension.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags, _, use_fp16_flag = network_flags(trt, key.precision)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        log_lines.extend(errors)
        raise BackendUnavailable(
            f"TensorRT could not parse {onnx_path}: {errors[0] if errors else 'unknown error'}"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if use_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(
        input_name,
        (key.min_batch, *sample_shape),
        (key.opt_batch, *sample_shape),
        (key.max_batch, *sample_shape),
    )
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(
            f"TensorRT failed to build an engine from {onnx_path} ({key.precision}, batch "
            f"1-{key.max_batch}); rerun with --debug for TensorRT's log"
        )
    return bytes(serialized)


def build_engines(
    trt: Any,
    paths: EnginePaths,
    key: EngineKey,
    onnx_folder: Callable[[str], tuple[Path, Any]],
    *,
    notice: Callable[[str], None] = lambda _msg: None,
) -> None:
    """Build both engines and write them with their key (key last: a half-built set is never
    taken for a complete one). ``onnx_folder(precision)`` returns (folder, ExportMeta)."""
    from dfstream.backends.export import CNN_INPUT, HEAD_INPUT

    _, fp16_onnx, _ = network_flags(trt, key.precision)
    folder, meta = onnx_folder("fp16" if fp16_onnx else "fp32")
    try:
        paths.cnn.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{paths.cnn.parent}: cannot create the engine folder ({exc})") from exc
    paths.key.unlink(missing_ok=True)
    log: list[str] = []
    jobs = (
        (paths.cnn, meta.cnn_file, CNN_INPUT, (3, key.input_size, key.input_size)),
        (paths.head, meta.head_file, HEAD_INPUT, (key.window, key.feature_dim)),
    )
    for target, onnx_name, input_name, shape in jobs:
        notice(f"building TensorRT engine {target} ({key.precision}, batch 1-{key.max_batch})")
        blob = build_engine(
            trt,
            folder / onnx_name,
            input_name=input_name,
            sample_shape=shape,
            key=key,
            log_lines=log,
        )
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(target)
    paths.key.write_text(key.to_json() + "\n")
