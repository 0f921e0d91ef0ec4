"""Local video files and folders: ``FileSource`` decodes every frame of a file with PyAV.

``expand_sources`` parses source strings and replaces every folder by the video files and
photos inside it (photos are opened by ``dfstream.sources.image``). Problems a user can fix
(missing path, empty file, not a video, no video stream, truncated file) become one-line
``SourceError`` s that say what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import av
import av.error

from dfstream.errors import SourceError
from dfstream.sources.base import LiveSettings, Source, StatusCallback
from dfstream.sources.ffmpeg import ffmpeg_message, to_bgr
from dfstream.sources.registry import register_source
from dfstream.sources.spec import IMAGE_EXTENSIONS, SourceKind, SourceSpec, parse_source
from dfstream.types import Frame

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts", ".mts",
        ".flv", ".mpg", ".mpeg", ".wmv", ".3gp",
    }
)  # fmt: skip
"""File name extensions (lower case) of videos; a folder expands to these and to photos
(``IMAGE_EXTENSIONS``)."""

_FALLBACK_FPS = 25.0  # only used to invent timestamps when a file has neither pts nor a rate


def _is_media_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS)


def expand_sources(items: Iterable[str | SourceSpec]) -> list[SourceSpec]:
    """Parse ``items`` and replace every folder by the video files and photos inside it
    (recursive, sorted by path).

    A folder without any video or photo stays in the list as itself, so that opening it reports it
    later for that one source without stopping the others. Everything else keeps its place.
    Raises ``SourceError`` for a string ``parse_source`` refuses.
    """
    expanded: list[SourceSpec] = []
    for item in items:
        spec = parse_source(item) if isinstance(item, str) else item
        if spec.kind is not SourceKind.FOLDER:
            expanded.append(spec)
            continue
        media = sorted(str(p) for p in Path(spec.url).rglob("*") if _is_media_file(p))
        expanded.extend([parse_source(m) for m in media] or [spec])
    return expanded


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
            accepted = " ".join(sorted(VIDEO_EXTENSIONS | IMAGE_EXTENSIONS))
            raise SourceError(
                f"{path}: folder contains no video or photo files (accepted extensions: {accepted})"
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
                f"{path}: not a readable video file ({ffmpeg_message(error)}); "
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
                    self.clock.lap("decode")
                    image = None if frame is None else to_bgr(frame)
                    self.clock.lap("convert")
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
                f"{ffmpeg_message(error)} (the file is probably truncated or corrupt)"
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

    @property
    def decoder_threads(self) -> int | None:
        """FFmpeg's decoder threads for this file (frame and slice threading, its own count)."""
        return int(self._stream.codec_context.thread_count)

    def _release(self) -> None:
        """Close the container once; the caller holds ``self._lock``."""
        if not self._released:
            self._released = True
            self.clock.poll()  # the decoder's threads end with the container
            self._container.close()


def open_file(
    spec: SourceSpec,
    *,
    stream_id: str,
    live: LiveSettings,
    on_status: StatusCallback | None,
    stop: threading.Event | None,
) -> FileSource:
    """The opener of ``FILE`` and ``FOLDER`` specs (a folder reaching it holds no video)."""
    return FileSource.open(Path(spec.url), stream_id=stream_id)


register_source(SourceKind.FILE, open_file)
register_source(SourceKind.FOLDER, open_file)
