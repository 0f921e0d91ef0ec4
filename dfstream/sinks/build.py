"""Opening every configured output of a run, in one place: ``--jsonl``, ``--report``,
``--overlay``, ``--metrics-port`` (Prometheus), ``--webhook`` and ``--mqtt`` (FAKE alerts).

All of them are opened while the run is built, before any source is decoded, so that a path
that cannot be written ends the run with ``OutputError`` (exit 6) before any work is done;
whatever was opened is closed again when a later one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dfstream.backends.base import InferenceBackend
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.model.checkpoint import LoadedModel
from dfstream.pipeline.runner import PipelineSettings
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.sinks.alert_transports import open_transport
from dfstream.sinks.alerts import AlertSink
from dfstream.sinks.base import Sink
from dfstream.sinks.jsonl import JsonlSink
from dfstream.sinks.metrics import MetricsSink
from dfstream.sinks.overlay import OverlaySettings, OverlaySink
from dfstream.sinks.report import ReportSink
from dfstream.sources import SourceSpec, redact


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return value


def report_header(
    config: AnalysisConfig,
    outputs: OutputConfig,
    loaded: LoadedModel,
    backend: InferenceBackend,
    scoring: ScoringSettings | None = None,
) -> dict[str, Any]:
    """What a report says about how it was made: backend, model, the threshold in use and
    where it came from, and every setting."""
    settings: dict[str, Any] = {}
    for key, value in (asdict(config) | asdict(outputs)).items():
        if key == "sources":
            value = [redact(s) for s in value]
        elif isinstance(value, str):
            value = redact(value)  # --webhook, --mqtt URLs may carry a password
        settings[key] = _plain(value)
    spec = loaded.spec
    scoring = scoring or ScoringSettings()
    return {
        "untrained": loaded.untrained,
        "backend": backend.describe(),
        "threshold": {
            "value": scoring.threshold,
            "source": scoring.threshold_source,
            "rule": scoring.threshold_rule,
            "hysteresis": scoring.hysteresis,
        },
        "model": {
            "name": loaded.name,
            "kind": loaded.kind,
            "origin": loaded.origin,
            "window": spec.window,
            "input_size": spec.input_size,
            "backbone": spec.backbone,
        },
        "settings": settings,
    }


def overlay_settings(settings: PipelineSettings, *, untrained: bool) -> OverlaySettings:
    """How long overlay frames may wait for their scores, from the pipeline's settings."""
    analyzer = settings.analyzer
    return OverlaySettings(
        window=settings.window,
        stride=settings.stride,
        detect_every=analyzer.detect_every,
        max_misses=analyzer.max_misses,
        analysis_fps=analyzer.analysis_fps,
        threshold=settings.scoring.threshold,
        untrained=untrained,
    )


def model_name(loaded: LoadedModel) -> str:
    """How alerts name the model: its name (``LoadedModel.name``; "untrained") and backbone."""
    spec = loaded.spec
    if loaded.untrained:
        return f"{spec.backbone} untrained (seed {loaded.info.get('seed', 0)})"
    return f"{loaded.name} ({spec.backbone}, T={spec.window})"


def open_early_sinks(outputs: OutputConfig) -> list[Sink]:
    """The outputs that need nothing but their path (``--jsonl``): opened first, before the
    model loads, so that a bad path fails at once."""
    return [JsonlSink.open(outputs.jsonl)] if outputs.jsonl is not None else []


def open_network_sinks(
    outputs: OutputConfig,
    *,
    model: str,
    threshold: float,
    notice: Callable[[str], None] = lambda _message: None,
) -> list[Sink]:
    """Prometheus metrics and FAKE alerts (webhook, MQTT): the outputs a cluster driver opens
    too. ``model`` names the model in alerts. Metrics still need ``MetricsSink.attach``.
    Raises ``OutputError`` (after closing what was opened) when one cannot be opened."""
    sinks: list[Sink] = []
    try:
        if outputs.metrics_port is not None:
            metrics = MetricsSink.open(outputs.metrics_host, outputs.metrics_port)
            sinks.append(metrics)
            notice(f"metrics on {metrics.url}")
        for kind, url in (("webhook", outputs.webhook), ("mqtt", outputs.mqtt)):
            if url is None:
                continue
            alerts = AlertSink(
                open_transport(kind, url),
                name=kind,
                model=model,
                threshold=threshold,
                recover=outputs.alert_recover,
                notice=notice,
            )
            alerts.start()
            sinks.append(alerts)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def open_run_sinks(
    outputs: OutputConfig,
    *,
    config: AnalysisConfig,
    loaded: LoadedModel,
    backend: InferenceBackend,
    settings: PipelineSettings,
    streams: Sequence[tuple[str, SourceSpec]],
    stopping: Callable[[], bool],
    notice: Callable[[str], None] = lambda _message: None,
) -> list[Sink]:
    """The outputs that describe the run (``--report``, ``--overlay``, metrics, alerts);
    ``streams`` are the (stream id, spec) pairs known now; ``notice`` hears where metrics are
    served and alert outages. Raises ``OutputError`` (after closing what was opened) when one
    cannot be written."""
    sinks = open_network_sinks(
        outputs, model=model_name(loaded), threshold=settings.scoring.threshold, notice=notice
    )
    try:
        if outputs.report is not None:
            header = report_header(config, outputs, loaded, backend, settings.scoring)
            sinks.append(ReportSink.open(outputs.report, header=header, scoring=settings.scoring))
        if outputs.overlay is not None:
            sinks.append(
                OverlaySink.open(
                    outputs.overlay,
                    streams=streams,
                    settings=overlay_settings(settings, untrained=loaded.untrained),
                    stopping=stopping,
                )
            )
    except BaseException:
        for sink in sinks:
            if isinstance(sink, ReportSink):
                sink.abort()
            else:
                sink.close()
        raise
    return sinks
