"""The overlay's video file: H.264 (libx264, yuv420p) in a fragmented MP4 through PyAV, with the
input's timestamps and its audio track copied packet by packet (no re-encoding).

The container is opened when the run is prepared, so a path that cannot be written fails before
any decoding; the video stream is added when the first frame's size is known. The MP4 is
fragmented (``frag_keyframe+empty_moov``) with a keyframe every two seconds: a run killed
outright still leaves a file that plays up to its last complete fragment, and a run stopped with
Ctrl-C is finalised normally. B-frames are off so that presentation times start at the input's
first timestamp without an edit list (fragmented MP4 has none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from dfstream.errors import OutputError
from dfstream.sources import SourceKind, SourceSpec

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
LIVE_TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class InputTiming:
    """What the overlay copies from a file input: time base, start, rate, frame count, audio."""

    time_base: Fraction
    start_s: float
    rate: Fraction | None
    frames: int | None
    has_audio: bool

    @classmethod
    def probe(cls, spec: SourceSpec) -> InputTiming | None:
        """The timing of a local video file, or None for live sources and unreadable files."""
        path = Path(spec.url)
        if spec.kind is not SourceKind.FILE or not path.is_file():
            return None
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    return None
                video = container.streams.video[0]
                tb = video.time_base or LIVE_TIME_BASE
                start = float(video.start_time * tb) if video.start_time is not None else 0.0
                return cls(
                    time_base=Fraction(tb),
                    start_s=start,
                    rate=Fraction(video.average_rate) if video.average_rate else None,
                    frames=int(video.frames) or None,
                    has_audio=bool(container.streams.audio),
                )
        except (av.error.FFmpegError, OSError):
            return None


class VideoEncoder:
    """Writes BGR frames to ``path``; ``close`` finalises the file (also after errors)."""

    def __init__(self, container: Any, path: Path, *, source: str) -> None:
        """Wrap an opened output container; use ``VideoEncoder.open`` to validate the path."""
        self._container = container
        self.path = path
        self._source = source
        self._video: Any = None
        self._audio_in: Any = None
        self._audio_out: Any = None
        self._audio_packets: Iterator[Any] | None = None
        self._next_audio: Any = None
        self._timing: InputTiming | None = None
        self._last_pts = -1
        self._last_time = 0.0
        self.frames_written = 0
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, source: str, flag: str = "--overlay") -> VideoEncoder:
        """Create the output file now, or raise ``OutputError`` saying why it cannot be;
        ``source`` is the input file (path or URL) whose audio track is copied."""
        if path.is_dir():
            raise OutputError(f"{flag} {path}: is a folder; give a file name such as out.mp4")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(
                str(path),
                mode="w",
                format="mp4",
                # flush each fragment to disk as it is written: a killed run loses at most one
                options={"movflags": MOVFLAGS, "flush_packets": "1"},
            )
        except (OSError, av.error.FFmpegError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise OutputError(f"{flag} {path}: cannot write there ({reason})") from exc
        return cls(container, path, source=source)

    def start(self, width: int, height: int, timing: InputTiming | None, fps: float | None) -> None:
        """Add the H.264 stream (and a copy of the input's audio stream) for frames of this size."""
        self._timing = timing
        fallback = Fraction(fps or 25).limit_denominator(1001)
        rate = timing.rate if timing and timing.rate else fallback
        tb = timing.time_base if timing else LIVE_TIME_BASE
        video = self._container.add_stream("libx264", rate=rate)
        video.width, video.height = width - width % 2, height - height % 2  # yuv420p: even sizes
        video.pix_fmt = "yuv420p"
        video.time_base = tb
        video.codec_context.time_base = tb
        gop = max(1, round(2 * float(rate)))
        video.options = {"preset": "veryfast", "crf": "23", "bf": "0", "g": str(gop)}
        self._video = video
        if timing is not None and timing.has_audio:
            self._open_audio()

    def _open_audio(self) -> None:
        try:
            self._audio_in = av.open(self._source)
            in_stream = self._audio_in.streams.audio[0]
            self._audio_out = self._container.add_stream_from_template(in_stream)
            self._audio_packets = self._audio_in.demux(in_stream)
        except (av.error.FFmpegError, OSError, ValueError):
            # The picture matters more than the sound: go on without audio.
            self._close_audio_input()

    @property
    def started(self) -> bool:
        """True once the video stream exists."""
        return self._video is not None

    def write(self, image: np.ndarray, pts_seconds: float) -> None:
        """Encode one BGR frame shown at ``pts_seconds`` (seconds from the input's first frame)."""
        video = self._video
        tb = video.time_base
        start = self._timing.start_s if self._timing else 0.0
        pts = max(self._last_pts + 1, round((pts_seconds + start) / tb))
        self._last_pts = pts
        self._last_time = float(pts * tb)
        if image.shape[0] != video.height or image.shape[1] != video.width:
            image = np.ascontiguousarray(image[: video.height, : video.width])
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = pts
        frame.time_base = tb
        self._copy_audio(until=self._last_time + 0.5)
        self._container.mux(video.encode(frame))
        self.frames_written += 1

    def _copy_audio(self, *, until: float) -> None:
        """Mux the input's audio packets that start before ``until`` seconds."""
        if self._audio_packets is None:
            return
        try:
            while True:
                packet = self._next_audio or next(self._audio_packets, None)
                self._next_audio = None
                if packet is None:
                    self._close_audio_input()
                    return
                if packet.pts is None or packet.dts is None or packet.pts < 0 or packet.dts < 0:
                    # Negative times (AAC priming) would make the muxer shift every stream,
                    # video included; a fragmented MP4 has no edit list to hide them.
                    continue
                if float(packet.pts * packet.time_base) >= until:
                    self._next_audio = packet
                    return
                packet.stream = self._audio_out
                self._container.mux(packet)
        except av.error.FFmpegError:
            self._close_audio_input()

    def _close_audio_input(self) -> None:
        self._audio_packets = None
        self._next_audio = None
        if self._audio_in is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self._audio_in.close()
            self._audio_in = None

    def close(self) -> None:
        """Flush the encoder, copy the audio up to the last frame and finalise the file.

        A file that never received a frame (its source failed to open) is removed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._video is not None:
                self._container.mux(self._video.encode(None))
                frame_s = float(1 / self._video.average_rate) if self._video.average_rate else 0.04
                self._copy_audio(until=self._last_time + frame_s)
        finally:
            self._close_audio_input()
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as exc:
                if self._video is not None:
                    raise OutputError(f"--overlay {self.path}: could not finalise ({exc})") from exc
            if self._video is None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
