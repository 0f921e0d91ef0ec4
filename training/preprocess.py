"""``preprocess``: cut face crops from every video of a manifest into a ``CropCache``.

Crops are made exactly as ``dfstream`` serves them: PyAV decoding through ``dfstream.sources``
and the same ``dfstream.faces.FaceAnalyzer`` (the detector from ``make_detector`` run every
``detect_every`` frames, the IoU tracker in between, the model's margin, size and colour order).

Per video, ``frames`` frames are taken as evenly spaced runs of ``run_length`` consecutive
frames (``run_length 1``: evenly spaced single frames), so that training windows of up to
``run_length`` crops see the same frame rate as serving. Videos are processed in parallel worker
processes; each finished video is written atomically, so an interrupted run resumes where it
stopped and a finished one is not redone.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dfstream.errors import DfstreamError
from dfstream.faces import (
    AnalyzerSettings,
    FaceAnalyzer,
    FaceDetector,
    make_detector,
    margin_for_detector,
)
from dfstream.sources import FileSource
from dfstream.types import FaceCrop
from training.cache import CropCache, CropSettings, video_key
from training.manifest import Entry


@dataclass(frozen=True)
class DetectorChoice:
    """Which detector the workers build (``make_detector`` arguments)."""

    kind: str = "auto"
    model_path: Path | None = None
    cache_dir: Path | None = None

    def build(self, notice: Callable[[str], None]) -> FaceDetector:
        """A new detector (one per process: OpenCV detectors are not shared)."""
        return make_detector(
            self.kind,  # type: ignore[arg-type]
            model_path=self.model_path,
            cache_dir=self.cache_dir,
            notice=notice,
        )


def count_frames(path: Path) -> int:
    """Frames in the first video stream: the header's count, else the number of packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def sample_plan(total: int, frames: int, run_length: int) -> dict[int, int]:
    """{frame index: run number}: ``frames`` frames as evenly spaced runs of consecutive ones."""
    if total <= 0:
        return {}
    length = min(run_length, total)
    runs = max(1, min(math.ceil(frames / length), total // length))
    starts = np.linspace(0, total - length, runs).round().astype(int)
    plan: dict[int, int] = {}
    for run, start in enumerate(starts):
        for index in range(int(start), int(start) + length):
            plan.setdefault(index, run)
    return plan


def analyzer_settings(settings: CropSettings) -> AnalyzerSettings:
    """The ``FaceAnalyzer`` settings that cut a cache's crops: the model's crop rule, every
    frame handed to it analysed, the detector every ``detect_every`` frames of a run."""
    return AnalyzerSettings(
        crop_margin=margin_for_detector(settings.detector, settings.margin),
        crop_size=settings.size,
        color_order=settings.color_order,
        detect_every=settings.detect_every,
    )


def _landmarks(crop: FaceCrop) -> np.ndarray:
    if crop.landmarks is None:
        return np.full((5, 2), np.nan, np.float32)
    return crop.landmarks


def extract(path: Path, detector: FaceDetector, settings: CropSettings) -> dict[str, np.ndarray]:
    """Crops and per-crop metadata of one video (see ``training.cache`` for the arrays).

    Only the frames of the sample plan reach the analyzer; its detector cadence restarts at the
    first frame of each run, and its tracks carry on across runs.
    """
    analyzer = FaceAnalyzer(detector, analyzer_settings(settings), stream_id=str(path))
    crops: list[FaceCrop] = []
    runs: list[int] = []
    previous_run = -1
    with FileSource.open(path, stream_id=str(path)) as source:  # validates: one-line errors
        plan = sample_plan(count_frames(path), settings.frames, settings.run_length)
        last = max(plan) if plan else -1
        for frame in source.frames():
            if frame.index > last:
                break
            run = plan.get(frame.index)
            if run is None:
                continue
            if run != previous_run:
                analyzer.restart_cadence()
                previous_run = run
            found = analyzer.analyze(frame).crops
            crops.extend(found)
            runs.extend([run] * len(found))
    s = settings.size
    return {
        "crops": np.stack([c.crop for c in crops]) if crops else np.zeros((0, s, s, 3), np.uint8),
        "frame_index": np.array([c.frame_index for c in crops], np.int32),
        "track": np.array([c.track_id for c in crops], np.int32),
        "run": np.array(runs, np.int32),
        "boxes": np.array([c.box for c in crops], np.float32).reshape(-1, 4),
        "landmarks": np.array([_landmarks(c) for c in crops], np.float32).reshape(-1, 5, 2),
    }


def store(cache: CropCache, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one video atomically: crops first, the metadata (the 'done' marker) last."""
    crops_path, meta_path, error_path = cache.paths(key)
    tmp = crops_path.with_name(crops_path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.save(fh, arrays["crops"])
    tmp.replace(crops_path)
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    with tmp.open("wb") as fh:
        meta = {k: v for k, v in arrays.items() if k != "crops"}
        np.savez(fh, **meta)  # type: ignore[arg-type]  # numpy's stub types **kwds oddly
    tmp.replace(meta_path)
    error_path.unlink(missing_ok=True)


_WORKER_DETECTOR: FaceDetector | None = None


def _init_worker(choice: DetectorChoice) -> None:
    global _WORKER_DETECTOR
    cv2.setNumThreads(1)
    _WORKER_DETECTOR = choice.build(lambda _msg: None)


def process_video(root: Path, settings: CropSettings, path: str) -> tuple[str, int, str]:
    """Crop one video into the cache; returns (key, crops, error message or '')."""
    cache = CropCache(root, settings)
    key = video_key(path)
    assert _WORKER_DETECTOR is not None, "worker not initialised"
    try:
        arrays = extract(Path(path), _WORKER_DETECTOR, settings)
    except DfstreamError as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad video must not stop thousands
        message = f"{path}: unexpected {type(exc).__name__}: {exc}"
    else:
        store(cache, key, arrays)
        return key, len(arrays["frame_index"]), ""
    cache.paths(key)[2].write_text(message + "\n", encoding="utf-8")
    return key, 0, message


def _results(
    todo: list[str], root: Path, settings: CropSettings, choice: DetectorChoice, workers: int
) -> Iterator[tuple[str, int, str]]:
    if workers <= 1:
        _init_worker(choice)
        for path in todo:
            yield process_video(root, settings, path)
        return
    context = multiprocessing.get_context("spawn")  # no fork under rich's refresh thread
    with ProcessPoolExecutor(workers, context, _init_worker, (choice,)) as pool:
        pending: set[Future[tuple[str, int, str]]] = set()
        queue = list(reversed(todo))
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    pending.add(pool.submit(process_video, root, settings, queue.pop()))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def run_preprocess(
    entries: list[Entry],
    root: Path,
    settings: CropSettings,
    choice: DetectorChoice,
    *,
    workers: int,
    console: Console,
) -> dict[str, int]:
    """Crop every entry not yet in the cache; returns counts (done, skipped, failed, crops)."""
    choice.build(lambda msg: console.print(f"training: {msg}", highlight=False))  # fail early
    cache = CropCache.create(root, settings)
    paths = list(dict.fromkeys(e.path for e in entries))
    todo = [p for p in paths if not cache.is_done(video_key(p))]
    counts = {"videos": len(paths), "skipped": len(paths) - len(todo), "done": 0, "failed": 0}
    counts["crops"] = 0
    errors: dict[str, str] = {}
    columns = (
        TextColumn("[bold]preprocess"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[crops]} crops, {task.fields[failed]} failed"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("videos", total=len(todo), crops=0, failed=0)
            for key, crops, error in _results(todo, root, settings, choice, workers):
                if error:
                    errors[key] = error
                    counts["failed"] += 1
                    progress.console.print(f"training: skipped {error}", highlight=False)
                else:
                    counts["done"] += 1
                    counts["crops"] += crops
                progress.update(task, advance=1, crops=counts["crops"], failed=counts["failed"])
    finally:
        cache.write_manifest(entries, errors)
    return counts


def default_workers() -> int:
    """Worker processes by default: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))
