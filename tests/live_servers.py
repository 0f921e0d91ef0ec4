"""Real local servers for live-source tests: RTSP (ffmpeg + ``tests.rtsp_server``), HTTP, and
an ffmpeg pushing MPEG-TS over UDP as an IP encoder does.

Every server binds 127.0.0.1 on a free port and is stopped on every path: use them through the
context managers (or the fixtures in ``test_live.py``), which kill the whole process group.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspServer:
    """``python -m tests.rtsp_server`` in its own process group; kill/start/pause it at will."""

    def __init__(
        self,
        clip: Path,
        workdir: Path,
        *,
        paths: tuple[str, ...] = ("/x",),
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.clip, self.workdir, self.paths = clip, workdir, paths
        self.user, self.password = user, password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"rtsp_server_{self.port}.log"

    def url(self, path: str | None = None, *, credentials: bool = True) -> str:
        """The URL of ``path`` (default: the first), with the credentials when there are any."""
        auth = f"{self.user}:{self.password}@" if credentials and self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path or self.paths[0]}"

    def start(self) -> None:
        """Start (or restart) serving on the same port; returns once it accepts connections."""
        command = [
            sys.executable, "-m", "tests.rtsp_server", "--port", str(self.port),
            "--clip", str(self.clip), "--sdp", str(self.workdir / f"{self.port}.sdp"),
        ]  # fmt: skip
        for path in self.paths:
            command += ["--path", path]
        if self.user:
            command += ["--user", self.user, "--password", self.password or ""]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.kill()
            raise RuntimeError(f"RTSP test server did not start: {self.log.read_text()}")

    def kill(self) -> None:
        """Kill the server and its ffmpeg at once (an outage); safe to call more than once."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def pause(self) -> None:
        """Freeze server and ffmpeg (SIGSTOP): connections stay open, no data flows (a stall)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause``."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def rtsp_server(clip: Path, workdir: Path, **kwargs: object) -> Iterator[RtspServer]:
    """A started ``RtspServer`` that is killed on every way out."""
    server = RtspServer(clip, workdir, **kwargs)  # type: ignore[arg-type]
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError, AssertionError):
            server.resume()
        server.kill()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UdpSender:
    """``ffmpeg -re`` pushing ``clip`` (looped, video copied) as MPEG-TS to a UDP port on
    127.0.0.1, like an IP encoder; ``kill`` and ``start`` again for an outage."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What dfstream listens on."""
        return f"udp://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start sending (again)."""
        command = [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(self.clip), "-map", "0:v", "-c", "copy", "-f", "mpegts",
            f"{self.url}?pkt_size=1316",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """Stop sending at once; safe to call more than once."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def udp_sender(clip: Path) -> Iterator[UdpSender]:
    """A started ``UdpSender`` on a free port, killed on every way out."""
    sender = UdpSender(clip, free_udp_port())
    try:
        sender.start()
        yield sender
    finally:
        sender.kill()


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers, like a host that drops
    packets; yields the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1; yields the base URL (no trailing slash)."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_hls(clip: Path, folder: Path) -> Path:
    """Cut ``clip`` into a VOD HLS playlist with ffmpeg; returns the ``.m3u8`` path."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "index.m3u8"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy",
            "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", str(playlist),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return playlist


def wait_for(predicate: object, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(predicate())  # type: ignore[operator]
