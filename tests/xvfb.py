"""A real X server for GUI tests: Xvfb (Debian package ``xvfb``) on a display number it picks
itself (``-displayfd``), so tests never collide with a desktop or with each other.

``x_display`` is a session fixture (import it into a test module): the server stays up until
the test session ends, because Xlib ends the whole process when it opens a display after an
X server it used went away.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class XvfbUnavailable(RuntimeError):
    """Xvfb is missing or did not start; the message says why."""


@contextmanager
def xvfb(size: str = "1280x900x24", timeout: float = 10.0) -> Iterator[str]:
    """Run Xvfb for the ``with`` block and yield its display name (``:N``)."""
    binary = shutil.which("Xvfb")
    if binary is None:
        raise XvfbUnavailable("Xvfb is not installed (Debian: apt-get install xvfb; .ci/run does)")
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [binary, "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + timeout
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise XvfbUnavailable(f"Xvfb gave no display number within {timeout:g} s")
            chunk = os.read(read_fd, 16)
            if not chunk:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise XvfbUnavailable(f"Xvfb exited: {' '.join(err.split())[-300:]}")
            number += chunk
        yield f":{int(number)}"
    finally:
        os.close(read_fd)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """An Xvfb display for the whole test session (skips with the reason when unavailable)."""
    try:
        with xvfb() as name:
            yield name
    except XvfbUnavailable as exc:
        pytest.skip(str(exc))
