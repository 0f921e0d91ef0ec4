"""Opening the visual outputs of a run (``--overlay`` and ``--report``) from its config.

Both are opened while the run is prepared, before any source is decoded, so that a path that
cannot be written ends the run with ``OutputError`` (exit 6) before any work is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dfstream.backends.base import InferenceBackend
from dfstream.config import AnalyzeConfig
from dfstream.model.checkpoint import LoadedModel
from dfstream.pipeline.runner import PipelineSettings
from dfstream.sinks.base import Sink
from dfstream.sinks.overlay import OverlaySettings, OverlaySink
from dfstream.sinks.report import ReportSink
from dfstream.sources import SourceSpec, redact


def report_header(
    config: AnalyzeConfig, loaded: LoadedModel, backend: InferenceBackend
) -> dict[str, Any]:
    """What a report says about how it was made: backend, model and every setting."""
    settings: dict[str, Any] = {}
    for key, value in asdict(config).items():
        if key == "sources":
            value = [redact(s) for s in value]
        elif isinstance(value, Path):
            value = str(value)
        settings[key] = value
    spec = loaded.spec
    return {
        "untrained": loaded.untrained,
        "backend": backend.describe(),
        "model": {
            "kind": loaded.kind,
            "origin": loaded.origin,
            "window": spec.window,
            "input_size": spec.input_size,
            "backbone": spec.backbone,
        },
        "settings": settings,
    }


def open_outputs(
    config: AnalyzeConfig,
    *,
    loaded: LoadedModel,
    backend: InferenceBackend,
    settings: PipelineSettings,
    streams: Sequence[tuple[str, SourceSpec]],
    stopping: Callable[[], bool],
) -> tuple[list[Sink], OverlaySink | None]:
    """Open ``--report`` and ``--overlay`` (if asked for); ``streams`` are (id, source) pairs.

    Returns the sinks to add and the overlay sink, whose ``tap`` and ``track_ended`` the
    pipeline must call. Whatever was opened is closed again if a later output fails.
    """
    sinks: list[Sink] = []
    overlay: OverlaySink | None = None
    try:
        if config.report is not None:
            header = report_header(config, loaded, backend)
            sinks.append(ReportSink.open(config.report, header=header, scoring=settings.scoring))
        if config.overlay is not None:
            analyzer = settings.analyzer
            overlay = OverlaySink.open(
                config.overlay,
                streams=streams,
                settings=OverlaySettings(
                    window=settings.window,
                    stride=settings.stride,
                    detect_every=analyzer.detect_every,
                    max_misses=analyzer.max_misses,
                    analysis_fps=analyzer.analysis_fps,
                    threshold=settings.scoring.threshold,
                    untrained=loaded.untrained,
                ),
                stopping=stopping,
            )
            sinks.append(overlay)
    except BaseException:
        for sink in sinks:
            if isinstance(sink, ReportSink):
                sink.abort()
        raise
    return sinks, overlay
