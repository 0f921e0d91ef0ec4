"""The FFmpeg side of live sources: the input (URL or device, format, options) of each kind,
opening it with timeouts, and FFmpeg's errors in words a user can act on.

Every FFmpeg input option dfstream sets is in ``_INPUTS`` below, one builder per live kind:

- all network inputs get ``flags=low_delay`` and a small probe (``probesize`` 500 kB,
  ``analyzeduration`` 1 s) so that decoding starts quickly (against gst-rtsp-server serving
  519.mp4: first frame 0.9 s after opening instead of 1.0 s with FFmpeg's defaults);
- RTSP also gets ``rtsp_transport`` (TCP by default: no UDP packet loss through NAT and
  firewalls) and a socket ``timeout`` in microseconds. Never ``fflags=nobuffer``: it throws
  away the packets read while probing, i.e. the keyframe a server starts a session with, so
  decoding begins at a later picture whose references are missing (against gst-rtsp-server
  serving 519.mp4: 67 of the first 200 frames corrupt with it, 0 without; see
  ``benchmarks/rtsp_latency.py``). Frames that still arrive corrupt are dropped by
  ``dfstream.sources.integrity.FrameGate``;
- HTTP and HLS get ``rw_timeout`` (microseconds) and FFmpeg's own reconnect off (dfstream
  reconnects, with backoff);
- UDP is read as MPEG-TS (``format=mpegts``) from the local address in the URL, with a
  ``timeout`` in microseconds (nothing arriving is a stall) and ``overrun_nonfatal`` (a burst
  that overfills FFmpeg's receive FIFO loses packets instead of ending the stream);
- webcams map to the platform's FFmpeg capture device: ``v4l2`` on Linux (``/dev/videoN``),
  ``avfoundation`` on macOS (device index ``N``) and ``dshow`` on Windows, where DirectShow
  wants a device *name*: ``webcam:Integrated Camera`` opens ``video=Integrated Camera``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import av.error

from dfstream.errors import SourceError, UsageError
from dfstream.sources.base import LiveSettings
from dfstream.sources.spec import SourceKind, SourceSpec, safe_message, webcam_device

_NETWORK_OPTIONS = {"flags": "low_delay", "probesize": "500000", "analyzeduration": "1000000"}


@dataclass(frozen=True)
class FFmpegInput:
    """How to open one live source with ``av.open``.

    ``url`` is what FFmpeg opens (it may carry credentials: never show it, show ``display``),
    ``format`` the demuxer or capture device (None = probe), ``options`` the FFmpeg options.
    ``ends_normally`` is True when the end of the data is the end of the video (HTTP files, VOD
    playlists); for cameras (RTSP, webcams) an end of stream is an outage and leads to a
    reconnect.
    """

    url: str
    display: str
    kind: SourceKind
    format: str | None
    options: dict[str, str]
    ends_normally: bool


def _socket_us(settings: LiveSettings) -> str:
    return str(int(max(settings.open_timeout, settings.read_timeout) * 1_000_000))


def _rtsp(spec: SourceSpec, settings: LiveSettings, platform: str) -> FFmpegInput:
    options = _NETWORK_OPTIONS | {
        "rtsp_transport": settings.transport,
        "timeout": _socket_us(settings),
    }
    return FFmpegInput(spec.url, spec.display, spec.kind, "rtsp", options, ends_normally=False)


def _http(spec: SourceSpec, settings: LiveSettings, platform: str) -> FFmpegInput:
    # No fflags=nobuffer here either: it discards the packets read while probing.
    options = _NETWORK_OPTIONS | {"rw_timeout": _socket_us(settings), "reconnect": "0"}
    fmt = "hls" if spec.kind is SourceKind.HLS else None
    return FFmpegInput(spec.url, spec.display, spec.kind, fmt, options, ends_normally=True)


def _udp(spec: SourceSpec, settings: LiveSettings, platform: str) -> FFmpegInput:
    options = _NETWORK_OPTIONS | {"timeout": _socket_us(settings), "overrun_nonfatal": "1"}
    return FFmpegInput(spec.url, spec.display, spec.kind, "mpegts", options, ends_normally=False)


def webcam_input(text: str, *, platform: str | None = None) -> tuple[str, str]:
    """``(device, format)`` of a webcam spec on ``platform`` (default: this machine)."""
    platform = platform or sys.platform
    device = webcam_device(text)
    if device.startswith("/dev/video"):
        return device, "v4l2"
    if platform.startswith("linux"):
        if not device.isdigit():
            raise UsageError(f"{text}: on Linux use webcam:N (a number) or /dev/videoN")
        return f"/dev/video{device}", "v4l2"
    if platform == "darwin":
        return device, "avfoundation"
    if platform.startswith("win"):
        return f"video={device}", "dshow"
    raise UsageError(f"{text}: webcams are supported on Linux, macOS and Windows only")


def _webcam(spec: SourceSpec, settings: LiveSettings, platform: str) -> FFmpegInput:
    device, fmt = webcam_input(spec.url, platform=platform)
    return FFmpegInput(device, spec.display, spec.kind, fmt, {}, ends_normally=False)


_INPUTS: dict[SourceKind, Callable[[SourceSpec, LiveSettings, str], FFmpegInput]] = {
    SourceKind.RTSP: _rtsp,
    SourceKind.HTTP: _http,
    SourceKind.HLS: _http,
    SourceKind.UDP: _udp,
    SourceKind.WEBCAM: _webcam,
}


def ffmpeg_input(
    spec: SourceSpec, settings: LiveSettings, *, platform: str | None = None
) -> FFmpegInput:
    """The FFmpeg input of a live ``spec`` (see the module docstring for the options)."""
    build = _INPUTS.get(spec.kind)
    if build is None:
        raise SourceError(f"{spec.display}: {spec.kind.value} sources have no FFmpeg input")
    return build(spec, settings, platform or sys.platform)


_CONVERT_THREADS: dict[str, Any] = {"threads": 1}


def to_bgr(frame: Any) -> Any:
    """A decoded video frame as a (H, W, 3) uint8 BGR array, converted on the calling thread.

    swscale's "automatic" threading (PyAV's default) starts fresh threads for every frame it
    converts: on 2 cores that made decoding plus conversion of a 720p H.264 file 449 f/s and 2.6
    ms CPU per frame, against 923 f/s and 1.7 ms with one thread (``dfstream bench``'s bare
    decode figure uses this function too). PyAV releases before 13 have no ``threads`` option
    and convert as they always did.
    """
    try:
        return frame.to_ndarray(format="bgr24", **_CONVERT_THREADS)
    except TypeError:
        _CONVERT_THREADS.clear()
        return frame.to_ndarray(format="bgr24")


def ffmpeg_message(error: BaseException) -> str:
    """The FFmpeg reason of an error on one line, without PyAV's ``[Errno N]`` prefix and file
    name."""
    strerror = getattr(error, "strerror", None)
    return " ".join(str(strerror or error or type(error).__name__).split())


_ANSWERED = (
    av.error.ConnectionRefusedError,
    av.error.HTTPError,
    av.error.HTTPClientError,
    av.error.FileNotFoundError,
)
"""Errors that prove the other side answered: never reported as a timeout."""


def describe_open_error(error: BaseException, settings: LiveSettings) -> str:
    """Why a live source could not be opened, and what to check, without the URL."""
    if isinstance(error, av.error.ConnectionRefusedError):
        return (
            "connection refused: nothing listens on that port; check the host and port, "
            "and that the camera or server is running"
        )
    if isinstance(error, av.error.HTTPNotFoundError):
        return "the server has no stream at that path (404 Not Found); check the path"
    if isinstance(error, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return "access denied; check the user name and password in the URL"
    if isinstance(error, av.error.ExitError | av.error.TimeoutError | TimeoutError):
        return (
            f"no answer within {settings.open_timeout:g} s (--open-timeout); "
            "check that the host is reachable and the address is right"
        )
    if isinstance(error, av.error.FileNotFoundError):
        return "no such device or address; check that the camera is connected"
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"cannot open it: {safe_message(reason)}"


def connect(inp: FFmpegInput, settings: LiveSettings) -> Any:
    """Open ``inp`` with the open and read timeouts; a container with a video stream, or a
    ``SourceError`` naming the source (redacted) and the reason."""
    read_timeout = min(settings.read_timeout, settings.stall_timeout)
    started = time.monotonic()
    try:
        container = av.open(
            inp.url,
            mode="r",
            format=inp.format,
            options=inp.options,
            timeout=(settings.open_timeout, read_timeout),
        )
    except (av.error.FFmpegError, OSError) as error:
        # A silent peer surfaces as whatever FFmpeg's socket timeout turns into (often
        # "Invalid data"); what the user needs to hear is that nothing answered in time.
        timed_out = time.monotonic() - started >= 0.9 * min(settings.open_timeout, read_timeout)
        if timed_out and not isinstance(error, _ANSWERED):
            error = TimeoutError()
        raise SourceError(f"{inp.display}: {describe_open_error(error, settings)}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"{inp.display}: the stream has no video track")
    return container
