"""The one frozen configuration of an analysis run, built at the CLI edge.

Nothing below ``cli.py`` reads environment variables or ``argparse`` namespaces: stages receive
the fields they need from this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DetectorKind = Literal["auto", "yunet", "haar", "none"]


@dataclass(frozen=True, kw_only=True)
class AnalyzeConfig:
    """Everything ``dfstream SOURCE...`` was asked to do."""

    sources: tuple[str, ...]
    weights: Path | None = None
    untrained: bool = False
    seed: int = 0
    detector: DetectorKind = "auto"
    detector_model: Path | None = None
    model_cache: Path | None = None
    detect_every: int = 5
    analysis_fps: float | None = None
    window: int | None = None
    stride: int = 5
    batch: int = 16
    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    onnx_cache: Path | None = None
    engine_dir: Path | None = None
    cuda_graphs: bool = False
    threshold: float = 0.5
    hysteresis: float = 0.05
    jsonl: str | None = None
    overlay: Path | None = None
    report: Path | None = None
    max_seconds: float | None = None
    dashboard: bool = True
    fail_on_fake: bool = False
    debug: bool = False
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    stall_timeout: float = 10.0
    reconnect: int | None = None
    """Reconnect attempts per outage of a live source; None = forever (files never reconnect)."""
    rtsp_transport: Literal["tcp", "udp"] = "tcp"

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("expected at least one source")
        if self.weights is not None and self.untrained:
            raise ValueError("--weights and --untrained exclude each other")
        checks = (
            ("--detect-every", self.detect_every >= 1),
            ("--stride", self.stride >= 1),
            ("--batch", self.batch >= 1),
            ("--window", self.window is None or self.window >= 1),
            ("--analysis-fps", self.analysis_fps is None or self.analysis_fps > 0),
            ("--max-seconds", self.max_seconds is None or self.max_seconds > 0),
            ("--threshold", 0.0 <= self.threshold <= 1.0),
            ("--open-timeout", self.open_timeout > 0),
            ("--read-timeout", self.read_timeout > 0),
            ("--stall-timeout", self.stall_timeout > 0),
            ("--reconnect", self.reconnect is None or self.reconnect >= 0),
            ("--precision", self.precision in ("auto", "fp32", "bf16", "fp16")),
            ("--threads", self.threads is None or self.threads >= 1),
        )
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"{flag}: value out of range")
