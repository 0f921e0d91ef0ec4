"""Video sources: turn a user's spec (a file, a folder, later a URL) into decoded ``Frame`` s.

``expand_sources`` turns folders into their video files; ``open_source`` validates one spec and
returns a ``Source`` whose ``frames()`` iterator yields every decoded frame. Problems a user can
fix (missing path, empty file, not a video, no video stream, truncated file) become one-line
``SourceError`` s that say what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import av
import av.error

from dfstream.errors import SourceError
from dfstream.livespec import LiveSettings, is_live_spec
from dfstream.types import Frame

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts", ".mts",
        ".flv", ".mpg", ".mpeg", ".wmv", ".3gp",
    }
)  # fmt: skip
"""File name extensions (lower case) that a folder spec expands to."""

_SourceT = TypeVar("_SourceT", bound="Source")

_FALLBACK_FPS = 25.0  # only used to invent timestamps when a file has neither pts nor a rate


def _one_line(text: object) -> str:
    """Collapse whitespace so that a message (an FFmpeg log line included) stays on one line."""
    return " ".join(str(text).split())


def redact(spec: str) -> str:
    """``spec`` with any ``user:password@`` part of a URL replaced by ``***@``, for display."""
    return re.sub(r"(://)[^/?#\s]*@", r"\1***@", spec)


def _ffmpeg_message(error: BaseException) -> str:
    """The FFmpeg reason of an error, without PyAV's ``[Errno N]`` prefix and file name."""
    strerror = getattr(error, "strerror", None)
    return _one_line(strerror or error or type(error).__name__)


def _is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def expand_sources(specs: Sequence[str]) -> list[str]:
    """Replace every folder in ``specs`` by the video files inside it (recursive, sorted).

    A folder without any video stays in the list as itself, so that ``open_source`` reports it
    later for that one source without stopping the others. URLs (anything with ``://``) and
    files pass through unchanged, in order.
    """
    expanded: list[str] = []
    for spec in specs:
        path = Path(spec)
        if "://" in spec or not path.is_dir():
            expanded.append(spec)
            continue
        videos = sorted(str(p) for p in path.rglob("*") if _is_video_file(p))
        expanded.extend(videos or [spec])
    return expanded


class Source(ABC):
    """One stream of frames: a file today, a camera or network stream later.

    ``frames()`` is meant to be iterated once and closes the source when it ends; to stop early,
    stop iterating (or close the iterator) and call ``close()``. Use it as a context manager.
    """

    stream_id: str
    source: str
    """What to show the user (credentials redacted)."""
    live: bool
    fps: float | None
    media_duration_s: float | None
    width: int
    height: int

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Decoded frames in presentation order."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; safe to call more than once."""

    def __enter__(self: _SourceT) -> _SourceT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stream_id={self.stream_id!r}, source={self.source!r})"


class FileSource(Source):
    """A video file decoded with PyAV; lossless: every frame is yielded, none is dropped."""

    live = False

    def __init__(self, container: Any, *, path: Path, stream_id: str) -> None:
        """Wrap an already opened container; use ``FileSource.open`` to validate a path."""
        self._container = container
        self._stream = container.streams.video[0]
        self._path = path
        self.stream_id = stream_id
        self.source = str(path)
        stream = self._stream
        stream.codec_context.thread_type = "AUTO"  # frame + slice threads: much faster H.264
        self.width = int(stream.width)
        self.height = int(stream.height)
        self.fps = float(stream.average_rate) if stream.average_rate else None
        time_base = stream.time_base
        self._time_base = float(time_base) if time_base else None
        start = stream.start_time
        self._start_s = float(start * time_base) if start is not None and time_base else 0.0
        if stream.duration and time_base:
            self.media_duration_s: float | None = float(stream.duration * time_base)
        elif container.duration:
            self.media_duration_s = container.duration / av.time_base
        else:
            self.media_duration_s = None
        self._expected_frames = int(stream.frames or 0)
        self._closed = False
        self._busy = False  # a thread is inside the decoder right now
        self._released = False
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, stream_id: str) -> FileSource:
        """Validate ``path`` and open it, or raise a ``SourceError`` that says how to fix it."""
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder; check the path")
        if path.is_dir():
            accepted = " ".join(sorted(VIDEO_EXTENSIONS))
            raise SourceError(
                f"{path}: folder contains no video files (accepted extensions: {accepted})"
            )
        if not os.access(path, os.R_OK):
            raise SourceError(f"{path}: permission denied; make the file readable")
        if path.stat().st_size == 0:
            raise SourceError(f"{path}: file is empty (0 bytes); was the upload or copy cut off?")
        try:
            container = av.open(str(path), mode="r")
        except PermissionError as error:
            raise SourceError(f"{path}: permission denied; make the file readable") from error
        except av.error.FFmpegError as error:
            raise SourceError(
                f"{path}: not a readable video file ({_ffmpeg_message(error)}); "
                "check that it is a complete video, e.g. re-download or re-export it"
            ) from error
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            container.close()
            raise SourceError(
                f"{path}: has no video stream (streams found: {kinds}); pass a video file"
            )
        try:
            return cls(container, path=path, stream_id=stream_id)
        except Exception:
            container.close()
            raise

    def _pts_seconds(self, frame: Any, index: int) -> float:
        seconds = frame.time
        if seconds is None and frame.pts is not None and self._time_base:
            seconds = frame.pts * self._time_base
        if seconds is None:
            return index / (self.fps or _FALLBACK_FPS)
        return float(seconds) - self._start_s

    def frames(self) -> Iterator[Frame]:
        """Every frame of the file, with its presentation time in seconds from the first frame.

        Raises ``SourceError`` when decoding fails part-way (a truncated or corrupt file) or when
        the file ends well before the number of frames its header announces; the frames
        decoded before that have already been yielded. Ends quietly after ``close()``.
        """
        if self._closed:
            raise SourceError(f"{self._path}: source is closed")
        index = 0
        decoded = self._container.decode(self._stream)
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return
                    self._busy = True
                try:
                    frame = next(decoded, None)
                    image = None if frame is None else frame.to_ndarray(format="bgr24")
                finally:
                    with self._lock:
                        self._busy = False
                if frame is None or image is None:
                    break
                yield Frame(
                    stream_id=self.stream_id,
                    index=index,
                    pts_seconds=self._pts_seconds(frame, index),
                    wall_time=time.time(),
                    image_bgr=image,
                )
                index += 1
        except av.error.FFmpegError as error:
            if self._closed:
                return
            raise SourceError(
                f"{self._path}: decoding stopped after {index} frames: "
                f"{_ffmpeg_message(error)} (the file is probably truncated or corrupt)"
            ) from error
        finally:
            with self._lock:
                self._closed = True
                self._release()
        # Some containers (e.g. MKV) end silently when cut; the MP4 header knows the count.
        # Edit lists may hide a few leading frames, so only a clear shortfall is an error.
        missing = self._expected_frames - index
        if missing > max(2, self._expected_frames // 20):
            raise SourceError(
                f"{self._path}: decoding stopped after {index} frames but the header announces "
                f"{self._expected_frames}; the file is probably truncated"
            )

    def close(self) -> None:
        """Stop the source and release the file; safe to call more than once, from any thread.

        While another thread is inside the decoder, closing is left to that thread, which
        notices before decoding the next frame: a container must not be closed under it.
        """
        with self._lock:
            self._closed = True
            if not self._busy:
                self._release()

    def _release(self) -> None:
        """Close the container once; the caller holds ``self._lock``."""
        if not self._released:
            self._released = True
            self._container.close()


def _open_url(spec: str, *, stream_id: str) -> Source:
    """Dispatch point for URL specs (``rtsp://``, ``http://``, webcams ...)."""
    scheme = spec.split("://", 1)[0].lower()
    if scheme == "file":
        return FileSource.open(Path(spec.split("://", 1)[1]), stream_id=stream_id)
    raise SourceError(
        f"{redact(spec)}: unsupported URL scheme {scheme}://; use rtsp://, rtsps://, http://, "
        "https://, file://, a webcam (webcam, webcam:N, /dev/videoN) or a video file"
    )


def open_source(
    spec: str,
    *,
    stream_id: str | None = None,
    live: LiveSettings | None = None,
    on_status: Callable[[str, str], None] | None = None,
    stop: threading.Event | None = None,
) -> Source:
    """Validate and open one source spec; ``stream_id`` defaults to the spec (redacted).

    Network URLs and webcams open as ``dfstream.live.LiveSource`` with ``live`` settings
    (timeouts, reconnect), reporting connection changes to ``on_status`` and ending on ``stop``.
    Raises ``SourceError`` with a one-line message for anything that cannot be opened.
    """
    if not spec:
        raise SourceError("empty source: pass a video file, a folder of videos or a URL")
    sid = stream_id if stream_id is not None else redact(spec)
    if is_live_spec(spec):
        from dfstream.live import LiveSource

        return LiveSource.open(
            spec, stream_id=sid, settings=live or LiveSettings(), on_status=on_status, stop=stop
        )
    if "://" in spec:
        return _open_url(spec, stream_id=sid)
    return FileSource.open(Path(spec), stream_id=sid)
