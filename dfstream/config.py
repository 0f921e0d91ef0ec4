"""The frozen configuration of an analysis: what to analyse and how (``AnalysisConfig``), and
which outputs to write (``OutputConfig``).

Both are built once, at the edge (the CLI, a GUI, a script using the library API); nothing below
reads environment variables or ``argparse`` namespaces: stages receive the fields they need.
Presentation choices of the command line (dashboard, ``--fail-on-fake``, ``--debug``) are not
part of either: they belong to ``dfstream.cli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

DetectorKind = Literal["auto", "yunet", "haar", "none"]
"""``auto`` = YuNet when its model is found, else Haar; ``none`` = the whole frame is the face."""
BackendKind = Literal["auto", "torch", "onnx", "tensorrt"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
RtspTransport = Literal["tcp", "udp"]

DETECTORS: tuple[str, ...] = get_args(DetectorKind)
BACKENDS: tuple[str, ...] = get_args(BackendKind)
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True, kw_only=True)
class AnalysisConfig:
    """What to analyse and how: sources, model, faces, windows, backend, verdicts, live input.

    ``sources`` may be empty for a run that gets its sources later (``Analysis.add_source``).
    Invalid values raise ``ValueError`` with the flag's name.
    """

    sources: tuple[str, ...] = ()
    weights: Path | None = None
    untrained: bool = False
    default_weights: Path | None = None
    """The checkpoint used when neither ``weights`` nor ``untrained`` is given; None = the model
    shipped in the package (``dfstream.model.default_model_path()``)."""
    seed: int = 0
    detector: DetectorKind = "auto"
    detector_model: Path | None = None
    model_cache: Path | None = None
    detect_every: int = 5
    detect_size: int = 640
    """Longest side, in px, of the frame YuNet and Haar look at (larger frames are shrunk first;
    ``benchmarks/results/detect_recall.md`` measures recall against cost)."""
    analysis_fps: float | None = None
    window: int | None = None
    stride: int = 5
    batch: int = 16
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    backend: BackendKind = "auto"
    precision: Precision = "auto"
    threads: int | None = None
    onnx_cache: Path | None = None
    engine_dir: Path | None = None
    cuda_graphs: bool = False
    threshold: float | None = None
    """FAKE at or above this score; None = the threshold calibrated for the model (its
    checkpoint's ``info["threshold"]``), else 0.5."""
    hysteresis: float = 0.05
    max_seconds: float | None = None
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    stall_timeout: float = 10.0
    reconnect: int | None = None
    """Reconnect attempts per outage of a live source; None = forever (files never reconnect)."""
    rtsp_transport: RtspTransport = "tcp"
    relink: bool = True
    """A new face track that looks like one lost within a few seconds, near where it was lost,
    continues it: same id, window history and verdict (``--no-relink`` turns it off)."""

    def __post_init__(self) -> None:
        _paths_as_paths(
            self,
            (
                "weights",
                "default_weights",
                "detector_model",
                "model_cache",
                "onnx_cache",
                "engine_dir",
            ),
        )
        if self.weights is not None and self.untrained:
            raise ValueError("--weights and --untrained exclude each other")
        checks = (
            ("--detector", self.detector in DETECTORS),
            ("--backend", self.backend in BACKENDS),
            ("--precision", self.precision in PRECISIONS),
            ("--rtsp-transport", self.rtsp_transport in get_args(RtspTransport)),
            ("--detect-every", self.detect_every >= 1),
            ("--detect-size", self.detect_size >= 32),
            ("--stride", self.stride >= 1),
            ("--batch", self.batch >= 1),
            ("--window", self.window is None or self.window >= 1),
            ("--analysis-fps", self.analysis_fps is None or self.analysis_fps > 0),
            ("--max-seconds", self.max_seconds is None or self.max_seconds > 0),
            ("--threshold", self.threshold is None or 0.0 <= self.threshold <= 1.0),
            ("--open-timeout", self.open_timeout > 0),
            ("--read-timeout", self.read_timeout > 0),
            ("--stall-timeout", self.stall_timeout > 0),
            ("--reconnect", self.reconnect is None or self.reconnect >= 0),
            ("--threads", self.threads is None or self.threads >= 1),
        )
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"{flag}: value out of range")


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    """Which outputs an analysis has: JSON lines (a path, or ``-`` for standard output), the
    annotated overlay video, the JSON + PNG report, Prometheus metrics on
    ``metrics_host:metrics_port`` (0 = any free port), and FAKE alerts to a ``webhook`` URL
    and/or an ``mqtt`` URL (``alert_recover``: also when the verdict leaves FAKE). All are
    opened before any decoding."""

    jsonl: str | None = None
    overlay: Path | None = None
    report: Path | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    webhook: str | None = None
    mqtt: str | None = None
    alert_recover: bool = False

    def __post_init__(self) -> None:
        _paths_as_paths(self, ("overlay", "report"))
        if self.jsonl is not None:
            object.__setattr__(self, "jsonl", str(self.jsonl))
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError("--metrics-port: value out of range")
        for flag, url, schemes in (
            ("--webhook", self.webhook, ("http", "https")),
            ("--mqtt", self.mqtt, ("mqtt",)),
        ):
            parts = urlsplit(url) if url is not None else None
            if parts is not None and (parts.scheme not in schemes or not parts.hostname):
                # The URL itself is not repeated: it may hold a password.
                raise ValueError(f"{flag}: expected a {' or '.join(schemes)}:// URL")


def _paths_as_paths(config: object, names: tuple[str, ...]) -> None:
    """Accept ``str`` (or any path-like) for path fields of a frozen config: store ``Path``."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not isinstance(value, Path):
            object.__setattr__(config, name, Path(value))
