"""dfstream on a real two-node Ray cluster on this machine (``ray start``, not mocks).

The head has 1 CPU; the second node has 1 CPU and the label ``dfstream-test=edge``. A scan of 12
generated clips runs one actor on each node; the second node is killed mid-scan (every process
of its session, SIGKILL) and the scan must still end with every clip exactly once and the
scores of a local run of the same clips. A rerun then resumes with nothing left to do. Two live
RTSP streams (gst-rtsp-server) are placed on the second node (``--ray-place
'*=prefer:dfstream-test=edge'``); their events arrive at the driver's JSONL, report and
metrics; the node is killed and both streams are restarted on the head with a ``restarting``
status event. Every Ray process started here is stopped by its session id
(``tests.ray_cluster``), never with ``ray stop``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_servers import REPO_ROOT, free_port, rtsp_server, wait_for
from tests.media import write_clip
from tests.ray_cluster import RayCluster, RayNode
from tests.real_servers import GstRtsp, gst_rtsp_available, running
from tests.scan_outputs import results, summaries

pytest.importorskip("ray", reason="the cluster tests need Ray: pip install 'dfstream[ray]'")

pytestmark = pytest.mark.network

MODEL_ARGS = [
    "--untrained", "--detector", "none", "--window", "4", "--stride", "2", "--batch", "4",
    "--backend", "torch",
]  # fmt: skip
EDGE = "dfstream-test=edge"


class Cluster:
    """The module's cluster: the head and the (restartable) second node."""

    def __init__(self, ray: RayCluster) -> None:
        self.ray = ray
        self.ray.start_head(cpus=1)
        self.edge: RayNode = self.ray.add_node("edge", cpus=1, labels=EDGE)

    def edge_ids(self) -> set[str]:
        """Node ids of the alive nodes labelled edge."""
        return {node for node, label in self.ray.node_ids().items() if label == "edge"}

    def restart_edge(self) -> None:
        """Bring the second node back after a test killed it."""
        if not self.edge.pids():
            self.edge = self.ray.add_node("edge", cpus=1, labels=EDGE)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head + second node, stopped (by session id) whatever happens, also when one of them
    fails to start."""
    ray = RayCluster()
    try:
        yield Cluster(ray)
    finally:
        ray.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 generated clips (16-19 frames, 64x48, a drawn face) in one folder."""
    root = tmp_path_factory.mktemp("clips12")
    for i in range(12):
        write_clip(root / f"clip{i:02d}.mp4", frames=16 + i % 4, size=(64, 48), pattern="face")
    return root


def _dfstream(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dfstream", *args], env=cluster.ray.env,
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _scores(out: Path) -> dict[str, tuple[Any, ...]]:
    return {
        s["video"]: (s["score"], s["windows_scored"], s["crops_embedded"], s["frames_decoded"])
        for s in summaries(out)
    }


def test_scan_on_two_nodes_survives_a_lost_node_and_matches_a_local_run(
    cluster: Cluster, clips: Path, tmp_path: Path
) -> None:
    cluster.restart_edge()
    edge = {node[:8] for node in cluster.edge_ids()}
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    common = [str(clips), *MODEL_ARGS, "--cpus-per-worker", "1"]
    local = _dfstream(cluster, "scan", *common, "--workers", "1", "--out", str(local_out))
    scan = _dfstream(cluster, "scan", *common, "--ray", cluster.ray.address, "--out", str(ray_out))
    try:
        on_edge = lambda: any(s["worker"].split("@")[-1] in edge for s in summaries(ray_out))  # noqa: E731
        assert wait_for(lambda: on_edge() and len(summaries(ray_out)) >= 3, 150), results(ray_out)
        cluster.edge.kill()
        _, ray_err = scan.communicate(timeout=150)
        _, local_err = local.communicate(timeout=150)
    finally:
        scan.kill()
        local.kill()
    assert scan.returncode == 0, ray_err
    assert local.returncode == 0, local_err
    counts = Counter(s["video"] for s in summaries(ray_out))
    assert sorted(counts) == sorted(str(p) for p in clips.glob("*.mp4"))
    assert set(counts.values()) == {1}, f"a clip was written twice: {counts}"
    assert _scores(ray_out) == _scores(local_out), "Ray and local scores differ"
    nodes = {s["worker"].split("@")[-1] for s in summaries(ray_out)}
    assert nodes & edge and nodes - edge, f"both nodes should have worked: {nodes}"
    report = json.loads((ray_out / "report.json").read_text())
    assert report["last_run"]["lost_workers"], "the lost node's actor was not noticed"
    assert "lost" in ray_err

    rerun = subprocess.run(
        [sys.executable, "-m", "dfstream", "scan", *common, "--ray", cluster.ray.address,
         "--out", str(ray_out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=cluster.ray.env,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert "12 already in" in rerun.stderr and "0 to analyse" in rerun.stderr
    assert Counter(s["video"] for s in summaries(ray_out)) == counts


@contextlib.contextmanager
def rtsp_streams(clip: Path, workdir: Path, count: int) -> Iterator[list[str]]:
    """``count`` live RTSP streams on 127.0.0.1, each from its own server; yields their URLs.
    GStreamer's gst-rtsp-server (a server the project did not write) where Debian's GI
    bindings are installed, else the project's own relay (``tests/rtsp_server.py``). The one
    place that says which RTSP server the cluster test uses."""
    with contextlib.ExitStack() as stack:
        if gst_rtsp_available():
            gst = [stack.enter_context(running(GstRtsp(clip, workdir))) for _ in range(count)]
            yield [server.url() for server in gst]
            return
        relays = [
            stack.enter_context(rtsp_server(clip, workdir, paths=(f"/cam{i}",)))
            for i in range(count)
        ]
        yield [server.url() for server in relays]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_live_streams_run_on_the_second_node_and_move_when_it_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.restart_edge()
    edge = cluster.edge_ids()
    clip = write_clip(tmp_path / "live.mp4", frames=100, size=(160, 120), pattern="face", gop=10)
    jsonl, report = tmp_path / "events.jsonl", tmp_path / "report.json"
    metrics_port = free_port()
    with rtsp_streams(clip, tmp_path, 2) as urls:
        run = _dfstream(
            cluster, *urls, *MODEL_ARGS, "--analysis-fps", "4", "--no-dashboard",
            "--jsonl", str(jsonl), "--report", str(report), "--ray", cluster.ray.address,
            "--metrics-port", str(metrics_port),
            "--ray-place", f"*=prefer:{EDGE}", "--ray-cpus", "0.5",
        )  # fmt: skip

        def of(kind: str, state: str | None = None) -> list[dict[str, Any]]:
            return [
                e for e in _events(jsonl)
                if e["type"] == kind and state in (None, e.get("state"))
            ]  # fmt: skip

        try:
            scored = lambda: {e["stream"] for e in of("score")} == set(urls)  # noqa: E731
            assert wait_for(scored, 120), _events(jsonl)
            placed = of("status", "placed")
            assert len(placed) == 2 and all(
                any(node[:12] in e["reason"] for node in edge) for e in placed
            ), placed
            scraped = _scrape(metrics_port)  # served by the driver from the actors' state
            assert all(f'dfstream_score{{stream="{url}"}}' in scraped for url in urls), scraped
            before = len(of("score"))
            cluster.edge.kill()
            assert wait_for(lambda: len(of("status", "restarting")) == 2, 60), _events(jsonl)
            assert wait_for(lambda: len(of("status", "placed")) == 4, 90), _events(jsonl)
            moved = of("status", "placed")[2:]
            assert not any(node[:12] in e["reason"] for e in moved for node in edge), moved
            again = lambda: {e["stream"] for e in of("score")[before:]} == set(urls)  # noqa: E731
            assert wait_for(again, 90), _events(jsonl)
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=60)
        finally:
            run.kill()
    assert run.returncode == 130, stderr
    assert sorted(s["stream"] for s in of("summary")) == sorted(urls)
    assert all(s["live"] and s["windows_scored"] > 0 for s in of("summary"))
    assert "restarting" in stderr and "placed" in stderr  # the plain log lines at the driver
    written = json.loads(report.read_text())  # the driver's report, from the actors' events
    assert len(written["sources"]) == 2 and written["backend"].startswith("ray ")


def test_workers_bigger_than_any_node_are_refused_at_once(
    cluster: Cluster, clips: Path, tmp_path: Path
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "dfstream", "scan", str(clips), *MODEL_ARGS, "--ray",
         cluster.ray.address, "--cpus-per-worker", "4", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=cluster.ray.env,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "dfstream: error: --cpus-per-worker 4: no node of the cluster has that many CPUs (the "
        "largest has 1); give at most 1"
    )
