"""The desktop app's analysis runs, kept off the Tk thread.

A ``Session`` runs one analysis at a time through the library API (``dfstream.Analysis``) on a
background thread: that thread loads the model (cached between runs), builds the run, starts
it and waits for its end. Everything the window needs to know arrives as small messages on
``Session.messages``, a queue the Tk thread drains with ``after()``: it never waits on the
analysis. ``snapshots()`` and ``latest_frame()`` are quick, lock-protected copies.

Every run writes the CLI's outputs (JSONL, report JSON + PNG, annotated video) into its own
folder under the app's cache folder; Save copies them where the user wants. The last
``KEEP_RUNS`` run folders are kept, older ones removed when a run starts.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dfstream.errors import DfstreamError, UsageError, WeightsError
from dfstream.gui.settings import GuiSettings, analysis_config, output_config
from dfstream.sinks.base import Sink, SinkFailure
from dfstream.types import Event, Frame, StreamSummary, TrackBoxes

if TYPE_CHECKING:
    from dfstream.api import Analysis
    from dfstream.config import AnalysisConfig, OutputConfig
    from dfstream.model.checkpoint import LoadedModel
    from dfstream.pipeline.state import StreamSnapshot
    from dfstream.sources import Source

KEEP_RUNS = 10


@dataclass(frozen=True)
class Started:
    """Run ``run_id`` is built and starting: its model and backend in words."""

    run_id: int
    model: str
    backend: str
    untrained: bool
    threshold: float | None = None
    """The FAKE threshold the run uses (``--threshold``, the model's, or 0.5)."""


@dataclass(frozen=True)
class Failed:
    """Run ``run_id`` could not be built (bad checkpoint, no model, bad output path ...)."""

    run_id: int
    message: str


@dataclass(frozen=True)
class EventArrived:
    """An event of run ``run_id`` (score, verdict, status, summary, batch stats)."""

    run_id: int
    event: Event


@dataclass(frozen=True)
class Notice:
    """A notice of run ``run_id`` (which detector or backend was chosen, and why)."""

    run_id: int
    text: str


@dataclass(frozen=True)
class Finished:
    """Run ``run_id`` ended and its outputs in ``run_dir`` are finalised."""

    run_id: int
    run_dir: Path
    summaries: tuple[StreamSummary, ...]
    sink_failures: tuple[SinkFailure, ...]
    stopped: bool
    error: str | None = None
    """An internal failure of the run, in one line."""


@dataclass(frozen=True)
class Saved:
    """The outputs of run ``run_id`` were copied to ``folder`` (or not: ``error``)."""

    run_id: int
    folder: Path
    files: tuple[str, ...] = ()
    error: str | None = None


Message = Started | Failed | EventArrived | Notice | Finished | Saved


def save_outputs(run_dir: Path, folder: Path) -> tuple[Path, list[str]]:
    """Copy a finished run's outputs (JSONL, report JSON + PNG, annotated videos) into a new
    folder ``folder/dfstream-<run>``, so that names stay as the report refers to them and
    nothing already there is overwritten. Returns the new folder and the files' names."""
    target = folder / f"dfstream-{run_dir.name}"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"dfstream-{run_dir.name}-{n}"
    target.mkdir(parents=True)
    names = []
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and path.stat().st_size > 0:
            shutil.copy2(path, target / path.name)
            names.append(path.name)
    return target, names


def one_line(exc: BaseException) -> str:
    """An error as the window shows it: one line, credentials redacted; an unexpected error
    says its type."""
    from dfstream.sources import redact

    text = redact(" ".join(str(exc).split()))
    if isinstance(exc, DfstreamError):
        return text
    return f"internal error: {type(exc).__name__}: {text}" if text else type(exc).__name__


class PreviewSink(Sink):
    """A frame sink keeping only the latest frame of each stream and its tracked boxes.

    ``on_frame`` runs on the analyzer threads for every frame: it stores a reference under a
    lock and returns (no copy, no drawing); the window downscales and draws at its own rate.
    """

    name = "preview"

    def __init__(self) -> None:
        self._latest: dict[str, tuple[Frame, TrackBoxes]] = {}
        self._lock = threading.Lock()

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        """Keep ``frame`` as its stream's latest."""
        with self._lock:
            self._latest[frame.stream_id] = (frame, tracks)

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        """Nothing to do: the preview shows the boxes of the latest frame only."""

    def latest(self, stream_id: str) -> tuple[Frame, TrackBoxes] | None:
        """The latest frame of ``stream_id`` and its boxes, or None before the first."""
        with self._lock:
            return self._latest.get(stream_id)


def describe_model(loaded: LoadedModel) -> str:
    """The model a run uses, in a few words: its name (the checkpoint's, else its file's)."""
    if loaded.untrained:
        return loaded.origin
    return f"{loaded.name} ({loaded.kind})"


def _model_key(config: AnalysisConfig) -> tuple[object, ...]:
    """What identifies the model a config asks for (a changed checkpoint file reloads)."""
    if config.weights is not None:
        try:
            stamp = config.weights.stat().st_mtime_ns
        except OSError:
            stamp = None
        return ("weights", str(config.weights.resolve()), stamp)
    if config.untrained:
        return ("untrained", config.seed)
    return ("default", str(config.default_weights))


class Session:
    """Runs analyses one at a time for the window (see the module docstring).

    ``cache_dir`` holds the run folders; ``model_cache`` is the detector models' cache of
    ``AnalysisConfig``; ``opener`` replaces ``dfstream.sources.open_source`` (tests pace
    their clips in real time with it).
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        model_cache: Path | None = None,
        default_weights: Path | None = None,
        opener: Callable[..., Source] | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.model_cache = model_cache
        self.default_weights = default_weights
        self.messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._opener = opener
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._analysis: Analysis | None = None
        self._preview: PreviewSink | None = None
        self._stop_requested = False
        self._run_id = 0
        self._model: tuple[tuple[object, ...], LoadedModel] | None = None
        self._copies: list[threading.Thread] = []

    # -- what the Tk thread calls (all quick) ----------------------------------------------

    @property
    def busy(self) -> bool:
        """True from ``start()`` until the run's outputs are finalised."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, sources: Sequence[str], settings: GuiSettings) -> int:
        """Start analysing ``sources`` in the background; returns the run's id at once.

        Raises ``UsageError`` while another run is going and ``ValueError`` for settings the
        config refuses."""
        if self.busy:
            raise UsageError("a run is going: stop it first, or open sources to add them to it")
        config = analysis_config(
            settings,
            tuple(sources),
            model_cache=self.model_cache,
            default_weights=self.default_weights,
        )
        self._run_id += 1
        run_dir = self._new_run_dir()
        outputs = output_config(settings, run_dir)
        with self._lock:
            self._analysis, self._preview, self._stop_requested = None, PreviewSink(), False
        self._thread = threading.Thread(
            target=self._run,
            args=(self._run_id, config, outputs, run_dir),
            name=f"gui-run-{self._run_id}",
            daemon=True,
        )
        self._thread.start()
        return self._run_id

    def stop(self) -> None:
        """Stop the run (any time, also while it is being built); outputs are finalised."""
        with self._lock:
            self._stop_requested = True
            analysis = self._analysis
        if analysis is not None:
            analysis.stop()

    def add_source(self, source: str) -> list[str]:
        """Add a source to the running analysis; returns its stream ids. Raises
        ``UsageError`` when no analysis is running (or it is stopping)."""
        with self._lock:
            analysis = self._analysis
        if analysis is None or not analysis.running:
            raise UsageError("no analysis is running: press Start to analyse the new sources")
        return analysis.add_source(source)

    def snapshots(self) -> list[StreamSnapshot]:
        """The live state of every stream of the current run (empty before it is built)."""
        with self._lock:
            analysis = self._analysis
        return [] if analysis is None else analysis.snapshots()

    def latest_frame(self, stream_id: str) -> tuple[Frame, TrackBoxes] | None:
        """The latest decoded frame of a stream of the current run, with its boxes."""
        with self._lock:
            preview = self._preview
        return None if preview is None else preview.latest(stream_id)

    def save(self, run_id: int, run_dir: Path, folder: Path) -> None:
        """Copy run ``run_id``'s outputs into ``folder`` on a background thread; a ``Saved``
        message says where (or why not)."""

        def copy() -> None:
            try:
                target, names = save_outputs(run_dir, folder)
            except OSError as exc:
                self.messages.put(Saved(run_id, folder, error=f"cannot save to {folder}: {exc}"))
                return
            self.messages.put(Saved(run_id, target, tuple(names)))

        thread = threading.Thread(target=copy, name="gui-save", daemon=True)
        self._copies.append(thread)
        thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the run and wait for its thread and any copy in progress; False when they did
        not end within ``timeout`` seconds."""
        self.stop()
        deadline = time.monotonic() + timeout
        for thread in [self._thread, *self._copies]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t is not None and t.is_alive() for t in [self._thread, *self._copies])

    # -- the run thread --------------------------------------------------------------------

    def _new_run_dir(self) -> Path:
        runs = self.cache_dir / "runs"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            path = runs / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:
                continue
        raise UsageError(f"{runs}: too many run folders made this second")

    def _prune_runs(self, keep: Path) -> None:
        """Remove all but the newest ``KEEP_RUNS`` run folders."""
        runs = sorted((p for p in (self.cache_dir / "runs").iterdir() if p.is_dir()), reverse=True)
        for old in runs[KEEP_RUNS:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _load_model(self, config: AnalysisConfig) -> LoadedModel:
        from dfstream.api import load_model

        key = _model_key(config)
        if self._model is not None and self._model[0] == key:
            return self._model[1]
        loaded = load_model(config)
        self._model = (key, loaded)
        return loaded

    def _build(self, run_id: int, config: AnalysisConfig, outputs: OutputConfig) -> Analysis:
        from dfstream.api import Analysis

        assert self._preview is not None
        extra = {} if self._opener is None else {"opener": self._opener}
        return Analysis(
            config,
            outputs=outputs,
            sinks=[self._preview],
            on_event=lambda event: self.messages.put(EventArrived(run_id, event)),
            on_notice=lambda text: self.messages.put(Notice(run_id, text)),
            model=self._load_model(config),
            **extra,  # type: ignore[arg-type]
        )

    def _run(
        self, run_id: int, config: AnalysisConfig, outputs: OutputConfig, run_dir: Path
    ) -> None:
        self._prune_runs(keep=run_dir)
        try:
            analysis = self._build(run_id, config, outputs)
        except Exception as exc:  # noqa: BLE001 - shown in the window; the app goes on
            text = one_line(exc)
            if isinstance(exc, WeightsError):
                text += " (here: choose a checkpoint file or the untrained model under Model)"
            self.messages.put(Failed(run_id, text))
            return
        with self._lock:
            self._analysis = analysis
            stop_now = self._stop_requested
        if stop_now:  # Stop (or closing the window) while the model was loading
            analysis.close()
            self.messages.put(Finished(run_id, run_dir, (), (), stopped=True))
            return
        self.messages.put(
            Started(
                run_id,
                model=describe_model(analysis.model),
                backend=analysis.backend.describe(),
                untrained=analysis.model.untrained,
                threshold=analysis.settings.scoring.threshold,
            )
        )
        analysis.start()
        try:
            result = analysis.join()
        except Exception as exc:  # noqa: BLE001 - an internal failure: one line in the window
            self.messages.put(Finished(run_id, run_dir, (), (), stopped=True, error=one_line(exc)))
            return
        self.messages.put(
            Finished(
                run_id,
                run_dir,
                result.summaries,
                result.sink_failures,
                stopped=result.stopped,
            )
        )
