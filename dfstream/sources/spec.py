"""What a user's source string means, decided once: ``parse_source(text) -> SourceSpec``.

Every later decision (which opener, queue policy, analysis rate, expected batch size, overlay
file names, display names, redaction) reads the typed, frozen ``SourceSpec``, never the raw
string. The forms understood:

- ``rtsp://`` / ``rtsps://`` (``RTSP``), ``http://`` / ``https://`` (``HTTP``; a path ending in
  ``.m3u8`` is an ``HLS`` playlist) and ``udp://HOST:PORT`` (``UDP``: MPEG-TS pushed to this
  machine, as IP encoders send it; dfstream listens on that address): live network sources;
- webcams (``WEBCAM``): ``webcam`` (the first camera), ``webcam:N``, ``webcam:NAME`` (Windows
  DirectShow names) and ``/dev/videoN``;
- a photo (``IMAGE``): a path (or ``file://PATH``) whose name ends in one of
  ``IMAGE_EXTENSIONS`` (``.jpg``, ``.jpeg``, ``.png``, ``.webp``), a one-frame source;
- ``file://PATH`` and any other string (``FILE``), or an existing folder (``FOLDER``, expanded
  to its videos and photos by ``expand_sources``).

Anything else with ``://`` (``rtmp://``, ``srt://``, ``tcp://``, ``ftp://`` ...) is refused here
with one message listing the supported forms (a ``SourceError``, exit 3), before any source is
opened. To add a kind: a ``SourceKind`` member and its scheme in ``URL_SCHEMES`` here, a module
with its opener, and one ``register_source`` call (see ``dfstream.sources.registry``).

``read_source_list`` (``--sources FILE``) and ``parse_reconnect`` (``--reconnect``) read the
other source-related command-line values.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from dfstream.errors import SourceError, UsageError


class SourceKind(str, enum.Enum):
    """What a source is; decides its opener and FFmpeg input."""

    FILE = "file"
    FOLDER = "folder"
    RTSP = "rtsp"
    HTTP = "http"
    HLS = "hls"
    UDP = "udp"
    WEBCAM = "webcam"
    IMAGE = "image"


LIVE_KINDS: frozenset[SourceKind] = frozenset(
    {SourceKind.RTSP, SourceKind.HTTP, SourceKind.HLS, SourceKind.UDP, SourceKind.WEBCAM}
)
"""Kinds parsed as live (real time); an HTTP file or VOD playlist turns out not live only once
it is opened (``Source.live``)."""

URL_SCHEMES: dict[str, SourceKind] = {
    "rtsp": SourceKind.RTSP,
    "rtsps": SourceKind.RTSP,
    "http": SourceKind.HTTP,
    "https": SourceKind.HTTP,
    "udp": SourceKind.UDP,
    "file": SourceKind.FILE,
}
"""URL scheme (lower case) -> kind; every other scheme is refused by ``parse_source``."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp"})
"""File name extensions (lower case) of photos: ``IMAGE`` sources, also found in folders."""

SUPPORTED_FORMS = (
    "rtsp://, rtsps://, http://, https:// (HLS .m3u8 too), udp:// (MPEG-TS), file://, a webcam "
    "(webcam, webcam:N, /dev/videoN), a video file, a photo (.jpg, .jpeg, .png, .webp) or a "
    "folder of videos and photos"
)
"""The forms ``parse_source`` accepts, as error messages list them."""

_DEV_VIDEO = re.compile(r"^/dev/video\d+$")
_WEBCAM = re.compile(r"^webcam(?::(?P<device>[^/].*))?$", re.IGNORECASE)
_CREDENTIALS = re.compile(r"(://)[^/?#\s]*@")
_UNSAFE_IN_FILE_NAMES = re.compile(r"[^\w.-]")


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it replaced by ``***@``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def safe_message(text: object) -> str:
    """``text`` on one line (an FFmpeg log line included) with any URL credentials redacted."""
    return redact(" ".join(str(text).split()))


def _last_part(text: str) -> str:
    return text.rstrip("/").rsplit("/", 1)[-1] or text


@dataclass(frozen=True, kw_only=True, repr=False)
class SourceSpec:
    """One source as parsed from what the user typed; build it with ``parse_source``.

    ``text`` and ``url`` may hold a password: only ``display`` (credentials redacted) may reach
    an output, and ``str()`` / ``repr()`` show nothing else.
    """

    text: str
    """What the user typed."""
    kind: SourceKind
    url: str
    """What the opener opens: a path (``FILE``, ``FOLDER``, ``IMAGE``), a URL with its
    credentials, or the webcam spec, mapped to the platform's capture device by
    ``dfstream.sources.ffmpeg``."""
    display: str
    """``text`` with credentials redacted: the only form shown in any output."""
    live: bool
    """Real time (camera, stream): DROP_OLDEST frame queue, live analysis rate."""
    name: str
    """Short human name for tables: a file's name, a webcam's device, a URL (redacted)."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, SourceKind):
            raise TypeError(f"kind: expected a SourceKind but got {self.kind!r}")
        if not self.text or not self.url:
            raise ValueError("text and url: expected non-empty strings but got an empty one")
        if redact(self.display) != self.display or redact(self.name) != self.name:
            raise ValueError("display and name: expected credentials redacted but they are not")

    @property
    def stem(self) -> str:
        """A short name for output file names (``OUT-<stem>.mp4``): a file's stem; for other
        kinds the stem of the URL's last path part, else its host[:port], or the webcam spec,
        with characters file systems refuse (``:?*`` ...) replaced by ``-``."""
        if self.kind in (SourceKind.FILE, SourceKind.FOLDER, SourceKind.IMAGE):
            return Path(self.url).stem
        rest = re.split(r"[?#]", self.display.split("://", 1)[-1], maxsplit=1)[0]
        host, _, path = rest.removeprefix("***@").partition("/")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        name = Path(last).stem if last else host
        return _UNSAFE_IN_FILE_NAMES.sub("-", name)

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"SourceSpec(kind={self.kind.value}, display={self.display!r}, live={self.live})"


def parse_source(text: str) -> SourceSpec:
    """The ``SourceSpec`` of ``text``, or a one-line ``SourceError`` for an unsupported form.

    Nothing is opened here; only a folder is told from a file (by looking at the path).
    """
    if not text:
        raise SourceError("empty source: pass a video file, a folder of videos or a URL")
    display = redact(text)
    url, name = text, display
    if "://" in text:
        scheme, rest = text.split("://", 1)
        found = URL_SCHEMES.get(scheme.lower())
        if found is None:
            raise SourceError(
                f"{display}: unsupported URL scheme {scheme.lower()}://; use {SUPPORTED_FORMS}"
            )
        kind = found
        if kind is SourceKind.FILE:
            if not rest:
                raise SourceError(f"{display}: no path after file://; use file:///path/to/video")
            url = rest
        elif kind is SourceKind.HTTP and rest.split("?", 1)[0].lower().endswith(".m3u8"):
            kind = SourceKind.HLS
    elif _DEV_VIDEO.match(text) or _WEBCAM.match(text):
        kind, name = SourceKind.WEBCAM, _last_part(display)
    else:
        kind = SourceKind.FILE
    if kind is SourceKind.FILE:
        path = Path(url)
        if path.is_dir():
            kind = SourceKind.FOLDER
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            kind = SourceKind.IMAGE
        name = _last_part(redact(url))
    return SourceSpec(
        text=text, kind=kind, url=url, display=display, live=kind in LIVE_KINDS, name=name
    )


def webcam_device(text: str) -> str:
    """The device part of a webcam spec: ``N`` or ``NAME`` ('0' for plain ``webcam``), or the
    ``/dev/videoN`` path itself."""
    if _DEV_VIDEO.match(text):
        return text
    match = _WEBCAM.match(text)
    if match is None:
        raise UsageError(f"{text}: not a webcam spec; use webcam, webcam:N or /dev/videoN")
    return match.group("device") or "0"


def parse_reconnect(text: str) -> int | None:
    """``--reconnect`` value: a whole number of attempts >= 0, or ``forever`` (None)."""
    if text.strip().lower() in ("forever", "inf", "always"):
        return None
    if not text.strip().isdigit():
        raise ValueError(f"expected a whole number >= 0 or 'forever' but got {text!r}")
    return int(text)


def read_source_list(path: Path) -> list[str]:
    """The source strings listed in ``path`` (``--sources FILE``): one per line; blank lines and
    ``#`` comments ignored.

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
