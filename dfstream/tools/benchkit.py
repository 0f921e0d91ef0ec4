"""Measurement helpers shared by ``dfstream bench`` and the suites in ``benchmarks/``.

Everything here measures the real pipeline from outside: a score-collecting sink, a resource
clock (wall, CPU, peak RSS), bare references (PyAV decoding alone, the backend alone), a source
wrapper that plays files in real time, machine and library versions, the untrained models the
benchmarks run (any registered backbone, e.g. the tiny one for decode-bound measurements), and
``compare_backends``: one model's speed and score differences on several backends side by side
(the Colab notebook's deploy step).
Nothing here is used by ``dfstream SOURCE...`` itself.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from dfstream.backends.base import InferenceBackend
from dfstream.model.backbones import backbone_names
from dfstream.model.checkpoint import LoadedModel, untrained_model
from dfstream.model.spec import native_spec
from dfstream.sinks.base import Sink
from dfstream.sources import Source, SourceSpec, open_source
from dfstream.sources.ffmpeg import to_bgr
from dfstream.types import Event, Frame, ScoreEvent

BENCH_MODELS = backbone_names()
"""``--model`` choices of the benchmarks: every registered backbone, untrained. ``resnext50`` is
the product's model; ``tiny`` (one strided convolution) costs next to nothing, so a run with it
measures the pipeline's own overhead."""

_TINY_HEAD = {"hidden_size": 8, "dropout": 0.0}
"""The tiny model's head is as small as its trunk: LSTM(8, 8)."""


def bench_model(
    name: str, *, window: int, seed: int = 0, input_size: int | None = None
) -> LoadedModel:
    """The untrained model a benchmark runs: backbone ``name`` with dfstream's head, at the
    backbone's default crop size, or ``input_size``. Built by the same constructor as
    ``dfstream SOURCE...`` uses."""
    if name not in BENCH_MODELS:
        raise ValueError(f"model: expected one of {', '.join(BENCH_MODELS)} but got {name!r}")
    changes: dict[str, Any] = dict(_TINY_HEAD) if name == "tiny" else {}
    if input_size is not None:
        changes["input_size"] = input_size
    return untrained_model(native_spec(backbone=name, window=window, **changes), seed=seed)


@dataclass
class ScoreCollector(Sink):
    """Keeps every score event (window scores and decode-to-score latencies)."""

    scores: list[ScoreEvent] = field(default_factory=list)

    def handle(self, event: Event) -> None:
        """Keep score events, ignore the rest."""
        if isinstance(event, ScoreEvent):
            self.scores.append(event)

    def by_window(self) -> dict[tuple[str, int, int], float]:
        """``{(stream, track, frame_index): score}``."""
        return {(e.stream_id, e.track_id, e.frame_index): e.score for e in self.scores}

    def latencies_ms(self) -> list[float]:
        """Every window's decode-to-score latency."""
        return [e.latency_ms for e in self.scores]


def percentiles(values: list[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., ...}``; NaN for an empty list."""
    if not values:
        return {f"p{q}": float("nan") for q in qs}
    got = np.percentile(np.asarray(values, dtype=np.float64), qs)
    return {f"p{q}": float(v) for q, v in zip(qs, got, strict=True)}


class ResourceClock:
    """Wall time, process CPU time and peak RSS over a ``with`` block."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __enter__(self) -> ResourceClock:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu

    @property
    def cpu_percent(self) -> float:
        """CPU time / wall time in percent of one core (200 = both cores of a 2-core box)."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @staticmethod
    def peak_rss_mb() -> float:
        """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bare_decode_fps(path: Path, *, max_seconds: float | None = None) -> tuple[int, float]:
    """``(frames, frames/s)`` of PyAV alone on ``path``: decode and convert to BGR, as the
    file source does (threaded decoding, ``to_bgr``: one conversion thread), nothing else."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        for frame in container.decode(stream):
            if max_seconds is not None and frame.time is not None and frame.time >= max_seconds:
                break
            to_bgr(frame)
            frames += 1
    elapsed = time.perf_counter() - started
    return frames, frames / elapsed if elapsed > 0 else 0.0


def bare_backend_rates(
    backend: InferenceBackend, *, batch: int, stride: int, seconds: float = 3.0
) -> tuple[float, float]:
    """``(crops/s, CPU seconds per crop)`` of the backend alone: batches of ``batch`` random
    crops through ``embed`` plus the ``batch / stride`` windows that many crops make due
    through ``score`` (with a backend that ``projects``: each crop's ``project`` and the windows'
    ``score_projected``): the model's work per crop in the pipeline, with no decoding, detection,
    queues or Python around it. The CPU figure is less sensitive to other load on the machine."""
    spec = backend.spec
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (batch, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    features = backend.embed(crops)  # warm-up, and the feature size
    n_windows = max(1, round(batch / stride))
    width = backend.project(features).shape[1] if backend.projects else features.shape[1]
    windows = rng.standard_normal((n_windows, spec.window, width)).astype(np.float32)
    score = backend.score_projected if backend.projects else backend.score
    score(windows)
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        features = backend.embed(crops)
        if backend.projects:  # as the pipeline does: each crop's projection, once
            backend.project(features)
        score(windows)
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and done >= 2 * batch:
            return done / elapsed, (time.process_time() - cpu) / done


def bare_backend_crops_per_s(
    backend: InferenceBackend, *, batch: int, stride: int, seconds: float = 3.0
) -> float:
    """Crops/s of the backend alone (see ``bare_backend_rates``)."""
    return bare_backend_rates(backend, batch=batch, stride=stride, seconds=seconds)[0]


@dataclass(frozen=True)
class BackendRow:
    """One backend of ``compare_backends``: what it is, its speed and its distance to the first."""

    option: str
    described: str
    crops_per_s: float
    score_max_abs_diff: float
    feature_max_rel_diff: float


def compare_backends(
    loaded: LoadedModel,
    options: list[tuple[str, str]],
    *,
    device: str = "auto",
    batch: int = 16,
    seconds: float = 2.0,
    onnx_cache: Path | None = None,
    engine_dir: Path | None = None,
    notice: Callable[[str], None] = lambda _msg: None,
) -> list[BackendRow]:
    """The same weights on each ``(backend, precision)`` of ``options`` (the first is the
    reference, e.g. ``("torch", "fp32")``): crops/s of the backend alone
    (``bare_backend_crops_per_s``) and, on the same random crops and windows, the largest
    window-score difference and feature difference (relative to the largest feature) against
    the reference. Built with ``create_backend``, exactly as ``dfstream --backend`` builds them."""
    from dfstream.backends import create_backend

    spec = loaded.spec
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (batch, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    starts = rng.integers(0, batch, (max(4, batch // 2), spec.window))
    rows, reference = [], None
    for kind, precision in options:
        backend = create_backend(
            kind,
            loaded,
            device=device,
            precision=precision,
            onnx_cache=onnx_cache,
            engine_dir=engine_dir,
            batch=batch,
            notice=notice,
        )
        try:
            features = backend.embed(crops)
            scores = backend.score(features[starts])
            if reference is None:
                reference = (features, scores)
            rate = bare_backend_crops_per_s(backend, batch=batch, stride=5, seconds=seconds)
            scale = float(np.abs(reference[0]).max()) or 1.0
            rows.append(
                BackendRow(
                    option=f"{kind} {precision}",
                    described=backend.describe(),
                    crops_per_s=rate,
                    score_max_abs_diff=float(np.abs(scores - reference[1]).max()),
                    feature_max_rel_diff=float(np.abs(features - reference[0]).max()) / scale,
                )
            )
        finally:
            backend.close()
    return rows


class PacedSource(Source):
    """Plays a file source in real time: each frame is released at its presentation time
    (relative to the first ``frames()`` call), as a camera would deliver it. For benchmarks
    of live-like load from local files; files keep their lossless queues (nothing dropped)."""

    def __init__(self, inner: Source, *, speed: float = 1.0) -> None:
        self.inner = inner
        self.speed = speed
        self.stream_id, self.source, self.live = inner.stream_id, inner.source, inner.live
        self.fps, self.media_duration_s = inner.fps, inner.media_duration_s
        self.width, self.height = inner.width, inner.height

    def frames(self) -> Iterator[Frame]:
        """The inner frames, each held back until its time has come.

        A frame's ``wall_time`` is when a camera would have delivered it, also when the
        pipeline falls behind, so that decode-to-score latency includes any lag.
        """
        start, start_wall = time.perf_counter(), time.time()
        for frame in self.inner.frames():
            due = frame.pts_seconds / self.speed
            delay = start + due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield frame.retimed(start_wall + due)

    def close(self) -> None:
        """Close the inner source."""
        self.inner.close()


def paced_opener(speed: float = 1.0) -> Callable[..., Source]:
    """An ``opener`` for ``Analysis``/``Pipeline`` that plays every source in real time."""

    def opener(spec: SourceSpec, *, stream_id: str | None = None, **live: Any) -> Source:
        return PacedSource(open_source(spec, stream_id=stream_id, **live), speed=speed)

    return opener


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(backend: InferenceBackend | None = None) -> dict[str, Any]:
    """The machine and library versions a measurement came from."""
    import cv2

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "av": av.__version__,
        "ffmpeg_libavcodec": ".".join(str(v) for v in av.library_versions["libavcodec"]),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if backend is not None:
        info["backend"] = backend.describe()
    return info


def cpu_account_rows(cpu: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The CPU account's rows: ms per frame by stage (the pool threads' share in brackets),
    the unexplained rest, every OS thread name's share and the thread pools' sizes."""
    rows = [("CPU ms/frame", "whole process", f"{cpu['process_ms']:.2f}")]
    for stage, ms in cpu["stages_ms"].items():
        pool = cpu["pools_ms"][stage]
        if ms < 0.005:
            continue
        rows.append(("", stage, f"{ms:.2f}" + (f" ({pool:.2f} in pools)" if pool >= 0.005 else "")))
    share = 100.0 * cpu["unexplained_fraction"]
    rows.append(("", "unexplained", f"{cpu['unexplained_ms']:.2f} ({share:.0f}%)"))
    threads = ", ".join(f"{name} {ms:.1f}" for name, ms in cpu["threads_ms"].items() if ms >= 0.05)
    rows.append(("threads", "ms/frame by OS name", threads))
    pools = cpu["pools"]
    rows.append(
        (
            "pools",
            "threads",
            f"torch {pools['torch_intra_op']}+{pools['torch_inter_op']} inter, "
            f"OpenCV {pools['opencv']}, FFmpeg {pools['ffmpeg_decoder']}, "
            f"ORT {pools['onnxruntime_intra_op']}, CPUs {pools['cpus']}",
        )
    )
    return rows


def stage_metrics(run: Any, wall_s: float, collector: ScoreCollector) -> dict[str, Any]:
    """Per-stage and end-to-end figures of a finished ``dfstream.Analysis`` that took ``wall_s``."""
    states = list(run.pipeline.states.values())
    stats = run.pipeline.batch_stats
    frames = sum(s.frames_decoded for s in states)
    crops = sum(s.crops_embedded for s in states)
    windows = sum(s.windows_scored for s in states)
    decode_s = sum(s.decode_s for s in states)
    detect_s = sum(s.detect_s for s in states)
    detections = sum(s.detections for s in states)

    def rate(n: float, seconds: float) -> float:
        return n / seconds if seconds > 0 else 0.0

    return {
        "streams": len(states),
        "frames": frames,
        "frames_analyzed": sum(s.frames_analyzed for s in states),
        "crops": crops,
        "windows": windows,
        "wall_s": wall_s,
        "decode_fps": rate(frames, decode_s),
        "detect_ms_per_frame": 1000.0 * detect_s / detections if detections else 0.0,
        "detector_runs": detections,
        "embed_crops_per_s": rate(stats.crops, stats.embed_s),
        "head_windows_per_s": rate(stats.windows, stats.score_s),
        "mean_batch": stats.mean_size,
        "frames_per_s": rate(frames, wall_s),
        "crops_per_s": rate(crops, wall_s),
        "windows_per_s": rate(windows, wall_s),
        "latency_ms": percentiles(collector.latencies_ms()),
        "errors": [s.error for s in states if s.error],
    }
