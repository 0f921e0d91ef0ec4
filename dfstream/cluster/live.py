"""``dfstream SOURCES --ray ADDRESS``: live streams analysed on cluster nodes, events at the driver.

``RayAnalysis`` has the surface of ``dfstream.Analysis`` that the command uses (``start``,
``stop``, ``join``, ``running``, ``snapshots``, ``model.untrained``, ``backend.describe()``,
``settings.scoring``), so the dashboard, the plain progress lines, the summary table and the
exit codes are the local ones. Each source gets a ``StreamActor`` (``dfstream.cluster.actors``)
with ``--ray-cpus`` CPUs, placed by the first ``--ray-place`` rule that matches it (else spread
over the nodes). A driver thread long-polls every actor and hands the events to the driver's
sinks (JSONL, report, the dashboard's log, library sinks). Status events from the driver:

* ``placed``: the stream's actor started; the reason names the node (id prefix and host);
* ``waiting``: the stream's actor has not started after ``WAITING_AFTER_S``: no node can take
  it yet (nothing matches its placement, or no room), or it is still loading;
* ``restarting``: its node or actor was lost; a new actor is started wherever Ray finds room
  (the same placement rule), and the stream's ``connected`` follows from the new node.

A restarted stream starts its analysis afresh (its counters, and a file from its beginning).
``--overlay`` needs the frames, which stay on the nodes: it is refused with ``--ray``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from dfstream.api import RunResult
from dfstream.cluster.actors import StreamActor, StreamPoll
from dfstream.cluster.connect import check_started, connect, kill_actor, raise_if_init_failed
from dfstream.cluster.placement import PlaceRule, placement_for
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.errors import UsageError
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.pipeline.state import StreamSnapshot
from dfstream.scan.executor import WorkerStartError
from dfstream.sinks.base import Sink, SinkFailure, SinkGroup
from dfstream.sinks.build import open_early_sinks
from dfstream.sources import redact
from dfstream.types import StatusEvent, StreamSummary

WAITING_AFTER_S = 30.0
STOP_TIMEOUT_S = 15.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class RemoteModel:
    """What the driver knows of the model the actors load."""

    untrained: bool
    name: str | None = None


def driver_model(config: AnalysisConfig) -> tuple[RemoteModel, ScoringSettings]:
    """The model's name and the verdict thresholds, as the actors will resolve them, read at
    the driver from the checkpoint's info without building the model (an unreadable file is
    left for the actors to report)."""
    from dfstream.errors import WeightsError
    from dfstream.model.checkpoint import calibrated_threshold, checkpoint_info
    from dfstream.model.shipped import default_model_path

    if config.untrained:
        name = f"untrained (seed {config.seed})"
        threshold = 0.5 if config.threshold is None else config.threshold
        source = "default" if config.threshold is None else "--threshold"
        return RemoteModel(True, name), ScoringSettings(
            threshold, config.hysteresis, threshold_source=source
        )
    path = config.weights or config.default_weights or default_model_path()
    try:
        info = checkpoint_info(path)
    except WeightsError:
        info = {}
    given = info.get("name")
    name = given if isinstance(given, str) and given else path.name
    if config.threshold is not None:
        scoring = ScoringSettings(
            config.threshold, config.hysteresis, threshold_source="--threshold"
        )
    else:
        calibrated, rule = calibrated_threshold(info)
        if calibrated is None:
            scoring = ScoringSettings(hysteresis=config.hysteresis)
        else:
            scoring = ScoringSettings(
                calibrated, config.hysteresis, threshold_source="checkpoint", threshold_rule=rule
            )
    return RemoteModel(False, name), scoring


@dataclass(frozen=True)
class RemoteBackend:
    """The backends of the actors, in words (each actor says its own in its ``placed`` event)."""

    text: str

    def describe(self) -> str:
        """The text shown in the dashboard header and the summary."""
        return self.text


@dataclass(frozen=True)
class RemoteSettings:
    """The scoring settings the dashboard colours verdicts with."""

    scoring: ScoringSettings


@dataclass
class _Stream:
    """One source and the actor analysing it now."""

    source: str
    stream_id: str
    rule: PlaceRule | None
    handle: Any = None
    started: Any = None  # the pending start() reference
    polling: Any = None  # the pending poll() reference
    created_at: float = 0.0
    waiting_said: bool = False
    restarts: int = 0
    retry_at: float = 0.0
    done: bool = False
    snapshots: tuple[StreamSnapshot, ...] = ()
    ids: dict[str, str] = field(default_factory=dict)


def _unique(shown: str, taken: list[str]) -> str:
    return shown if shown not in taken else f"{shown}#{len(taken)}"


class RayAnalysis:
    """Live sources analysed by Ray actors (see the module docstring)."""

    def __init__(
        self,
        config: AnalysisConfig,
        *,
        address: str,
        placement: Sequence[PlaceRule] = (),
        cpus: float = 1.0,
        outputs: OutputConfig | None = None,
        sinks: Iterable[Sink] = (),
        on_notice: Callable[[str], None] | None = None,
        on_sink_failure: Callable[[SinkFailure], None] | None = None,
    ) -> None:
        self.config = config
        self.outputs = outputs or OutputConfig()
        if self.outputs.overlay is not None:
            raise UsageError(
                "--overlay needs the frames, which stay on the cluster nodes: "
                "drop --ray to write an overlay"
            )
        self._notice = on_notice or (lambda _message: None)
        self._ray = connect(address)
        self._class = self._ray.remote(StreamActor)
        self._cpus = cpus
        self.model, scoring = driver_model(config)
        self.backend = RemoteBackend(f"ray {address}: one actor per source")
        self.settings = RemoteSettings(scoring)
        taken: list[str] = []
        self._streams: list[_Stream] = []
        for source in config.sources:
            sid = _unique(redact(source), taken)
            taken.append(sid)
            self._streams.append(_Stream(source, sid, placement_for(source, tuple(placement))))
        opened = open_early_sinks(self.outputs)
        try:
            opened += self._event_sinks()
        except BaseException:
            SinkGroup(opened).close()
            raise
        self.sinks = SinkGroup([*opened, *sinks], on_failure=on_sink_failure)
        self._report_pending = self.outputs.report is not None
        self._stop = threading.Event()
        self._stop_sent_at: float | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._summaries: list[StreamSummary] = []
        self._error: BaseException | None = None
        self._result: RunResult | None = None

    def _event_sinks(self) -> list[Sink]:
        """Metrics and alerts, served and sent from the driver (as ``open_run_sinks`` opens
        them for a local run). The frames stay on the nodes: alerts carry no face snapshot,
        and the metrics have no CNN batch sizes."""
        from dfstream.pipeline.stats import BatchStats
        from dfstream.sinks.build import open_network_sinks
        from dfstream.sinks.metrics import MetricsSink

        sinks = open_network_sinks(
            self.outputs,
            model=self.model.name or "model",
            threshold=self.settings.scoring.threshold,
            notice=self._notice,
        )
        for sink in sinks:
            if isinstance(sink, MetricsSink):
                sink.attach(self.snapshots, BatchStats())
        return sinks

    # -- the Analysis surface -------------------------------------------------------------

    def start(self) -> RayAnalysis:
        """Create the actors and start the driver thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("RayAnalysis.start() was already called")
        for stream in self._streams:
            self._spawn(stream)
        self._thread = threading.Thread(target=self._run, name="dfstream-ray", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every stream; the actors finalise and their last events arrive (any thread)."""
        self._stop.set()

    @property
    def running(self) -> bool:
        """True between ``start()`` and the end of the run."""
        return self._thread is not None and not self._done.is_set()

    def join(self, timeout: float | None = None) -> RunResult:
        """Wait for the end (``TimeoutError`` after ``timeout``); re-raise a driver failure."""
        if self._thread is None:
            raise RuntimeError("RayAnalysis.join() before start()")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the analysis is still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def snapshots(self) -> list[StreamSnapshot]:
        """The latest state of every stream, as its actor last reported it."""
        out: list[StreamSnapshot] = []
        for stream in self._streams:
            out += [
                replace(s, stream_id=stream.ids.get(s.stream_id, s.stream_id))
                for s in stream.snapshots
            ]
        return out

    # -- the driver thread ----------------------------------------------------------------

    def _spawn(self, stream: _Stream) -> None:
        options: dict[str, Any] = {"num_cpus": self._cpus, "max_restarts": 0, "max_concurrency": 2}
        options.update(stream.rule.options() if stream.rule else {"scheduling_strategy": "SPREAD"})
        threads = max(1, int(self._cpus))
        stream.handle = self._class.options(**options).remote(self.config, stream.source, threads)
        stream.started = stream.handle.start.remote()
        stream.polling = None
        stream.created_at = time.monotonic()
        stream.waiting_said = False

    def _status(self, stream: _Stream, state: str, reason: str) -> None:
        self.sinks.handle(StatusEvent(stream.stream_id, state, reason, time.time()))

    def _deliver(self, stream: _Stream, poll: StreamPoll) -> None:
        for event in poll.events:
            sid = getattr(event, "stream_id", None)
            if sid:
                ours = stream.ids.setdefault(sid, self._id_for(stream, sid))
                event = replace(cast(Any, event), stream_id=ours)
            if isinstance(event, StreamSummary):
                self._summaries.append(event)
            self.sinks.handle(event)
        stream.snapshots = poll.snapshots

    def _id_for(self, stream: _Stream, actor_sid: str) -> str:
        """The driver's id for a stream id of the actor: the same, unless the source was given
        twice (``#n``, as a local run numbers it)."""
        return stream.stream_id if actor_sid == redact(stream.source) else actor_sid

    def _open_report(self, header: dict[str, Any]) -> None:
        from dfstream.sinks.report import ReportSink

        self._report_pending = False
        assert self.outputs.report is not None
        settings = {
            **header.get("settings", {}),
            "sources": [redact(s) for s in self.config.sources],
        }
        header = {
            **header,
            "backend": f"{self.backend.text} (first: {header.get('backend')})",
            "settings": settings,
        }
        self.sinks.add(
            ReportSink.open(self.outputs.report, header=header, scoring=self.settings.scoring)
        )

    def _started(self, stream: _Stream) -> None:
        ray = self._ray
        try:
            info = ray.get(stream.started)
        except ray.exceptions.RayActorError as exc:
            raise_if_init_failed(exc, f"the actor of {stream.stream_id}")
            self._lost(stream, exc)
            return
        stream.started = None
        check_started(info, stream.stream_id)
        if self._report_pending and info["header"] is not None:
            self._open_report(info["header"])
        where = f"ray node {info['node'][:12]} ({info['host']}), backend {info['backend']}"
        self._status(stream, "placed", where)

    def _lost(self, stream: _Stream, exc: BaseException) -> None:
        kill_actor(self._ray, stream.handle)
        stream.started = stream.polling = stream.handle = None
        if self._stop.is_set():
            stream.done = True
            return
        delay = RESTART_BACKOFF_S[min(stream.restarts, len(RESTART_BACKOFF_S) - 1)]
        stream.restarts += 1
        stream.retry_at = time.monotonic() + delay
        lost = f"its ray node or actor was lost ({type(exc).__name__})"
        self._status(stream, "restarting", f"{lost}; restarting it elsewhere in {delay:g} s")

    def _polled(self, stream: _Stream) -> None:
        ray = self._ray
        try:
            poll: StreamPoll = ray.get(stream.polling)
        except ray.exceptions.RayActorError as exc:
            self._lost(stream, exc)
            return
        stream.polling = None
        self._deliver(stream, poll)
        if poll.done:
            stream.done = True
            if poll.error and self._error is None:
                self._error = WorkerStartError(f"{stream.stream_id}: {poll.error}")
            kill_actor(ray, stream.handle)

    def _tick(self) -> None:
        now = time.monotonic()
        refs: dict[Any, tuple[_Stream, str]] = {}
        for stream in self._streams:
            if stream.done:
                continue
            if stream.handle is None and now >= stream.retry_at:
                self._spawn(stream)
            if stream.started is not None:
                refs[stream.started] = (stream, "start")
                if not stream.waiting_said and now - stream.created_at > WAITING_AFTER_S:
                    stream.waiting_said = True
                    need = stream.rule.describe() if stream.rule else f"{self._cpus:g} CPU"
                    self._status(
                        stream,
                        "waiting",
                        f"not started after {WAITING_AFTER_S:g} s: no ray node has room for it "
                        f"yet (needs {need}), or its actor is still loading the model",
                    )
            elif stream.handle is not None:
                if stream.polling is None:
                    stream.polling = stream.handle.poll.remote(0.5)
                refs[stream.polling] = (stream, "poll")
        if not refs:
            time.sleep(0.2)
            return
        ready, _ = self._ray.wait(list(refs), num_returns=1, timeout=1.0)
        if ready:
            ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in ready:
            stream, kind = refs[ref]
            if kind == "start":
                self._started(stream)
            else:
                self._polled(stream)

    def _stopping(self) -> None:
        now = time.monotonic()
        if self._stop_sent_at is None:
            self._stop_sent_at = now
            for stream in self._streams:
                if stream.handle is not None and stream.started is None:
                    stream.handle.stop.remote()
                elif not stream.done:  # not placed yet: nothing to finalise
                    stream.done = True
        elif now - self._stop_sent_at > STOP_TIMEOUT_S:
            for stream in self._streams:
                stream.done = True

    def _run(self) -> None:
        try:
            while not all(s.done for s in self._streams):
                if self._stop.is_set():
                    self._stopping()
                self._tick()
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self._error = exc
        finally:
            for stream in self._streams:
                kill_actor(self._ray, stream.handle)
            self.sinks.close()
            order = [s.stream_id for s in self._streams]
            summaries = sorted(
                self._summaries,
                key=lambda s: order.index(s.stream_id) if s.stream_id in order else len(order),
            )
            self._result = RunResult(
                tuple(summaries), tuple(self.sinks.failures), self._stop.is_set()
            )
            self._done.set()
