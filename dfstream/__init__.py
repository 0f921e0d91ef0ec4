"""dfstream: streaming, real-time deepfake video analysis.

The library API (see ``dfstream.api`` and the README's "Library" section)::

    import dfstream
    run = dfstream.Analysis(dfstream.AnalysisConfig(sources=("clip.mp4",), untrained=True))
    result = run.run()

``import dfstream`` is cheap and works on any machine: the public names below are imported on
first use, torch, PyAV and OpenCV by the stages that need them, and optional accelerators
(TensorRT, onnxruntime-gpu) only inside their backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Analysis": "dfstream.api",
    "RunResult": "dfstream.api",
    "AnalysisConfig": "dfstream.config",
    "OutputConfig": "dfstream.config",
    "DfstreamError": "dfstream.errors",
    "ExitCode": "dfstream.errors",
    "OutputError": "dfstream.errors",
    "SourceError": "dfstream.errors",
    "UsageError": "dfstream.errors",
    "WeightsError": "dfstream.errors",
    "BackendUnavailable": "dfstream.errors",
    "Sink": "dfstream.sinks.base",
    "FrameSink": "dfstream.sinks.base",
    "ThreadedSink": "dfstream.sinks.base",
    "SinkFailure": "dfstream.sinks.base",
    "StreamSnapshot": "dfstream.pipeline.state",
    "FaceSnapshot": "dfstream.pipeline.state",
    "BatchStatsEvent": "dfstream.types",
    "Event": "dfstream.types",
    "FaceCrop": "dfstream.types",
    "Frame": "dfstream.types",
    "ScoreEvent": "dfstream.types",
    "StatusEvent": "dfstream.types",
    "StreamSummary": "dfstream.types",
    "TrackSummary": "dfstream.types",
    "Verdict": "dfstream.types",
    "VerdictEvent": "dfstream.types",
}

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "BackendUnavailable",
    "BatchStatsEvent",
    "DfstreamError",
    "Event",
    "ExitCode",
    "FaceCrop",
    "FaceSnapshot",
    "Frame",
    "FrameSink",
    "OutputConfig",
    "OutputError",
    "RunResult",
    "ScoreEvent",
    "Sink",
    "SinkFailure",
    "SourceError",
    "StatusEvent",
    "StreamSnapshot",
    "StreamSummary",
    "ThreadedSink",
    "TrackSummary",
    "UsageError",
    "Verdict",
    "VerdictEvent",
    "WeightsError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dfstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from dfstream.api import Analysis, RunResult
    from dfstream.config import AnalysisConfig, OutputConfig
    from dfstream.errors import (
        BackendUnavailable,
        DfstreamError,
        ExitCode,
        OutputError,
        SourceError,
        UsageError,
        WeightsError,
    )
    from dfstream.pipeline.state import FaceSnapshot, StreamSnapshot
    from dfstream.sinks.base import FrameSink, Sink, SinkFailure, ThreadedSink
    from dfstream.types import (
        BatchStatsEvent,
        Event,
        FaceCrop,
        Frame,
        ScoreEvent,
        StatusEvent,
        StreamSummary,
        TrackSummary,
        Verdict,
        VerdictEvent,
    )
