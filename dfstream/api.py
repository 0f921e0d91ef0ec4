"""The library API: build an analysis from a config, start it, watch it, change it, stop it.

```python
import dfstream

config = dfstream.AnalysisConfig(sources=("clip.mp4",), untrained=True)
with dfstream.Analysis(config, outputs=dfstream.OutputConfig(jsonl="scores.jsonl")) as run:
    run.start()
    for event in run.events():
        if isinstance(event, dfstream.ScoreEvent):
            print(event.stream_id, event.track_id, event.score)
print(run.result.summaries)
```

``Analysis(...)`` does everything that can fail before decoding (model, backend, detector,
outputs) and raises a ``DfstreamError`` subclass; ``start()`` runs the pipeline on a background
thread; ``events()`` / ``on_event`` deliver events, ``snapshots()`` the live state;
``add_source`` / ``remove_source`` change the sources while it runs; ``stop()`` and
``join()`` end it, from any thread, with every output finalised. Notices (which detector or
backend was chosen, and why) go to ``on_notice`` (default: the ``dfstream`` logger).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from dfstream.backends import create_backend
from dfstream.backends.base import InferenceBackend
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.cputime import share_opencv_threads
from dfstream.faces import (
    AnalyzerSettings,
    FaceDetector,
    RelinkSettings,
    make_detector,
    margin_for_detector,
)
from dfstream.memory import steady_malloc
from dfstream.model.checkpoint import LoadedModel, load_weights, untrained_model
from dfstream.pipeline.runner import Pipeline, PipelineSettings, stream_ids
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.pipeline.state import StreamSnapshot
from dfstream.sinks.base import Sink, SinkFailure, SinkGroup
from dfstream.sinks.build import open_early_sinks, open_run_sinks
from dfstream.sinks.metrics import MetricsSink
from dfstream.sinks.stream import CallbackSink, EventStream
from dfstream.sources import LiveSettings, Source, expand_sources, open_source
from dfstream.types import Event, StreamSummary, Verdict

_log = logging.getLogger("dfstream")


def load_model(config: AnalysisConfig) -> LoadedModel:
    """The model asked for: ``weights``, ``untrained``, else the default model
    (``default_weights``, else the one shipped in the package); an error saying how to give
    one when the default is absent."""
    from dfstream.model.shipped import load_default_model

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
    return load_default_model(config.default_weights, window=config.window)


def scoring_settings(config: AnalysisConfig, loaded: LoadedModel) -> ScoringSettings:
    """Verdict thresholds: ``--threshold`` when given, else the one calibrated for the model
    (its checkpoint's info), else 0.5; the settings record which."""
    if config.threshold is not None:
        return ScoringSettings(
            threshold=config.threshold,
            hysteresis=config.hysteresis,
            threshold_source="--threshold",
        )
    if loaded.threshold is not None:
        return ScoringSettings(
            threshold=loaded.threshold,
            hysteresis=config.hysteresis,
            threshold_source="checkpoint",
            threshold_rule=loaded.threshold_rule,
        )
    return ScoringSettings(hysteresis=config.hysteresis, threshold_source="default")


def detector_factory(
    config: AnalysisConfig, notice: Callable[[str], None]
) -> Callable[[], FaceDetector]:
    """A factory making one detector per analyzer thread (OpenCV detectors are not shared).

    The first detector is made here, so a bad ``detector_model`` fails before any decoding,
    and the ``auto`` notice is given once. OpenCV's pool is sized for sharing the cores
    (``dfstream.cputime.share_opencv_threads``).
    """
    share_opencv_threads()
    first = make_detector(
        config.detector,
        model_path=config.detector_model,
        cache_dir=config.model_cache,
        notice=notice,
        max_side=config.detect_size,
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
            max_side=config.detect_size,
        )

    return factory


def pipeline_settings(config: AnalysisConfig, loaded: LoadedModel) -> PipelineSettings:
    """Pipeline settings from the config and the model's own conventions."""
    spec = loaded.spec
    return PipelineSettings(
        analyzer=AnalyzerSettings(
            analysis_fps=config.analysis_fps,
            detect_every=config.detect_every,
            max_seconds=config.max_seconds,
            crop_margin=margin_for_detector(config.detector, spec.crop_margin),
            crop_size=spec.input_size,
            color_order=spec.color_order,
            relink=RelinkSettings() if config.relink else None,
        ),
        scoring=scoring_settings(config, loaded),
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


@dataclass(frozen=True)
class RunResult:
    """How an analysis ended: one summary per source, the outputs that failed, whether it was
    stopped before its sources ended."""

    summaries: tuple[StreamSummary, ...]
    sink_failures: tuple[SinkFailure, ...]
    stopped: bool

    @property
    def any_fake(self) -> bool:
        """True when some source's whole-video verdict is FAKE."""
        return any(s.verdict is Verdict.FAKE for s in self.summaries)

    @property
    def source_errors(self) -> tuple[str, ...]:
        """The errors of the sources that failed."""
        return tuple(s.error for s in self.summaries if s.error)


class Analysis:
    """One analysis run: sources in, events and outputs out (see the module docstring).

    ``sinks`` are extra event consumers (``dfstream.sinks.base.Sink``; frame sinks get frames
    too); ``on_event`` is called with every event on the inference thread (keep it quick);
    ``persistent`` keeps the run going when its last source ends, until ``stop()`` (for
    services that add sources over time). ``model`` replaces the one the config names and
    ``opener`` opens each source (benchmarks inject a tiny model and real-time pacing).
    """

    def __init__(
        self,
        config: AnalysisConfig,
        *,
        outputs: OutputConfig | None = None,
        sinks: Iterable[Sink] = (),
        on_event: Callable[[Event], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_sink_failure: Callable[[SinkFailure], None] | None = None,
        persistent: bool = False,
        model: LoadedModel | None = None,
        opener: Callable[..., Source] = open_source,
    ) -> None:
        self.config = config
        self.outputs = outputs or OutputConfig()
        notice = on_notice or _log.info
        steady_malloc()  # long runs keep a flat RSS (dfstream.memory)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        specs = expand_sources(config.sources)
        opened = open_early_sinks(self.outputs)
        try:
            self.model = model if model is not None else load_model(config)
            self.backend: InferenceBackend = create_backend(
                config.backend,
                self.model,
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
            self.settings = pipeline_settings(config, self.model)
            opened += open_run_sinks(
                self.outputs,
                config=config,
                loaded=self.model,
                backend=self.backend,
                settings=self.settings,
                streams=list(zip(stream_ids(specs), specs, strict=True)),
                stopping=self._stop.is_set,
                notice=notice,
            )
        except BaseException:
            SinkGroup(opened).close()
            raise
        extra = list(sinks)
        if on_event is not None:
            extra.append(CallbackSink(on_event))
        self.sinks = SinkGroup([*opened, *extra], on_failure=on_sink_failure)
        self.pipeline = Pipeline(
            specs,
            backend=self.backend,
            detector_factory=factory,
            settings=self.settings,
            sink=self.sinks,
            untrained=self.model.untrained,
            model_name=self.model.name,
            opener=opener,
            persistent=persistent,
            stop=self._stop,
        )
        for sink in opened:
            if isinstance(sink, MetricsSink):
                sink.attach(self.pipeline.snapshots, self.pipeline.batch_stats)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Analysis:
        """Start analysing on a background thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("Analysis.start() was already called")
        self._thread = threading.Thread(target=self._run, name="dfstream-inference", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        summaries: Sequence[StreamSummary] = ()
        try:
            summaries = self.pipeline.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self._error = exc
        finally:
            self.sinks.close()
            self.backend.close()
            self._result = RunResult(
                summaries=tuple(summaries),
                sink_failures=tuple(self.sinks.failures),
                stopped=self.pipeline.stopping,
            )
            self._done.set()

    def run(self) -> RunResult:
        """Start and wait for the end: the blocking form of ``start()`` + ``join()``."""
        self.start()
        return self.join()

    def stop(self) -> None:
        """Stop every source; the run drains and finalises its outputs (any thread)."""
        self.pipeline.stop()

    def join(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end; re-raise an internal failure of the pipeline.

        Raises ``TimeoutError`` when it is still running after ``timeout`` seconds."""
        if self._thread is None:
            raise RuntimeError("Analysis.join() before start()")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the analysis is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def running(self) -> bool:
        """True between ``start()`` and the end of the run."""
        return self._thread is not None and not self._done.is_set()

    @property
    def result(self) -> RunResult:
        """The result of a finished run (see ``join``)."""
        return self.join(timeout=0)

    def close(self) -> None:
        """Stop and wait if running; finalise the outputs of a run that never started."""
        if self._thread is None:
            self.pipeline.stop()
            self.sinks.close()
            self.backend.close()
            return
        self.stop()
        self._done.wait()

    def __enter__(self) -> Analysis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None or self._thread is None or self.pipeline.persistent:
            self.close()  # a persistent run has no last source to end it: stop it
        else:
            self._done.wait()

    # -- while it runs --------------------------------------------------------------------

    def events(self, *, maxsize: int = 1024) -> Iterator[Event]:
        """Every event from now on, until the run ends (lossless: when the consumer falls
        ``maxsize`` events behind, the pipeline waits for it). Closing the iterator early
        unsubscribes it."""
        stream = EventStream(maxsize=maxsize)
        if self._done.is_set():
            return iter(())
        self.sinks.add(stream)
        return stream.iterate(done=self._done)

    def snapshots(self) -> list[StreamSnapshot]:
        """The live state of every stream (counters, faces, verdicts), for rendering."""
        return self.pipeline.snapshots()

    def add_source(self, source: str) -> list[str]:
        """Add a source (a folder adds each of its videos); returns the new stream ids."""
        return [self.pipeline.add_source(spec) for spec in expand_sources([source])]

    def remove_source(self, stream_id: str) -> None:
        """Stop one source; it ends with its summary, the others go on."""
        self.pipeline.remove_source(stream_id)
