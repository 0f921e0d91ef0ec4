"""A real Ray cluster on this machine for tests: a head and worker nodes started with ``ray start``.

Every node is started in a session of its own, so all its processes (raylet, GCS, agents and
the worker processes that run our actors) carry that session id; ``RayNode.kill`` SIGKILLs
exactly those processes (a lost node), and ``RayCluster.stop`` does so for every node it
started. Nothing here runs ``ray stop``, which would also stop clusters of other users of the
machine. Each cluster has its own temp folder and ports.

Drivers run against it should get ``RayCluster.env`` (the repository on ``PYTHONPATH``, token
authentication off like the cluster). The head's health checks are tightened (a node that
stops answering is declared dead within about 2 s instead of 30 s) so that node-loss tests stay
short; the rest is Ray's default.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.live_servers import REPO_ROOT, free_port

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Explicit, so that a token in ~/.ray/auth_token (which a local ray.init() writes) does not
    # switch some of the processes to token authentication: the cluster is a private test one.
    "RAY_AUTH_MODE": "disabled",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "4",
    "RAY_health_check_initial_delay_ms": "1000",
}


def _ray_command() -> list[str]:
    """``ray`` as a command of this interpreter (the console script may be another one's)."""
    return [
        sys.executable,
        "-c",
        "import sys; from ray.scripts.scripts import main; sys.exit(main())",
    ]


def session_pids(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class RayNode:
    """One ``ray start`` node: its session id, and how to kill all of it."""

    def __init__(self, sid: int, name: str, log: Path) -> None:
        self.sid, self.name, self.log = sid, name, log

    def pids(self) -> list[int]:
        """The node's live processes."""
        return session_pids(self.sid)

    def kill(self) -> None:
        """SIGKILL every process of the node at once (the machine is gone)."""
        for _ in range(3):  # raylet may fork a worker while we kill
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)


class RayCluster:
    """A head on 127.0.0.1 plus worker nodes (see the module docstring)."""

    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dfray-", dir="/tmp"))  # short: socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[RayNode] = []
        self.env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(REPO_ROOT)}

    def _start(self, name: str, args: list[str]) -> RayNode:
        log = self.temp_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*_ray_command(), "start", *args, "--temp-dir", str(self.temp_dir),
                 "--disable-usage-stats", "--object-store-memory", str(80 * 1024 * 1024),
                 "--dashboard-agent-listen-port", str(free_port())],
                env=self.env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        node = RayNode(process.pid, name, log)  # the session id is the leader's pid
        self.nodes.append(node)
        if process.wait(timeout=90) != 0:
            raise RuntimeError(f"ray start {name} failed: {log.read_text()[-2000:]}")
        return node

    def start_head(self, *, cpus: float = 1) -> RayNode:
        """``ray start --head`` with ``cpus`` CPUs."""
        return self._start(
            "head",
            ["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
             "--num-cpus", str(cpus), "--include-dashboard", "false",
             "--dashboard-port", str(free_port())],
        )  # fmt: skip

    def add_node(self, name: str, *, cpus: float = 1, labels: str | None = None) -> RayNode:
        """``ray start --address`` joining the head, with ``cpus`` CPUs and ``labels``."""
        args = ["--address", self.address, "--num-cpus", str(cpus)]
        if labels:
            args += ["--labels", labels]
        return self._start(name, args)

    def node_ids(self) -> dict[str, str]:
        """Alive nodes: node id -> the value of their ``dfstream-test`` label ('' for none)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(json.dumps({n['NodeID']: n.get('Labels', {}).get('dfstream-test', '') "
            "for n in ray.nodes() if n['Alive']}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=60
        )
        import json

        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        """Kill every node this cluster started, newest first, and remove its temp folder."""
        for node in reversed(self.nodes):
            node.kill()
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster() -> Iterator[RayCluster]:
    """A started head (1 CPU) that is stopped, with every node added, on every way out."""
    cluster = RayCluster()
    try:
        cluster.start_head()
        yield cluster
    finally:
        cluster.stop()
