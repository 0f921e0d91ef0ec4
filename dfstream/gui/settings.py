"""What the desktop app remembers between runs, and how its choices become a run's config.

Two small JSON files in the user's config folder (``$XDG_CONFIG_HOME/dfstream/``, else
``~/.config/dfstream/``; the folder is found by ``dfstream.cli.gui`` and passed down):

* ``gui.json``: the model choice (shipped default, a checkpoint file, or untrained), the
  threshold, the face detector and whether runs write the annotated video;
* ``recent.json``: the last sources opened, newest first. A source with credentials in it
  (``rtsp://user:password@...``) is never written down.

A missing or unreadable file gives the defaults: the app must start whatever is on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from dfstream.config import DETECTORS, AnalysisConfig, DetectorKind, OutputConfig

ModelChoice = Literal["default", "checkpoint", "untrained"]
"""``default`` = the model shipped with dfstream (``AnalysisConfig`` with no weights);
``checkpoint`` = a file the user picked; ``untrained`` = random weights, for pipeline checks."""

MODEL_CHOICES: tuple[str, ...] = get_args(ModelChoice)
SETTINGS_FILE = "gui.json"
RECENT_FILE = "recent.json"
MAX_RECENT = 12

JSONL_NAME = "scores.jsonl"
REPORT_NAME = "report.json"
OVERLAY_NAME = "overlay.mp4"


@dataclass(frozen=True, kw_only=True)
class GuiSettings:
    """The app's preferences (see the module docstring). Invalid values raise ``ValueError``."""

    model: ModelChoice = "default"
    checkpoint: Path | None = None
    threshold: float | None = None
    """FAKE at or above this score; None = the threshold calibrated for the model (else 0.5)."""
    detector: DetectorKind = "auto"
    overlay: bool = True
    """Write the annotated video during each run, so that Save can keep it."""

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not isinstance(self.checkpoint, Path):
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        if self.model not in MODEL_CHOICES:
            raise ValueError(
                f"model: expected one of {', '.join(MODEL_CHOICES)} but got {self.model}"
            )
        if self.model == "checkpoint" and self.checkpoint is None:
            raise ValueError("model: a checkpoint is chosen but no file is given")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold: expected a number in [0, 1] but got {self.threshold}")
        if self.detector not in DETECTORS:
            raise ValueError(
                f"detector: expected one of {', '.join(DETECTORS)} but got {self.detector}"
            )

    def describe_model(self) -> str:
        """The model choice in a few words, for the toolbar and the status line."""
        if self.model == "checkpoint" and self.checkpoint is not None:
            return f"checkpoint {self.checkpoint.name}"
        if self.model == "untrained":
            return "untrained (pipeline check: scores are meaningless)"
        return "shipped default model"

    def describe_threshold(self) -> str:
        """The threshold choice in a few words, for the status line."""
        return "the model's" if self.threshold is None else f"{self.threshold:.2f}"

    def to_json(self) -> dict[str, object]:
        """The settings as written to ``gui.json``."""
        data = asdict(self)
        data["checkpoint"] = None if self.checkpoint is None else str(self.checkpoint)
        return data

    @classmethod
    def from_json(cls, data: object) -> GuiSettings:
        """Settings from ``gui.json``'s content; unknown keys are ignored, bad values raise
        ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object but got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def with_model(self, model: ModelChoice, checkpoint: Path | None = None) -> GuiSettings:
        """A copy with another model choice (the checkpoint kept unless a new one is given)."""
        return replace(self, model=model, checkpoint=checkpoint or self.checkpoint)


def _write_json(path: Path, data: object) -> None:
    """Write ``data`` atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_settings(config_dir: Path) -> GuiSettings:
    """The saved preferences, or the defaults when there are none or they cannot be read."""
    data = _read_json(config_dir / SETTINGS_FILE)
    if data is None:
        return GuiSettings()
    try:
        return GuiSettings.from_json(data)
    except ValueError:
        return GuiSettings()


def save_settings(config_dir: Path, settings: GuiSettings) -> None:
    """Write the preferences to ``gui.json`` (raises ``OSError`` when the folder is not
    writable: the caller shows it)."""
    _write_json(config_dir / SETTINGS_FILE, settings.to_json())


class RecentSources:
    """The last sources opened, newest first, kept in ``recent.json``."""

    def __init__(self, path: Path, items: list[str] | None = None) -> None:
        self.path = path
        self.items: list[str] = list(items or [])

    @classmethod
    def load(cls, config_dir: Path) -> RecentSources:
        """The saved list (empty when there is none or it cannot be read)."""
        path = config_dir / RECENT_FILE
        data = _read_json(path)
        items = [s for s in data if isinstance(s, str) and s] if isinstance(data, list) else []
        return cls(path, items[:MAX_RECENT])

    def add(self, sources: list[str]) -> None:
        """Put ``sources`` first (once each); sources holding credentials are left out."""
        from dfstream.sources import redact

        fresh = [s for s in sources if s and redact(s) == s]
        kept = [s for s in self.items if s not in fresh]
        self.items = (list(dict.fromkeys(fresh)) + kept)[:MAX_RECENT]

    def save(self) -> None:
        """Write the list (raises ``OSError`` when it cannot be written)."""
        _write_json(self.path, self.items)


def analysis_config(
    settings: GuiSettings,
    sources: tuple[str, ...],
    *,
    model_cache: Path | None = None,
    default_weights: Path | None = None,
) -> AnalysisConfig:
    """The run's analysis config for ``sources`` with these preferences; "Shipped default
    model" leaves the weights unset, so the run loads the default model (``default_weights``,
    else the file shipped in the package)."""
    return AnalysisConfig(
        sources=sources,
        weights=settings.checkpoint if settings.model == "checkpoint" else None,
        untrained=settings.model == "untrained",
        default_weights=default_weights,
        detector=settings.detector,
        threshold=settings.threshold,
        model_cache=model_cache,
    )


def output_config(settings: GuiSettings, run_dir: Path) -> OutputConfig:
    """The CLI's outputs (``--jsonl``, ``--report``, ``--overlay``), written into ``run_dir``."""
    return OutputConfig(
        jsonl=str(run_dir / JSONL_NAME),
        report=run_dir / REPORT_NAME,
        overlay=run_dir / OVERLAY_NAME if settings.overlay else None,
    )
