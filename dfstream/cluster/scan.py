"""The scan ``Executor`` on a Ray cluster: one actor per GPU, or per group of CPU cores.

Each actor is a ``ScanWorker`` (model loaded once, torch threads = the cores it reserved) on
whichever node Ray places it (``SPREAD``: across the nodes). The driver keeps at most one job
in flight per actor, so a lost actor costs at most one video's work, which the scheduler
retries on another actor. A lost actor (its process killed, its node gone: Ray raises
``RayActorError``) is killed for good and replaced by a new one under a new name; Ray places
the replacement wherever resources are left, and it waits for a node while there are none.
Videos must be at the same path on every node (a shared mount): a worker that cannot see one
says so in the video's failure reason.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from dfstream import __version__
from dfstream.cluster.connect import check_started, kill_actor, raise_if_init_failed
from dfstream.errors import DfstreamError, UsageError
from dfstream.scan.executor import Executor, Finished, Lost, Outcome
from dfstream.scan.worker import Job, JobResult, ScanWorker, WorkerSpec, one_line


class ScanActor:
    """The body of a Ray scan actor: a ``ScanWorker`` plus where it runs.

    A failure to load the model is kept and returned by ``ready`` (a raising constructor
    would look like a lost node to the driver)."""

    def __init__(self, spec: WorkerSpec, name: str) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.name = f"{name}@{self.node[:8]}"
        self.worker: ScanWorker | None = None
        self.error: tuple[int, str] | None = None
        try:
            self.worker = ScanWorker(spec, name=self.name)
        except DfstreamError as exc:
            self.error = (int(exc.exit_code), str(exc))

    def ready(self) -> dict[str, Any]:
        """Where this actor runs, what it runs on, or why it cannot."""
        return {
            "error": self.error,
            "node": self.node,
            "host": socket.gethostname(),
            "version": __version__,
            "backend": self.worker.backend if self.worker else None,
        }

    def analyze(self, job: Job) -> JobResult:
        """Analyse one video (errors are in the result)."""
        assert self.worker is not None
        return self.worker.analyze(job)


@dataclass
class _Actor:
    name: str
    handle: Any
    ready: bool = False
    job: Job | None = None
    node: str = ""
    backend: str = ""


class RayExecutor(Executor):
    """Scan workers as Ray actors (see the module docstring).

    ``workers`` defaults to one per GPU of the cluster (when it has GPUs and ``--device``
    allows them), else the cluster's CPUs divided by ``cpus_per_worker``.
    """

    def __init__(
        self,
        ray: ModuleType,
        spec: WorkerSpec,
        *,
        workers: int | None = None,
        cpus_per_worker: int = 1,
        address: str = "auto",
    ) -> None:
        self._ray = ray
        resources = ray.cluster_resources()
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
        if cpus_per_worker > largest:
            raise UsageError(
                f"--cpus-per-worker {cpus_per_worker}: no node of the cluster has that many CPUs "
                f"(the largest has {largest:g}); give at most {largest:g}"
            )
        gpus = int(resources.get("GPU", 0))
        use_gpu = gpus > 0 and spec.config.device in ("auto", "cuda")
        count = workers or (
            gpus if use_gpu else max(1, int(resources.get("CPU", 1)) // cpus_per_worker)
        )
        config = replace(spec.config, device="cuda") if use_gpu else spec.config
        # Ray sets CUDA_VISIBLE_DEVICES per actor: "cuda" is the GPU it reserved.
        self._spec = replace(spec, config=config, threads=spec.threads or cpus_per_worker)
        self._options = {
            "num_cpus": cpus_per_worker,
            "num_gpus": 1 if use_gpu else 0,
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        self._class = ray.remote(ScanActor)
        self._actors: dict[str, _Actor] = {}
        self._starting: dict[Any, str] = {}
        self._running: dict[Any, str] = {}
        self._counter = 0
        self._replacements_left = 4 * count
        for _ in range(count):
            self._spawn()
        unit = "GPU" if use_gpu else f"{cpus_per_worker} CPU"
        self.description = f"ray {address}: {count} actor(s) of {unit}"

    def _spawn(self) -> None:
        self._counter += 1
        name = f"ray-{self._counter}"
        handle = self._class.options(**self._options).remote(self._spec, name)
        self._actors[name] = _Actor(name, handle)
        self._starting[handle.ready.remote()] = name

    @property
    def nodes(self) -> dict[str, str]:
        """The node id of each ready actor, by actor name."""
        return {a.name: a.node for a in self._actors.values() if a.ready}

    def idle(self) -> list[str]:
        return [a.name for a in self._actors.values() if a.ready and a.job is None]

    def alive(self) -> int:
        return len(self._actors)

    def submit(self, worker: str, job: Job) -> None:
        actor = self._actors[worker]
        actor.job = job
        self._running[actor.handle.analyze.remote(job)] = worker

    def _lose(self, name: str, exc: BaseException) -> Lost:
        actor = self._actors.pop(name)
        kill_actor(self._ray, actor.handle)
        if self._replacements_left > 0:
            self._replacements_left -= 1
            self._spawn()
        where = f" on node {actor.node[:8]}" if actor.node else ""
        return Lost(name, actor.job, f"ray actor {name}{where} lost ({type(exc).__name__})")

    def _started(self, ref: Any, name: str) -> Outcome | None:
        ray = self._ray
        try:
            info = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            raise_if_init_failed(exc, f"worker {name}")
            return self._lose(name, exc)
        check_started(info, f"worker {name}")
        actor = self._actors[name]
        actor.ready, actor.node, actor.backend = True, info["node"], info["backend"]
        return None

    def _finished(self, ref: Any, name: str) -> Outcome:
        ray = self._ray
        actor = self._actors[name]
        job = actor.job
        assert job is not None
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            return self._lose(name, exc)
        except ray.exceptions.RayError as exc:  # analyze() itself raised: the video failed
            result = JobResult(job.video, name, None, (), one_line(exc), 0.0)
        actor.job = None
        return Finished(name, job, result)

    def wait(self, timeout: float) -> list[Outcome]:
        refs = [*self._starting, *self._running]
        if not refs:
            time.sleep(timeout)
            return []
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # everything else that is ready too, without waiting
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes: list[Outcome] = []
        for ref in ready:
            if ref in self._starting:
                started = self._started(ref, self._starting.pop(ref))
                if started is not None:
                    outcomes.append(started)
            elif ref in self._running:
                outcomes.append(self._finished(ref, self._running.pop(ref)))
        return outcomes

    def close(self) -> None:
        for actor in self._actors.values():
            kill_actor(self._ray, actor.handle)
        self._actors.clear()
        self._starting.clear()
        self._running.clear()
