"""``dfstream doctor``: what this machine has, and which backends can run here.

Prints the versions of Python, torch, torchvision, CUDA (as torch sees it), ONNX Runtime (and its
execution providers), TensorRT, PyAV with the FFmpeg libraries it is linked to, OpenCV, ONNX; the
devices (CPU with its bf16 support, CUDA GPUs with compute capability); whether the default model
(shipped in the package, or ``$DFSTREAM_DEFAULT_MODEL``) is present, with its name and threshold;
and, for each backend,
whether it is usable, with a one-line reason and fix when it is not. Also prints what
``--backend auto`` would choose for a file source at the default batch. ``--json`` gives the same
as one JSON object. Always exits 0: it reports, it does not judge.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dfstream.cli.args import Parser, default_model_override


@dataclass(frozen=True)
class BackendStatus:
    """One backend: usable or not, and why not / how to fix."""

    name: str
    usable: bool
    detail: str


def _version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install failing on import
        return f"not installed ({type(exc).__name__})"


def versions() -> dict[str, str]:
    """Library versions, 'not installed (...)' for the missing ones."""
    import torch

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "cuda (torch build)": str(torch.version.cuda or "none (CPU build)"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "tensorrt": _version("tensorrt"),
        "av (PyAV)": _version("av"),
        "opencv": _version("cv2"),
    }
    try:
        import av

        libs = av.library_versions
        out["ffmpeg (PyAV's)"] = ", ".join(
            f"{name} {'.'.join(map(str, ver))}" for name, ver in sorted(libs.items())
        )
    except Exception as exc:  # noqa: BLE001 - PyAV missing or broken
        out["ffmpeg (PyAV's)"] = f"unknown ({type(exc).__name__})"
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def devices() -> list[str]:
    """One line per device: the CPU (cores, bf16) and each CUDA GPU torch sees."""
    import torch

    from dfstream.backends.torch_backend import cpu_has_native_bf16

    bf16 = "native bf16 (AVX512-BF16/AMX)" if cpu_has_native_bf16() else "no native bf16"
    lines = [f"cpu: {_cpu_name()}, {os.cpu_count()} logical cores, {bf16}"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            lines.append(f"cuda:{i}: {torch.cuda.get_device_name(i)}, compute {major}.{minor}")
    else:
        lines.append("cuda: none (torch sees no CUDA GPU)")
    return lines


def backend_statuses() -> list[BackendStatus]:
    """torch, onnx (CPU / CUDA provider), tensorrt: usable or the reason and fix."""
    import torch

    from dfstream.backends.onnx_backend import CUDA_EP, ORT_GPU_INSTALL, ORT_INSTALL, ort_providers
    from dfstream.backends.tensorrt_backend import tensorrt_unavailable_reason
    from dfstream.backends.torch_backend import cpu_has_native_bf16

    cpu_prec = "fp32, bf16" + ("" if cpu_has_native_bf16() else " (emulated, slow)")
    out = [BackendStatus("torch (cpu)", True, f"precisions {cpu_prec}")]
    if torch.cuda.is_available():
        out.append(BackendStatus("torch (cuda)", True, "fp32, fp16, channels_last, CUDA graphs"))
    else:
        out.append(
            BackendStatus(
                "torch (cuda)",
                False,
                "torch sees no CUDA GPU; needs an NVIDIA GPU and a CUDA build of torch",
            )
        )
    providers = ort_providers()
    if providers:
        out.append(BackendStatus("onnx (cpu)", True, f"providers: {', '.join(providers)}"))
        if CUDA_EP in providers:
            out.append(BackendStatus("onnx (cuda)", True, "CUDAExecutionProvider"))
        else:
            out.append(
                BackendStatus("onnx (cuda)", False, f"no CUDAExecutionProvider; {ORT_GPU_INSTALL}")
            )
    else:
        out.append(BackendStatus("onnx", False, f"ONNX Runtime is not installed; {ORT_INSTALL}"))
    reason = tensorrt_unavailable_reason()
    out.append(BackendStatus("tensorrt", reason is None, reason or "engines build on first use"))
    return out


def default_model_status() -> dict[str, Any]:
    """The model a run without ``--weights`` uses: where it is, whether it is there, and its
    name and calibrated threshold when it is readable."""
    from dfstream.errors import WeightsError
    from dfstream.model.checkpoint import calibrated_threshold, checkpoint_info
    from dfstream.model.shipped import DEFAULT_MODEL_ENV, default_model_path

    override = default_model_override()
    path = override or default_model_path()
    status: dict[str, Any] = {
        "path": str(path),
        "from": f"${DEFAULT_MODEL_ENV}" if override else "shipped with dfstream",
        "present": path.is_file(),
        "name": None,
        "threshold": None,
        "detail": "",
    }
    if not status["present"]:
        status["detail"] = "absent: runs need --weights PATH or --untrained"
        return status
    try:
        info = checkpoint_info(path)
    except WeightsError as exc:
        status["detail"] = f"unreadable: {exc}"
        return status
    name = info.get("name")
    status["name"] = name if isinstance(name, str) else path.name
    status["threshold"], rule = calibrated_threshold(info)
    size = path.stat().st_size / 1e6
    status["detail"] = f"{size:.1f} MB" + (f", threshold rule: {rule}" if rule else "")
    return status


def report() -> dict[str, Any]:
    """Everything doctor prints, as plain data."""
    from dfstream.backends.select import auto_choice, describe_rule
    from dfstream.sources import parse_source

    choice = auto_choice(device="auto", sources=(parse_source("video.mp4"),), batch=16)
    return {
        "versions": versions(),
        "devices": devices(),
        "backends": [asdict(s) for s in backend_statuses()],
        "default_model": default_model_status(),
        "auto": {**asdict(choice), "rule": describe_rule()},
        "executable": sys.executable,
    }


def main(argv: list[str]) -> int:
    """Print the report (a table, or ``--json``)."""
    p = Parser(prog="dfstream doctor", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)
    data = report()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title="dfstream doctor: versions", show_header=False)
    for name, value in data["versions"].items():
        table.add_row(escape(name), escape(value))
    console.print(table)
    for line in data["devices"]:
        console.print(f"device  {escape(line)}")
    model = data["default_model"]
    if model["present"] and model["name"]:
        threshold = "0.5 (none stored)" if model["threshold"] is None else model["threshold"]
        console.print(
            f"default model  [green]present[/]: {escape(model['name'])} ({model['from']}, "
            f"{escape(model['path'])}; threshold {threshold}; {escape(model['detail'])})"
        )
    else:
        console.print(
            f"default model  [red]not usable[/] ({model['from']}, {escape(model['path'])}): "
            f"{escape(model['detail'])}"
        )
    backends = Table(title="backends")
    backends.add_column("backend")
    backends.add_column("usable")
    backends.add_column("detail / fix")
    for s in data["backends"]:
        mark = "[green]yes[/]" if s["usable"] else "[red]no[/]"
        backends.add_row(escape(s["name"]), mark, escape(s["detail"]))
    console.print(backends)
    auto = data["auto"]
    console.print(
        f"--backend auto (file source, batch 16): {auto['backend']} {auto['precision']} on "
        f"{auto['device']} ({auto['reason']})"
    )
    console.print(f"rule: {auto['rule']}")
    return 0
