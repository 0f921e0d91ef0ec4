"""Where the CPU goes: per-stage CPU clocks, named worker threads and a census of every thread.

Three pieces, used together by the pipeline and read by ``dfstream bench``:

* ``StageClock``: the CPU time of *one* thread (``time.thread_time``, the kernel's per-thread
  clock) split into named stages. The owning thread calls ``lap(stage)`` when a stage's work is
  done and ``skip()`` after waiting (a queue, a socket), so that waits are never billed to a
  stage. Only the owner writes to it; others read it once the thread is done.
* ``name_thread``: gives the calling thread its OS name (Linux ``prctl(PR_SET_NAME)``, 15
  bytes). Linux copies a thread's name into the threads it creates, so the pools a worker starts
  carry its name: torch's OpenMP workers started by the inference thread are ``dfs-infer``,
  OpenCV's workers started by an analyzer are ``dfs-analyze``. FFmpeg names its own decoder
  threads ``av:<codec>:...``.
* ``ThreadCensus``: reads every thread's CPU time from ``/proc/self/task`` (``schedstat``,
  nanoseconds; ``stat`` ticks where schedstat is missing) at the start of a run, whenever a
  worker is about to end threads it owns (a decoder's pool dies with its container), and at the
  end; what it saw of each thread is that thread's CPU during the run.

``cpu_breakdown`` joins them into one account: each stage's CPU in the thread that runs it,
the pool threads' CPU added to the stage that drives them, and the rest of the process's CPU as
*unexplained* (the main thread, threads nobody named, work outside every stage, pool threads
that ended between two polls). Linux only for the census and the names; elsewhere the stage
clocks still work and the census is empty (everything outside the stage clocks is then
unexplained).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READER_THREAD = "dfs-read"
ANALYZER_THREAD = "dfs-analyze"
INFERENCE_THREAD = "dfs-infer"
SINK_THREAD = "dfs-sink"

STAGES = (
    "decode",
    "convert",
    "detect",
    "track",
    "crop",
    "frame_sinks",
    "gather",
    "normalise",
    "embed",
    "head",
    "scoring",
    "sinks",
    "accounting",
)
"""Every stage of a run in pipeline order: decode (the codec), convert (YUV -> BGR), detect,
track (IoU tracker and re-linking), crop (cut, resize, appearance descriptor), frame_sinks
(overlay and preview taps), gather (the inference thread's queues and batching), normalise (uint8
crops -> model input), embed (the CNN), head (the temporal head), scoring (window caches, EMA,
verdicts), sinks (writing events, and the sinks' own threads) and accounting (the census's own
reads of ``/proc``)."""

POOL_STAGES = {
    "av:": "decode",
    READER_THREAD: "convert",
    ANALYZER_THREAD: "detect",
    INFERENCE_THREAD: "embed",
    SINK_THREAD: "sinks",
}
"""Which stage a pool thread's CPU goes to, by the start of its OS name: FFmpeg's decoder
threads decode; the threads a reader starts convert (swscale); those an analyzer starts are
OpenCV's (YuNet, resizing); those the inference thread starts are torch's intra-op workers (the
CNN, and the head's few parallel loops); a sink's threads serve that sink."""


class StageClock:
    """CPU seconds of the owning thread, by stage (see the module docstring); with a
    ``census``, ``poll()`` records every thread's CPU before the owner ends threads it started."""

    def __init__(self, census: ThreadCensus | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.census = census
        self._mark: float | None = None  # set by the owner's first skip or lap

    def poll(self) -> None:
        """Threads this thread started are about to end (a decoder closing): read them now."""
        if self.census is not None:
            self.census.poll()

    def skip(self) -> None:
        """Start counting from now: whatever this thread did since the last lap is no stage's
        (waiting on a queue, between runs)."""
        self._mark = time.thread_time()

    def lap(self, stage: str) -> None:
        """Bill this thread's CPU since the last lap (or skip) to ``stage``."""
        now = time.thread_time()
        if self._mark is not None:  # the first lap only starts the count (no skip before it)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - self._mark)
        self._mark = now


class _NoClock(StageClock):
    """A clock that counts nothing (callers that measure nothing, e.g. training)."""

    def poll(self) -> None:
        pass

    def skip(self) -> None:
        pass

    def lap(self, stage: str) -> None:
        pass


NO_CLOCK: StageClock = _NoClock()


def name_thread(name: str) -> None:
    """Name the calling thread for the OS (15 bytes kept; a no-op where Linux's prctl is not
    available). The main thread is never renamed: its name is the process's."""
    if threading.current_thread() is threading.main_thread():
        return
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


_TASKS = Path("/proc/self/task")
_TICK_S = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def _thread_cpu(tid: str) -> tuple[str, float] | None:
    """(OS name, CPU seconds) of one thread of this process, or None once it is gone."""
    base = _TASKS / tid
    try:
        name = (base / "comm").read_text().strip()
        try:
            return name, int((base / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            # stat: "pid (comm) state ..." - utime and stime are fields 14 and 15.
            fields = (base / "stat").read_text().rsplit(")", 1)[1].split()
            return name, (int(fields[11]) + int(fields[12])) * _TICK_S
    except (OSError, ValueError, IndexError):
        return None


def read_threads() -> dict[str, tuple[str, float]]:
    """``{tid: (OS name, CPU seconds)}`` of every thread of this process now; empty where
    ``/proc`` is not there."""
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return {}
    found = {}
    for tid in tids:
        got = _thread_cpu(tid)
        if got is not None:
            found[tid] = got
    return found


@dataclass
class ThreadCensus:
    """Every thread's CPU over a run: ``start()``, ``poll()`` as often as threads may end, then
    ``stop()``. Thread-safe."""

    started: dict[str, tuple[str, float]] = field(default_factory=dict)
    latest: dict[str, tuple[str, float]] = field(default_factory=dict)
    process_cpu_s: float = 0.0
    wall_s: float = 0.0
    overhead_s: float = 0.0
    """CPU the census itself spent reading ``/proc`` (billed to the ``accounting`` stage)."""
    _process0: float = 0.0
    _wall0: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        """Take the first reading (the process CPU clock too)."""
        with self._lock:
            self._process0 = time.process_time()
            self._wall0 = time.perf_counter()
            began = time.thread_time()
            self.started = read_threads()
            self.latest = dict(self.started)
            self.overhead_s = time.thread_time() - began

    def poll(self) -> None:
        """Record every thread's CPU now (call before a worker ends threads it owns)."""
        began = time.thread_time()
        now = read_threads()
        with self._lock:
            self.latest.update(now)
            self.overhead_s += time.thread_time() - began

    def stop(self) -> None:
        """The last reading; the process CPU and wall time since ``start``."""
        self.poll()
        with self._lock:
            self.process_cpu_s = time.process_time() - self._process0
            self.wall_s = time.perf_counter() - self._wall0

    def threads(self) -> dict[str, tuple[str, float]]:
        """``{tid: (OS name, CPU seconds during the run)}``."""
        with self._lock:
            return {
                tid: (name, cpu - self.started.get(tid, (name, 0.0))[1])
                for tid, (name, cpu) in self.latest.items()
            }


def pool_stage(name: str) -> str | None:
    """The stage a pool thread called ``name`` works for (``POOL_STAGES``), or None."""
    for prefix, stage in POOL_STAGES.items():
        if name.startswith(prefix):
            return stage
    return None


def cpu_breakdown(
    clocks: Iterable[StageClock],
    census: ThreadCensus,
    *,
    owners: Iterable[int],
    frames: int,
) -> dict[str, Any]:
    """One account of a run's CPU (see the module docstring), in ms per decoded frame.

    ``clocks`` are the stage clocks of the run's own threads, ``owners`` those threads' ids
    (``threading.get_native_id``): any other thread whose name ``POOL_STAGES`` knows is a pool
    thread, billed to its stage. Returns ``process_ms``, ``stages_ms`` (own threads plus pools),
    ``own_threads_ms``, ``pools_ms``, ``unexplained_ms`` and ``unexplained_fraction``, and
    ``threads``: the CPU ms per frame of each OS thread name.
    """
    per = 1000.0 / frames if frames else 0.0
    own = dict.fromkeys(STAGES, 0.0)
    for clock in clocks:
        for stage, seconds in clock.seconds.items():
            own[stage] = own.get(stage, 0.0) + seconds
    owner_ids = {str(t) for t in owners}
    pools = dict.fromkeys(STAGES, 0.0)
    by_name: dict[str, float] = {}
    for tid, (name, cpu) in census.threads().items():
        by_name[name] = by_name.get(name, 0.0) + cpu
        pool = None if tid in owner_ids else pool_stage(name)
        if pool is not None:
            pools[pool] += cpu
    own["accounting"] += census.overhead_s
    stages = {stage: own[stage] + pools[stage] for stage in own}
    process = census.process_cpu_s
    unexplained = max(0.0, process - sum(stages.values()))
    return {
        "process_ms": process * per,
        "process_cpu_s": process,
        "wall_s": census.wall_s,
        "frames": frames,
        "stages_ms": _scaled(stages, per),
        "own_threads_ms": _scaled(own, per),
        "pools_ms": _scaled(pools, per),
        "unexplained_ms": unexplained * per,
        "unexplained_fraction": unexplained / process if process > 0 else 0.0,
        "threads_ms": _scaled(dict(sorted(by_name.items(), key=lambda kv: -kv[1])), per),
    }


def _scaled(values: Mapping[str, float], factor: float) -> dict[str, float]:
    return {key: value * factor for key, value in values.items()}


CORES_PER_OPENCV_THREAD = 4
"""OpenCV's pool gets one thread per this many usable cores (at least one). Its work (YuNet,
resizing) runs on the analyzer threads next to torch's intra-op team and FFmpeg's decoder
threads; on 2 cores its default of one thread per core only made them wait for each other: the
720p file of ``dfstream bench`` (YuNet every 5th frame, default model) ran at 186 instead of 168
frames/s with 9.4 instead of 10.5 ms CPU per frame (medians of 3 side-by-side runs)."""


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def share_opencv_threads() -> int:
    """Size OpenCV's (process-wide) pool by ``CORES_PER_OPENCV_THREAD``; returns the size."""
    import cv2

    threads = max(1, usable_cpus() // CORES_PER_OPENCV_THREAD)
    cv2.setNumThreads(threads)
    return threads


def thread_pools(backend: Any = None, decoder_threads: int | None = None) -> dict[str, Any]:
    """The size of every thread pool in the process: torch intra-op and inter-op, OpenCV,
    FFmpeg's decoder (``decoder_threads``: what a codec context reported, None if no stream has
    run), ONNX Runtime's intra-op (when ``backend`` is an ONNX Runtime session) and the CPU
    count the process may use."""
    import cv2
    import torch

    pools: dict[str, Any] = {
        "cpus": usable_cpus(),
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "opencv": cv2.getNumThreads(),
        "ffmpeg_decoder": decoder_threads,
        "onnxruntime_intra_op": None,
    }
    if backend is not None and backend.name == "onnx":
        pools["onnxruntime_intra_op"] = backend.pool_threads()
    return pools


__all__ = [
    "ANALYZER_THREAD",
    "CORES_PER_OPENCV_THREAD",
    "INFERENCE_THREAD",
    "NO_CLOCK",
    "POOL_STAGES",
    "READER_THREAD",
    "SINK_THREAD",
    "STAGES",
    "StageClock",
    "ThreadCensus",
    "cpu_breakdown",
    "name_thread",
    "pool_stage",
    "read_threads",
    "share_opencv_threads",
    "thread_pools",
    "usable_cpus",
]
