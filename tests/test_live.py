"""Live sources against real local servers: RTSP (ffmpeg + a small RTSP server), HTTP, and
MPEG-TS pushed over UDP by ffmpeg.

The CLI tests run ``python -m dfstream`` with the untrained model, ``--detector none`` and a low
analysis rate so that ResNeXt50 on a CPU keeps up; outages are real (the server process group is
killed, or frozen with SIGSTOP for a stall). Servers are stopped on every path.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dfstream.errors import SourceError
from dfstream.sources import LiveSettings, LiveSource, parse_source
from tests.live_servers import (
    REPO_ROOT,
    black_hole,
    free_port,
    http_server,
    make_hls,
    rtsp_server,
    udp_sender,
    wait_for,
)
from tests.media import write_clip

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command"),
]

PASSWORD = "Tr0ub4dor-s3cret"
FAST = LiveSettings(open_timeout=2.0, read_timeout=2.0, stall_timeout=1.5, backoff_max=1.0)
CLI_ARGS = [
    "--untrained", "--detector", "none", "--window", "4", "--stride", "2", "--batch", "4",
    "--no-dashboard", "--open-timeout", "3", "--read-timeout", "3", "--stall-timeout", "3",
]  # fmt: skip


@pytest.fixture(scope="module")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 320x240 at 25 fps with a keyframe every 10 frames (clients join mid-stream)."""
    path = tmp_path_factory.mktemp("live") / "live.mp4"
    return write_clip(path, frames=100, size=(320, 240), pattern="face", gop=10)


class Cli:
    """``python -m dfstream`` writing JSONL to a file; stdout and stderr go to files too."""

    def __init__(self, tmp_path: Path, sources: list[str], *extra: str) -> None:
        self.jsonl = tmp_path / "events.jsonl"
        self.stdout, self.stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        command = [sys.executable, "-m", "dfstream", *sources, *CLI_ARGS, *extra]
        command += ["--jsonl", str(self.jsonl)]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=err)

    def events(self) -> list[dict[str, Any]]:
        """Complete JSONL lines written so far."""
        if not self.jsonl.exists():
            return []
        text = self.jsonl.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def of(self, kind: str, stream: str | None = None) -> list[dict[str, Any]]:
        """Events of type ``kind`` (of one stream)."""
        return [e for e in self.events() if e["type"] == kind and stream in (None, e.get("stream"))]

    def interrupt(self) -> float:
        """SIGINT; returns the seconds until the process exited."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        return time.monotonic() - start

    def kill(self) -> None:
        """Make sure the process is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def outputs(self) -> str:
        """Everything the process wrote."""
        return "\n".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in (self.stdout, self.stderr, self.jsonl)
            if p.exists()
        )


def _states(cli: Cli, stream: str) -> list[str]:
    return [e["state"] for e in cli.of("status", stream)]


def test_rtsp_outage_reconnect_and_sigint(live_clip: Path, tmp_path: Path) -> None:
    with rtsp_server(live_clip, tmp_path, user="viewer", password=PASSWORD) as server:
        stream = server.url().replace(f"viewer:{PASSWORD}@", "***@")
        cli = Cli(tmp_path, [server.url()], "--analysis-fps", "5")
        try:
            started = time.monotonic()
            assert wait_for(lambda: len(cli.of("score", stream)) >= 2, 90), cli.outputs()
            assert _states(cli, stream)[0] == "connected"
            server.kill()
            assert wait_for(lambda: "disconnected" in _states(cli, stream), 15), cli.outputs()
            time.sleep(5.0)
            server.start()
            assert wait_for(lambda: _states(cli, stream)[-1:] == ["connected"], 30), cli.outputs()
            before = len(cli.of("score", stream))
            assert wait_for(lambda: len(cli.of("score", stream)) > before + 1, 30)
            time.sleep(max(0.0, 20.0 - (time.monotonic() - started)))
            assert cli.process.poll() is None, "a live run must not end on its own"
            elapsed = cli.interrupt()
        finally:
            cli.kill()
    assert elapsed < 5.0, f"exit took {elapsed:.1f} s after SIGINT"
    assert cli.process.returncode == 130
    states = _states(cli, stream)
    outage = states[states.index("disconnected") :]
    assert outage[1] == "reconnecting" and "connected" in outage
    assert states[-1] == "ended"
    events = cli.events()  # every line parses, also the ones written during the shutdown
    assert len(events) == len(cli.jsonl.read_text().splitlines())
    (summary,) = cli.of("summary")
    assert summary["stream"] == stream and summary["live"] is True
    assert summary["reconnects"] >= 1 and summary["latency_p95_ms"] is not None
    assert all(e["wall_time"] > 0 for e in cli.of("score"))
    assert PASSWORD not in cli.outputs()
    assert "***@" in cli.stdout.read_text()  # the summary table shows the source, redacted


def test_four_streams_share_batches_and_bad_sources_fail_alone(
    live_clip: Path, tmp_path: Path
) -> None:
    paths = ("/a", "/b", "/c", "/d")
    with rtsp_server(live_clip, tmp_path, paths=paths) as server, black_hole() as silent:
        listing = tmp_path / "cams.txt"
        listing.write_text(
            "# four cameras on one server\n" + "".join(f"{server.url(p)}\n" for p in paths)
        )
        bad = [
            f"rtsp://127.0.0.1:{free_port()}/x",  # closed port
            server.url("/nope"),  # wrong path
            f"rtsp://127.0.0.1:{silent}/x",  # a host that never answers
        ]
        # Long read/stall timeouts: once the server is frozen, every reader sits inside FFmpeg
        # on a silent socket, and Ctrl-C must still end the run within 5 s.
        cli = Cli(
            tmp_path, bad, "--sources", str(listing), "--analysis-fps", "3",
            "--read-timeout", "60", "--stall-timeout", "60",
        )  # fmt: skip
        try:
            good = [server.url(p) for p in paths]
            assert wait_for(lambda: all(cli.of("score", g) for g in good), 120), cli.outputs()
            assert cli.process.poll() is None
            server.pause()
            time.sleep(1.0)
            elapsed = cli.interrupt()
        finally:
            cli.kill()
    assert elapsed < 5.0
    failed = {e["stream"]: e["reason"] for e in cli.of("status") if e["state"] == "failed"}
    assert set(failed) == set(bad)
    assert "connection refused" in failed[bad[0]]
    assert "404" in failed[bad[1]]
    assert "--open-timeout" in failed[bad[2]]
    stderr = cli.stderr.read_text()
    for spec in bad:
        (line,) = [ln for ln in stderr.splitlines() if ln.startswith(f"dfstream: error: {spec}")]
        assert line == f"dfstream: error: {failed[spec]}"
    (stats,) = cli.of("batch_stats")
    assert stats["multi_stream_batches"] >= 1 and stats["max_streams_per_batch"] >= 2
    assert len(cli.of("summary")) == 7
    ended = [e for e in cli.of("status") if e["state"] == "ended"]
    assert {e["stream"] for e in ended} == set(good) and cli.process.returncode == 130


@pytest.mark.parametrize("case", ["closed port", "wrong path", "silent host", "bad password"])
def test_open_failures_are_one_line_within_the_open_timeout(
    case: str, live_clip: Path, tmp_path: Path
) -> None:
    with (
        rtsp_server(live_clip, tmp_path, user="viewer", password=PASSWORD) as server,
        black_hole() as silent,
    ):
        spec = {
            "closed port": f"rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/x",
            "wrong path": server.url("/nope"),
            "silent host": f"rtsp://viewer:{PASSWORD}@127.0.0.1:{silent}/x",
            "bad password": server.url().replace(PASSWORD, "wrong-" + PASSWORD),
        }[case]
        start = time.monotonic()
        with pytest.raises(SourceError) as info:
            LiveSource.open(parse_source(spec), stream_id="s", settings=FAST)
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < FAST.open_timeout + 1.0, f"{case} took {elapsed:.1f} s"
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith("rtsp://***@127.0.0.1:")


def _collect(source: LiveSource, statuses: list[tuple[str, str]], count: list[int]) -> None:
    try:
        for _frame in source.frames():
            count[0] += 1
    except SourceError as exc:
        statuses.append(("error", str(exc)))


def test_stall_is_detected_and_reconnected(live_clip: Path, tmp_path: Path) -> None:
    statuses: list[tuple[str, str]] = []
    count = [0]
    with rtsp_server(live_clip, tmp_path) as server:
        source = LiveSource.open(
            parse_source(server.url()),
            stream_id="s",
            settings=FAST,
            on_status=lambda *s: statuses.append(s),
        )
        reader = threading.Thread(target=_collect, args=(source, statuses, count), daemon=True)
        reader.start()
        try:
            assert wait_for(lambda: count[0] > 10, 10)
            server.pause()
            assert wait_for(lambda: "stalled" in [s for s, _ in statuses], 8), statuses
            server.resume()
            assert wait_for(lambda: [s for s, _ in statuses][-1:] == ["connected"], 15), statuses
            frames_after = count[0]
            assert wait_for(lambda: count[0] > frames_after + 10, 10)
        finally:
            source.close()
            reader.join(timeout=5)
    states = [s for s, _ in statuses]
    assert states[0] == "stalled" and states[1] == "reconnecting"
    assert "--stall-timeout" in statuses[0][1]


def test_reconnect_limit_gives_up_with_one_line(live_clip: Path, tmp_path: Path) -> None:
    statuses: list[tuple[str, str]] = []
    settings = LiveSettings(open_timeout=1.0, read_timeout=1.0, reconnect=2, backoff_base=0.2)
    with rtsp_server(live_clip, tmp_path) as server:
        source = LiveSource.open(
            parse_source(server.url()),
            stream_id="s",
            settings=settings,
            on_status=lambda *s: statuses.append(s),
        )
        frames = source.frames()
        next(frames)
        server.kill()
        with pytest.raises(SourceError, match=r"gave up after 2 reconnect attempt\(s\)") as info:
            for _frame in frames:
                pass
    assert "\n" not in str(info.value)
    assert [s for s, _ in statuses] == ["disconnected", "reconnecting", "reconnecting"]


def test_http_progressive_and_hls_play_to_the_end(live_clip: Path, tmp_path: Path) -> None:
    make_hls(live_clip, tmp_path / "hls")
    # Progressive download needs the index first: http.server does not answer Range requests.
    write_clip(tmp_path / "clip.mp4", frames=100, size=(320, 240), gop=10, faststart=True)
    statuses: list[tuple[str, str]] = []
    with http_server(tmp_path) as base:
        for spec in (f"{base}/clip.mp4", f"{base}/hls/index.m3u8"):
            with LiveSource.open(
                parse_source(spec),
                stream_id=spec,
                settings=FAST,
                on_status=lambda *s: statuses.append(s),
            ) as source:
                assert source.live is False  # a file over HTTP is analysed losslessly
                assert source.media_duration_s == pytest.approx(4.0, abs=0.2)
                frames = list(source.frames())
            assert len(frames) == 100, spec
            times = [f.pts_seconds for f in frames]
            assert times == sorted(times) and times[-1] == pytest.approx(99 / 25, abs=0.05)
        with pytest.raises(SourceError, match="404"):
            LiveSource.open(parse_source(f"{base}/missing.mp4"), stream_id="m", settings=FAST)
    assert statuses == []  # the end of a file over HTTP is the end, not an outage


def test_udp_mpegts_push_outage_and_sigint(live_clip: Path, tmp_path: Path) -> None:
    """An encoder pushing MPEG-TS to dfstream over UDP (ffmpeg here): frames are scored, the
    sender going silent is a stall, its return a reconnect, and Ctrl-C ends the run."""
    with udp_sender(live_clip) as sender:
        stream = sender.url
        cli = Cli(tmp_path, [stream], "--analysis-fps", "5")
        try:
            assert wait_for(lambda: len(cli.of("score", stream)) >= 2, 90), cli.outputs()
            assert _states(cli, stream)[0] == "connected"
            sender.kill()
            assert wait_for(lambda: "stalled" in _states(cli, stream), 15), cli.outputs()
            sender.start()
            assert wait_for(lambda: _states(cli, stream)[-1:] == ["connected"], 30), cli.outputs()
            before = len(cli.of("score", stream))
            assert wait_for(lambda: len(cli.of("score", stream)) > before + 1, 30)
            assert cli.process.poll() is None, "a live run must not end on its own"
            elapsed = cli.interrupt()
        finally:
            cli.kill()
    assert elapsed < 5.0, f"exit took {elapsed:.1f} s after SIGINT"
    assert cli.process.returncode == 130
    states = _states(cli, stream)
    outage = states[states.index("stalled") :]
    assert outage[1] == "reconnecting" and "connected" in outage and states[-1] == "ended"
    (summary,) = cli.of("summary")
    assert summary["stream"] == stream and summary["live"] is True
    assert summary["reconnects"] >= 1 and summary["error"] is None
