"""Live RTSP against servers the project did not write: GStreamer's gst-rtsp-server and
rtsp-server-perl (see ``tests/real_servers.py``), on 127.0.0.1, started and killed by the tests.

What is checked: TCP and UDP transport; a camera-like GOP (1 s) and a long one (10 s, joined
mid-GOP: no stall is reported while the keyframe is on its way); 519.mp4 joined at an open-GOP
keyframe (every frame that reaches the analyser is one of the file's own frames, with the
face box where YuNet finds it on the file); Basic authentication (wrong password: one line,
exit 3, password never printed); server restarts; a server that accepts and never sends; the
CLI run of issue 13 with a Prometheus scrape during it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from dfstream import AnalysisConfig
from dfstream.api import Analysis
from dfstream.faces.detect import SHIPPED_YUNET, YuNetDetector
from dfstream.sinks.base import Sink
from dfstream.sources import LiveSettings, LiveSource, parse_source
from dfstream.tools.benchkit import bench_model
from dfstream.types import Frame, TrackBoxes
from tests.live_servers import REPO_ROOT, free_port, wait_for
from tests.media import write_clip
from tests.real_servers import GstRtsp, PerlRtsp, gst_rtsp_available, running

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(not gst_rtsp_available(), reason="needs gst-rtsp-server (see .ci/run)"),
]
needs_perl = pytest.mark.skipif(
    shutil.which("rtsp-server-perl") is None, reason="needs rtsp-server-perl (see .ci/run)"
)
PASSWORD = "Corr3ct-h0rse"
FAST = LiveSettings(open_timeout=5.0, read_timeout=3.0, stall_timeout=3.0, backoff_max=1.0)


@pytest.fixture(scope="module")
def camera_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 s of a face at 320x240, 25 fps: keyframe every 1 s (camera-like) and every 10 s."""
    folder = tmp_path_factory.mktemp("cams")
    return {
        "gop1s": write_clip(folder / "gop1s.mp4", frames=300, size=(320, 240), pattern="face",
                            gop=25),
        "gop10s": write_clip(folder / "gop10s.mp4", frames=300, size=(320, 240), pattern="face",
                             gop=250),
    }  # fmt: skip


def _read(source: LiveSource, frames: list[Frame], stop: threading.Event) -> None:
    for frame in source.frames():
        frames.append(frame)
        if stop.is_set():
            break


def _reader(source: LiveSource) -> tuple[list[Frame], threading.Event, threading.Thread]:
    frames: list[Frame] = []
    stop = threading.Event()
    thread = threading.Thread(target=_read, args=(source, frames, stop), daemon=True)
    thread.start()
    return frames, stop, thread


@pytest.mark.parametrize(
    ("transport", "gop"), [("tcp", "gop1s"), ("udp", "gop1s"), ("tcp", "gop10s")]
)
def test_camera_gops_over_tcp_and_udp(
    transport: str, gop: str, camera_clips: dict[str, Path], tmp_path: Path
) -> None:
    settings = LiveSettings(open_timeout=5, read_timeout=3, stall_timeout=3, transport=transport)
    statuses: list[tuple[str, str]] = []
    server = GstRtsp(camera_clips[gop], tmp_path, protocols=transport, start_at=1.5)
    with running(server):
        started = time.monotonic()
        source = LiveSource.open(parse_source(server.url()), stream_id="cam", settings=settings,
                                 on_status=lambda *s: statuses.append(s))  # fmt: skip
        frames, stop, thread = _reader(source)
        try:
            assert wait_for(lambda: frames, 12), statuses
            first_after = time.monotonic() - started
            assert wait_for(lambda: len(frames) >= 50, 10), statuses
        finally:
            stop.set()
            source.close()
            thread.join(5)
    # A 10 s GOP joined 1.5 s in: the keyframe comes ~8.5 s later, beyond --stall-timeout 3,
    # and that is no stall: data was flowing all along.
    assert statuses == []
    assert first_after < (2.5 if gop == "gop1s" else 11.0)
    times = [f.pts_seconds for f in frames]
    assert times == sorted(times)
    assert source.corrupt_frames <= 1


def _thumb(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class _FrameKeeper(Sink):
    """A frame sink keeping a thumbnail and the tracked boxes of every analysed frame."""

    def __init__(self) -> None:
        self.seen: list[tuple[np.ndarray, TrackBoxes, np.ndarray]] = []

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        self.seen.append((_thumb(frame.image_bgr), tracks, frame.image_bgr))

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        pass


def test_519_joined_at_open_gop_keyframe_only_clean_frames_reach_analysis(
    real_video: Path, tmp_path: Path
) -> None:
    """The camera starts at 519.mp4's keyframe at 20 s: an open-GOP I picture whose followers
    refer to pictures before it. Nothing may reach the analyser until the clean keyframe at
    the loop (0 s); every analysed frame is then one of the file's frames, boxes included."""
    with av.open(str(real_video)) as container:
        originals = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    thumbs = np.stack([_thumb(image) for image in originals])
    keeper = _FrameKeeper()
    config = AnalysisConfig(
        sources=(), detector="yunet", window=4, stride=2, analysis_fps=5.0, stall_timeout=25,
        read_timeout=5, open_timeout=5,
    )  # fmt: skip
    with running(GstRtsp(real_video, tmp_path, start_at=18, user="u", password=PASSWORD)) as gst:
        run = Analysis(config, sinks=[keeper], model=bench_model("tiny", window=4),
                       persistent=True)  # fmt: skip
        run.start()
        try:
            run.add_source(gst.url())
            assert wait_for(lambda: len(keeper.seen) >= 60, 40)
        finally:
            run.stop()
            result = run.join(30)
    (summary,) = result.summaries
    assert summary.corrupt_frames >= 1  # the open-GOP keyframe and what followed it
    assert summary.frames_decoded >= 60
    detector = YuNetDetector(SHIPPED_YUNET)
    boxes_checked = 0
    for n, (thumb, tracks, image) in enumerate(keeper.seen):
        errors = np.abs(thumbs - thumb).mean(axis=(1, 2, 3))
        match = int(errors.argmin())
        assert errors[match] < 3.0, f"analysed frame {n} is none of the file's frames"
        if n == 0:
            assert match == 0  # the first analysed frame is the clean keyframe at 0 s
        if tracks and n % 5 == 0:
            truth = detector.detect(originals[match])
            assert truth, f"YuNet finds no face on file frame {match}"
            # Tracked boxes are held between detections (every 5th sampled frame), so a moving
            # head drifts a little from them; a corrupt picture has no face there at all.
            assert _iou(tracks[0][1], truth[0].box) > 0.3
            boxes_checked += 1
        del image
    assert boxes_checked >= 5


def test_only_corrupt_frames_is_reported_as_corrupt_not_no_faces(
    real_video: Path, tmp_path: Path
) -> None:
    statuses: list[tuple[str, str]] = []
    settings = LiveSettings(open_timeout=5, read_timeout=3, stall_timeout=2, reconnect=0)
    with running(GstRtsp(real_video, tmp_path, start_at=8)) as gst:
        source = LiveSource.open(
            parse_source(gst.url()), stream_id="s", settings=settings,
            on_status=lambda *s: statuses.append(s),
        )  # fmt: skip
        with pytest.raises(Exception, match="only corrupt frames") as info:
            for _frame in source.frames():
                pytest.fail("a frame of the open GOP passed the gate")
    assert statuses[0][0] == "corrupt" and "--stall-timeout" in statuses[0][1]
    assert "gave up (--reconnect 0)" in str(info.value) and source.corrupt_frames > 0


def test_accepts_but_never_sends_is_a_stall(camera_clips: dict[str, Path], tmp_path: Path) -> None:
    statuses: list[tuple[str, str]] = []
    with running(GstRtsp(camera_clips["gop1s"], tmp_path, stop_after=3.0)) as gst:
        source = LiveSource.open(parse_source(gst.url()), stream_id="s", settings=FAST,
                                 on_status=lambda *s: statuses.append(s))  # fmt: skip
        frames, stop, thread = _reader(source)
        try:
            assert wait_for(lambda: "stalled" in [s for s, _ in statuses], 12), statuses
            assert wait_for(lambda: "reconnecting" in [s for s, _ in statuses], 5)
        finally:
            stop.set()
            source.close()
            thread.join(8)
    assert frames and "--stall-timeout" in dict(statuses)["stalled"]


@needs_perl
def test_perl_server_udp_restart_reconnects_without_garbage(
    camera_clips: dict[str, Path], tmp_path: Path
) -> None:
    statuses: list[tuple[str, str]] = []
    settings = LiveSettings(open_timeout=5, read_timeout=2, stall_timeout=2, backoff_max=1.0,
                            transport="udp")  # fmt: skip
    server = PerlRtsp(camera_clips["gop1s"], tmp_path)
    with running(server):
        source = LiveSource.open(parse_source(server.url()), stream_id="s", settings=settings,
                                 on_status=lambda *s: statuses.append(s))  # fmt: skip
        frames, stop, thread = _reader(source)
        try:
            assert wait_for(lambda: len(frames) > 30, 15), statuses
            server.kill()
            assert wait_for(lambda: statuses, 10)
            server.start()
            assert wait_for(lambda: [s for s, _ in statuses][-1:] == ["connected"], 30), statuses
            count = len(frames)
            assert wait_for(lambda: len(frames) > count + 30, 15)
        finally:
            stop.set()
            source.close()
            thread.join(8)
    states = [s for s, _ in statuses]
    assert states[0] in ("stalled", "disconnected") and "reconnecting" in states
    assert source.corrupt_frames <= 2  # a keyframe every second: resync is quick
    # Every frame after the restart is a clean picture of the face clip: the skin-coloured
    # oval sits on a plain background; a corrupt picture smears grey/green blocks over it.
    spread = [float(np.median(f.image_bgr.reshape(-1, 3), axis=0).std()) for f in frames]
    assert max(spread) - min(spread) < 15


def _cli(tmp_path: Path, url: str, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "dfstream", url, "--untrained", "--no-dashboard",
               "--jsonl", str(tmp_path / "out.jsonl"), *extra]  # fmt: skip
    with (tmp_path / "stdout.txt").open("wb") as out, (tmp_path / "stderr.txt").open("wb") as err:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=err)


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "out.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


def test_wrong_password_is_one_line_access_denied_exit_3(real_video: Path, tmp_path: Path) -> None:
    with running(
        GstRtsp(real_video, tmp_path, mode="file", user="viewer", password=PASSWORD)
    ) as gst:
        url = gst.url(password="wr0ng-" + PASSWORD)
        cli = _cli(tmp_path, url, "--open-timeout", "5")
        cli.wait(timeout=180)
    stderr = (tmp_path / "stderr.txt").read_text()
    errors = [line for line in stderr.splitlines() if line.startswith("dfstream: error")]
    assert cli.returncode == 3, stderr
    assert len(errors) == 1 and "access denied" in errors[0] and "***@" in errors[0]
    everything = (
        stderr + (tmp_path / "stdout.txt").read_text() + (tmp_path / "out.jsonl").read_text()
    )
    assert PASSWORD not in everything


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_issue13_519_with_password_restart_and_metrics(real_video: Path, tmp_path: Path) -> None:
    """``dfstream rtsp://user:pw@127.0.0.1:PORT/x --untrained --no-dashboard --jsonl out.jsonl``
    against gst-rtsp-server serving 519.mp4 (qtdemux ! h264parse ! rtph264pay), restarted
    mid-stream, with ``--metrics-port``."""
    metrics_port = free_port()
    server = GstRtsp(real_video, tmp_path, mode="file", user="viewer", password=PASSWORD)
    with running(server):
        stream = server.url().replace(f"viewer:{PASSWORD}@", "***@")
        cli = _cli(tmp_path, server.url(), "--metrics-port", str(metrics_port),
                   "--stall-timeout", "4", "--read-timeout", "4")  # fmt: skip
        try:

            def scores() -> int:
                return len([e for e in _events(tmp_path) if e["type"] == "score"])

            assert wait_for(lambda: scores() >= 3, 150), (tmp_path / "stderr.txt").read_text()
            scrape = _scrape(metrics_port)
            server.kill()
            time.sleep(2.0)
            server.start()

            def connects() -> int:
                return [e.get("state") for e in _events(tmp_path)].count("connected")

            assert wait_for(lambda: connects() >= 2, 60), (tmp_path / "stderr.txt").read_text()
            before = scores()
            assert wait_for(lambda: scores() >= before + 3, 90)
            cli.send_signal(signal.SIGINT)
            cli.wait(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
    events = _events(tmp_path)
    (summary,) = [e for e in events if e["type"] == "summary"]
    statuses = [e for e in events if e["type"] == "status"]
    assert [e["state"] for e in statuses].count("connected") >= 2
    assert all(e["state"] != "corrupt" for e in statuses)
    assert all(e.get("corrupt_frames") == 0 for e in statuses if e["state"] != "ended")
    assert summary["corrupt_frames"] == 0 and summary["stream"] == stream
    # Every analysed frame has a face, and the windows cover them: T=20, stride 5, per track.
    analysed = summary["frames_analyzed"]
    assert summary["crops_embedded"] >= 0.9 * analysed
    covered = summary["windows_scored"] * 5 + 15 * summary["tracks"]
    assert covered >= 0.9 * analysed, summary
    assert PASSWORD not in (tmp_path / "out.jsonl").read_text() + scrape
    for series in ("frames_decoded_total", "frames_analyzed_total", "frames_corrupt_total",
                   "reconnects_total", "crops_total", "windows_total"):  # fmt: skip
        assert f'dfstream_{series}{{stream="{stream}"}}' in scrape, series
    assert f'dfstream_stream_state{{state="connected",stream="{stream}"}} 1.0' in scrape
    assert f'dfstream_verdict{{stream="{stream}",verdict="' in scrape
    assert "dfstream_latency_seconds_bucket" in scrape and "dfstream_batch_size_bucket" in scrape
