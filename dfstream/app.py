"""Assembles a run from an ``AnalyzeConfig``: model, backend, detector, sinks, pipeline.

``cli.py`` owns argument parsing, signals and exit codes; ``dfstream bench`` and tests build
runs through the same functions here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from dfstream.backends import create_backend
from dfstream.backends.base import InferenceBackend
from dfstream.config import AnalyzeConfig
from dfstream.errors import WeightsError
from dfstream.faces import FaceDetector, make_detector
from dfstream.model.checkpoint import WEIGHTS_HELP, LoadedModel, load_weights, untrained_model
from dfstream.pipeline.runner import Pipeline, PipelineSettings, stream_ids
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.pipeline.stages import AnalyzerSettings
from dfstream.sinks.base import Sink, SinkGroup
from dfstream.sinks.console import EventLog
from dfstream.sinks.jsonl import JsonlSink
from dfstream.sinks.outputs import open_outputs
from dfstream.sources import LiveSettings, Source, expand_sources, open_source
from dfstream.types import StreamSummary


def load_model(config: AnalyzeConfig) -> LoadedModel:
    """The model asked for: ``--weights``, ``--untrained``, or an error saying how to get one."""
    if config.weights is not None:
        return load_weights(config.weights, window=config.window)
    if config.untrained:
        loaded = untrained_model(seed=config.seed)
        if config.window is not None:
            return LoadedModel(
                loaded.model,
                loaded.spec.replace(window=config.window),
                loaded.kind,
                loaded.origin,
                loaded.info,
            )
        return loaded
    raise WeightsError(f"no model given: {WEIGHTS_HELP}")


def detector_factory(
    config: AnalyzeConfig, notice: Callable[[str], None]
) -> Callable[[], FaceDetector]:
    """A factory making one detector per analyzer thread (OpenCV detectors are not shared).

    The first detector is made here, so a bad ``--detector-model`` fails before any decoding,
    and the ``auto`` notice is printed once.
    """
    first = make_detector(
        config.detector,
        model_path=config.detector_model,
        cache_dir=config.model_cache,
        notice=notice,
    )
    handed_out = [False]

    def factory() -> FaceDetector:
        if not handed_out[0]:
            handed_out[0] = True
            return first
        return make_detector(
            config.detector,
            model_path=config.detector_model,
            cache_dir=config.model_cache,
            notice=lambda _msg: None,
        )

    return factory


def pipeline_settings(config: AnalyzeConfig, loaded: LoadedModel) -> PipelineSettings:
    """Pipeline settings from the config and the model's own conventions."""
    spec = loaded.spec
    return PipelineSettings(
        analyzer=AnalyzerSettings(
            analysis_fps=config.analysis_fps,
            detect_every=config.detect_every,
            max_seconds=config.max_seconds,
            iou_threshold=0.3,
            max_misses=3,
            # Whole-frame "detections" are already face crops: no margin around them.
            crop_margin=0.0 if config.detector == "none" else spec.crop_margin,
            crop_size=spec.input_size,
            color_order=spec.color_order,
        ),
        scoring=ScoringSettings(threshold=config.threshold, hysteresis=config.hysteresis),
        window=spec.window,
        stride=config.stride,
        batch=config.batch,
        live=LiveSettings(
            open_timeout=config.open_timeout,
            read_timeout=config.read_timeout,
            stall_timeout=config.stall_timeout,
            reconnect=config.reconnect,
            transport=config.rtsp_transport,
        ),
    )


@dataclass
class Run:
    """A prepared run: everything is open and validated; ``execute`` does the work."""

    config: AnalyzeConfig
    loaded: LoadedModel
    backend: InferenceBackend
    pipeline: Pipeline
    sinks: SinkGroup

    def execute(self) -> list[StreamSummary]:
        """Run the pipeline; sinks are finalised whatever happens."""
        try:
            return self.pipeline.run()
        finally:
            self.sinks.close()


def prepare(
    config: AnalyzeConfig,
    *,
    console: Console,
    extra_sinks: list[Sink] | None = None,
    model: LoadedModel | None = None,
    opener: Callable[..., Source] = open_source,
) -> Run:
    """Open outputs, load the model, build backend and detector: everything that can fail
    before decoding starts fails here.

    ``model`` replaces the one the config names (benchmarks inject a tiny model); ``opener``
    opens each source (benchmarks wrap it to play files in real time)."""
    specs = expand_sources(config.sources)  # the one place source strings are parsed
    sinks: list[Sink] = []
    if config.jsonl is not None:
        sinks.append(JsonlSink.open(config.jsonl))
    notice = lambda msg: console.print(f"dfstream: {msg}", highlight=False)  # noqa: E731
    built: list[Pipeline] = []  # the overlay asks whether the pipeline is stopping
    try:
        loaded = model if model is not None else load_model(config)
        backend = create_backend(
            config.backend,
            loaded,
            device=config.device,
            precision=config.precision,
            threads=config.threads,
            onnx_cache=config.onnx_cache,
            engine_dir=config.engine_dir,
            sources=specs,
            batch=config.batch,
            cuda_graphs=config.cuda_graphs,
            notice=notice,
        )
        factory = detector_factory(config, notice)
        settings = pipeline_settings(config, loaded)
        outputs, overlay = open_outputs(
            config,
            loaded=loaded,
            backend=backend,
            settings=settings,
            streams=list(zip(stream_ids(specs), specs, strict=True)),
            stopping=lambda: bool(built) and built[0].stopping,
        )
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    sinks.append(EventLog(console))
    sinks.extend(outputs)
    sinks.extend(extra_sinks or [])
    group = SinkGroup(sinks)
    pipeline = Pipeline(
        specs,
        backend=backend,
        detector_factory=factory,
        settings=settings,
        sink=group,
        untrained=loaded.untrained,
        frame_tap=None if overlay is None else overlay.tap,
        on_track_end=None if overlay is None else overlay.track_ended,
        opener=opener,
    )
    built.append(pipeline)
    return Run(config, loaded, backend, pipeline, group)
