"""Servers the project did not write, started on 127.0.0.1 for the live tests.

- ``GstRtsp``: GStreamer's gst-rtsp-server (Debian ``gir1.2-gst-rtsp-server-1.0``), through
  ``tests/gst_rtsp_server.py`` run with Debian's ``/usr/bin/python3`` (where GI lives);
- ``PerlRtsp``: ``rtsp-server-perl`` (Debian package of the RTSP::Server CPAN module), a relay
  that an encoder publishes to (ffmpeg, ANNOUNCE/RECORD) and players read from, RTP over UDP;
- ``Mosquitto``: the Eclipse Mosquitto MQTT broker (Debian ``mosquitto``).

Each runs in its own process group and is killed on every way out (context managers below);
``kill`` + ``start`` again is a server restart on the same port, ``pause``/``resume`` (SIGSTOP)
freezes it with its connections open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tests.live_servers import REPO_ROOT, free_port, free_udp_port

SYSTEM_PYTHON = "/usr/bin/python3"


def gst_rtsp_available() -> bool:
    """True when Debian's python3 can load gst-rtsp-server through GObject introspection."""
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    return done.returncode == 0


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _wait_described(port: int, path: str, timeout: float) -> bool:
    """True once the RTSP server on ``port`` answers DESCRIBE for ``path`` with 200 OK."""
    request = (
        f"DESCRIBE rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n"
        "Accept: application/sdp\r\n\r\n"
    ).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
                probe.sendall(request)
                status_line = probe.recv(4096).split(b"\r\n", 1)[0]
            if b" 200 " in status_line:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class _Process:
    """One server process (group) with a log file."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def _spawn(
        self, command: Sequence[str], *, stdout: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in its own session, stderr (and stdout unless given) to the log."""
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start(self) -> None:
        """Start the server; returns once it serves."""
        raise NotImplementedError

    def _signal(self, signum: int) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)

    def kill(self) -> None:
        """Kill the server at once (an outage); safe to call more than once."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
        self.processes = []

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing is sent."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause``."""
        self._signal(signal.SIGCONT)


class GstRtsp(_Process):
    """``tests/gst_rtsp_server.py``: gst-rtsp-server with a camera (or file) behind it."""

    def __init__(
        self,
        clip: Path,
        workdir: Path,
        *,
        mode: str = "camera",
        protocols: str = "any",
        user: str | None = None,
        password: str | None = None,
        start_at: float | None = None,
        stop_after: float | None = None,
    ) -> None:
        super().__init__(workdir, "gst_rtsp")
        self.clip, self.mode, self.protocols = clip, mode, protocols
        self.user, self.password = user, password
        self.start_at, self.stop_after = start_at, stop_after
        self.port = free_port()

    def url(self, path: str = "/x", *, password: str | None = None) -> str:
        """The URL of ``path``, with the credentials (``password`` replaces the right one)."""
        auth = f"{self.user}:{password or self.password}@" if self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Start (or restart) on the same port; returns once it listens."""
        command = [
            SYSTEM_PYTHON, "tests/gst_rtsp_server.py", "--port", str(self.port),
            "--clip", str(self.clip), "--mode", self.mode, "--protocols", self.protocols,
        ]  # fmt: skip
        if self.user:
            command += ["--user", self.user, "--password", self.password or ""]
        if self.start_at is not None:
            command += ["--start", str(self.start_at)]
        if self.stop_after is not None:
            command += ["--stop-after", str(self.stop_after)]
        process = self._spawn(command, stdout=subprocess.PIPE)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            self.kill()
            raise RuntimeError(f"gst-rtsp-server did not start: {self.log.read_text()}")


class PerlRtsp(_Process):
    """``rtsp-server-perl`` with ffmpeg publishing ``clip`` to it in real time, looping."""

    def __init__(self, clip: Path, workdir: Path) -> None:
        super().__init__(workdir, "perl_rtsp")
        self.clip = clip
        self.port, self.source_port = free_port(), free_port()
        self.rtp_port = free_udp_port() // 2 * 2

    def url(self, path: str = "/x") -> str:
        """Where players read ``path``."""
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Start the server and its publisher; returns once the stream is announced."""
        self._spawn(
            [
                "rtsp-server-perl", "--clientport", str(self.port),
                "--serverport", str(self.source_port),
                "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                "--rtp_start_port", str(self.rtp_port), "--loglevel", "2",
            ]
        )  # fmt: skip
        if not (_wait_port(self.port, 10) and _wait_port(self.source_port, 10)):
            self.kill()
            raise RuntimeError(f"rtsp-server-perl did not start: {self.log.read_text()}")
        self._spawn(
            [
                "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                "-i", str(self.clip), "-map", "0:v", "-c", "copy", "-f", "rtsp",
                "-rtsp_transport", "udp", f"rtsp://127.0.0.1:{self.source_port}/x",
            ]
        )  # fmt: skip
        # ANNOUNCE + RECORD: the mount exists once the publisher is in, which takes from a few
        # hundred ms to seconds on a loaded machine; ask the server until it describes the stream.
        if not _wait_described(self.port, "/x", 20):
            self.kill()
            raise RuntimeError(f"rtsp-server-perl never announced /x: {self.log.read_text()}")


class Mosquitto(_Process):
    """The Mosquitto broker on 127.0.0.1, anonymous access, no persistence."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "mosquitto")
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )

    def start(self) -> None:
        """Start the broker; returns once it listens."""
        self._spawn([shutil.which("mosquitto") or "mosquitto", "-c", str(self.config)])
        if not _wait_port(self.port, 10):
            self.kill()
            raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")


ServerT = TypeVar("ServerT", bound="_Process")


@contextlib.contextmanager
def running(server: ServerT) -> Iterator[ServerT]:
    """``server`` started, and killed on every way out."""
    try:
        server.start()
        yield server
    finally:
        server.kill()
