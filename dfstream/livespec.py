"""What a live source spec means: which FFmpeg input (URL or device, format, options) it opens.

Live specs are network URLs (``rtsp://``, ``rtsps://``, ``http://``, ``https://``, including HLS
``.m3u8`` playlists) and webcams (``webcam``, ``webcam:N``, ``/dev/videoN``). Webcams map to the
platform's FFmpeg capture device: ``v4l2`` on Linux (``/dev/videoN``), ``avfoundation`` on macOS
(device index ``N``) and ``dshow`` on Windows, where DirectShow wants a device *name*:
``webcam:Integrated Camera`` opens ``video=Integrated Camera`` (``webcam`` alone opens the
first device FFmpeg lists, which on Windows must be given by name).

``read_source_list`` reads ``--sources FILE``: one spec per line, ``#`` comments and blank
lines ignored.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from dfstream.errors import UsageError

NETWORK_SCHEMES: frozenset[str] = frozenset({"rtsp", "rtsps", "http", "https"})
"""URL schemes opened as live network sources."""

_DEV_VIDEO = re.compile(r"^/dev/video\d+$")
_WEBCAM = re.compile(r"^webcam(?::(?P<device>[^/].*))?$", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class LiveSettings:
    """Timeouts and reconnect policy of live sources (see README, "Live sources").

    ``reconnect`` is how many reconnect attempts one outage may take (None = forever);
    ``stall_timeout`` is how long a connected source may deliver no frame before it is reported
    stalled and reconnected. The effective FFmpeg read timeout is the smaller of
    ``read_timeout`` and ``stall_timeout``, so that a read blocked on a silent socket cannot
    hide a stall. Backoff before attempt k is ``min(backoff_max, backoff_base * 2**k)`` times a
    random factor in [0.5, 1] (jitter: many cameras behind one router do not retry in step).
    """

    open_timeout: float = 10.0
    read_timeout: float = 10.0
    stall_timeout: float = 10.0
    reconnect: int | None = None
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    transport: str = "tcp"

    def __post_init__(self) -> None:
        for name in ("open_timeout", "read_timeout", "stall_timeout", "backoff_base"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0 but got {getattr(self, name)}")
        if self.reconnect is not None and self.reconnect < 0:
            raise ValueError(f"reconnect: expected >= 0 or None but got {self.reconnect}")
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"transport: expected tcp or udp but got {self.transport!r}")


def parse_reconnect(text: str) -> int | None:
    """``--reconnect`` value: a whole number of attempts >= 0, or ``forever`` (None)."""
    if text.strip().lower() in ("forever", "inf", "always"):
        return None
    if not text.strip().isdigit():
        raise ValueError(f"expected a whole number >= 0 or 'forever' but got {text!r}")
    return int(text)


@dataclass(frozen=True)
class LiveInput:
    """How to open one live source with ``av.open``.

    ``url`` is what FFmpeg opens (it may carry credentials: never show it, show ``display``),
    ``format`` the demuxer or capture device (None = probe), ``options`` the FFmpeg options,
    ``kind`` one of ``rtsp``, ``http``, ``hls`` or ``webcam``.
    """

    url: str
    display: str
    kind: str
    format: str | None
    options: dict[str, str]

    @property
    def ends_normally(self) -> bool:
        """True when the end of the data is the end of the video (HTTP files, VOD playlists);
        for cameras (RTSP, webcams) an end of stream is an outage and leads to a reconnect."""
        return self.kind in ("http", "hls")


def scheme_of(spec: str) -> str:
    """The lower-case URL scheme of ``spec`` ('' when it has none)."""
    return spec.split("://", 1)[0].lower() if "://" in spec else ""


def is_live_spec(spec: str) -> bool:
    """True for network URLs and webcams, which ``dfstream.live`` opens."""
    return scheme_of(spec) in NETWORK_SCHEMES or bool(_DEV_VIDEO.match(spec) or _WEBCAM.match(spec))


def webcam_input(spec: str, *, platform: str | None = None) -> tuple[str, str]:
    """``(device, format)`` of a webcam spec on ``platform`` (default: this machine)."""
    platform = platform or sys.platform
    if _DEV_VIDEO.match(spec):
        return spec, "v4l2"
    match = _WEBCAM.match(spec)
    if match is None:
        raise UsageError(f"{spec}: not a webcam spec; use webcam, webcam:N or /dev/videoN")
    device = match.group("device") or "0"
    if platform.startswith("linux"):
        if not device.isdigit():
            raise UsageError(f"{spec}: on Linux use webcam:N (a number) or /dev/videoN")
        return f"/dev/video{device}", "v4l2"
    if platform == "darwin":
        return device, "avfoundation"
    if platform.startswith("win"):
        return f"video={device}", "dshow"
    raise UsageError(f"{spec}: webcams are supported on Linux, macOS and Windows only")


def live_input(
    spec: str, *, open_timeout: float, read_timeout: float, display: str, transport: str = "tcp"
) -> LiveInput:
    """The FFmpeg input for a live ``spec`` with low-latency options.

    All network inputs get ``flags=low_delay`` and a small probe (``probesize`` 500 kB,
    ``analyzeduration`` 1 s) so that decoding starts quickly. RTSP also gets
    ``fflags=nobuffer`` (frames are decoded as they arrive; the few packets read while probing
    are dropped), ``rtsp_transport`` (TCP by default: no UDP packet loss through NAT and
    firewalls) and a socket ``timeout`` in microseconds; HTTP gets ``rw_timeout``
    (microseconds) and FFmpeg's own reconnect off (dfstream reconnects, with backoff).
    """
    scheme = scheme_of(spec)
    socket_us = str(int(max(open_timeout, read_timeout) * 1_000_000))
    options = {"flags": "low_delay", "probesize": "500000", "analyzeduration": "1000000"}
    if scheme in ("rtsp", "rtsps"):
        options |= {"fflags": "nobuffer", "rtsp_transport": transport, "timeout": socket_us}
        return LiveInput(spec, display, "rtsp", "rtsp", options)
    if scheme in ("http", "https"):
        # No fflags=nobuffer here: it discards the packets read while probing, i.e. the first
        # frames of a file or playlist, and HTTP latency is set by the server, not by probing.
        options |= {"rw_timeout": socket_us, "reconnect": "0"}
        path = spec.split("?", 1)[0].lower()
        kind = "hls" if path.endswith(".m3u8") else "http"
        return LiveInput(spec, display, kind, "hls" if kind == "hls" else None, options)
    device, fmt = webcam_input(spec)
    return LiveInput(device, display, "webcam", fmt, {})


def read_source_list(path: Path) -> list[str]:
    """The specs listed in ``path``: one per line; blank lines and ``#`` comments ignored.

    A ``#`` starts a comment only at the start of a line or after whitespace, so URL fragments
    survive. Raises ``UsageError`` when the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--sources {path}: cannot read it ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--sources {path}: not a UTF-8 text file") from exc
    specs = []
    for line in text.splitlines():
        spec = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if spec:
            specs.append(spec)
    return specs
