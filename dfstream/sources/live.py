"""Live sources: RTSP, HTTP/HLS, UDP (MPEG-TS) and webcams, decoded with PyAV, with reconnect
and stall detection.

``LiveSource.open`` connects once (a failure at start-up is a one-line ``SourceError``: a wrong
URL should be fixed, not retried for ever). After that, ``frames()`` survives outages: when the
connection drops, the stream ends (for a camera) or no frame arrives for ``stall_timeout``
seconds, it reports ``disconnected`` or ``stalled``, then ``reconnecting`` before each attempt
(exponential backoff with jitter) and ``connected`` when it is back; ``--reconnect N`` limits
the attempts per outage. Status changes go to the ``on_status`` callback; nothing here prints.
Each connection is one ``_session``; its frames pass a ``FrameGate``
(``dfstream.sources.integrity``): nothing before the first clean keyframe, nothing flagged
corrupt nor predicted from a corrupt frame. A connection that delivers data but only corrupt
frames for ``stall_timeout`` seconds (or no keyframe within ``keyframe_timeout``) is reported
``corrupt`` and reconnected like a stall; a new session often starts with a keyframe.

Media time (``Frame.pts_seconds``) is continuous across reconnects: each new session continues
where the previous one stopped, so that analysis-rate sampling and the temporal windows never
see time run backwards. Every message passes through ``safe_message``: a password in a URL
never reaches a log line, an event or an error. The FFmpeg inputs and options are in
``dfstream.sources.ffmpeg``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Generator, Iterator
from functools import partial
from typing import Any

import av
import av.error

from dfstream.errors import SourceError
from dfstream.sources.base import LiveSettings, Source, StatusCallback
from dfstream.sources.ffmpeg import FFmpegInput, connect, ffmpeg_input, to_bgr
from dfstream.sources.integrity import FrameGate, frame_is_keyframe
from dfstream.sources.registry import register_source
from dfstream.sources.spec import SourceKind, SourceSpec, safe_message
from dfstream.types import Frame

_FALLBACK_FPS = 25.0


class Backoff:
    """Exponential backoff with jitter: ``min(cap, base * 2**k) * uniform(0.5, 1)``."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt; each call doubles the nominal delay up to ``cap``."""
        nominal = min(self.cap, self.base * 2.0**self.attempts)
        self.attempts += 1
        return nominal * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Back to the shortest delay (after a successful connection)."""
        self.attempts = 0


class LiveSource(Source):
    """A camera or network stream; ``frames()`` runs until the stream ends, fails or stops.

    ``live`` is False for a file over HTTP (or a VOD playlist) with a known duration: it is
    not real time, so the pipeline analyses it losslessly (WAIT) instead of dropping frames.
    ``corrupt_frames`` counts the frames refused by the ``FrameGate`` (``gate_factory``).
    """

    gate_factory: type[FrameGate] = FrameGate

    def __init__(
        self,
        container: Any,
        inp: FFmpegInput,
        *,
        stream_id: str,
        settings: LiveSettings,
        on_status: StatusCallback | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Wrap a connected container; use ``LiveSource.open`` to connect."""
        self._container: Any = container
        self._input = inp
        self.stream_id = stream_id
        self.source = inp.display
        self.settings = settings
        self._on_status = on_status or (lambda _state, _reason: None)
        self._stop = stop or threading.Event()  # the pipeline's stop, shared by all sources
        self._closed = threading.Event()  # this source only
        stream = container.streams.video[0]
        self.width, self.height = int(stream.width or 0), int(stream.height or 0)
        self.fps = float(stream.average_rate) if stream.average_rate else None
        duration = container.duration  # known for HTTP files and VOD playlists
        self.media_duration_s = duration / av.time_base if duration and duration > 0 else None
        # Real time (drop frames rather than fall behind) unless it is a file served over
        # HTTP: that one is pulled at our pace and analysed losslessly, like a local file.
        self.live = not (inp.ends_normally and self.media_duration_s is not None)
        self.reconnects = 0
        self.corrupt_packets = 0
        self._gate: FrameGate = self.gate_factory()
        self._offset = 0.0  # media time at which the current session starts
        self._last_pts = -1.0
        self._lock = threading.Lock()
        self._iterating = False

    @classmethod
    def open(
        cls,
        spec: SourceSpec,
        *,
        stream_id: str,
        settings: LiveSettings,
        on_status: StatusCallback | None = None,
        stop: threading.Event | None = None,
    ) -> LiveSource:
        """Connect to ``spec`` once, or raise a one-line ``SourceError`` within the open timeout."""
        inp = ffmpeg_input(spec, settings)
        container = connect(inp, settings)
        try:
            return cls(
                container, inp, stream_id=stream_id, settings=settings, on_status=on_status,
                stop=stop,
            )  # fmt: skip
        except Exception:
            container.close()
            raise

    @property
    def corrupt_frames(self) -> int:
        """Frames decoded but not yielded: flagged corrupt or waiting for a clean keyframe."""
        return self._gate.dropped

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as the source is stopping."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopping():
                return True
            self._stop.wait(min(0.1, remaining))
        return self._stopping()

    def _status(self, state: str, reason: str) -> None:
        self._on_status(state, safe_message(reason))

    def frames(self) -> Iterator[Frame]:
        """Frames across reconnects; returns when the stream ends normally (HTTP files, VOD
        playlists) or on stop; raises ``SourceError`` when an outage outlasts ``--reconnect``."""
        with self._lock:
            if self._container is None:
                raise SourceError(f"{self.source}: source is closed")
            self._iterating = True
        index = 0
        backoff = Backoff(self.settings.backoff_base, self.settings.backoff_max)
        try:
            while True:
                first = index
                outcome, reason, index = yield from self._session(index)
                self._drop_container()
                if outcome in ("ended", "stopped"):
                    return
                if index > first:
                    backoff.reset()  # a connection that opens but yields nothing keeps backing off
                self._status(outcome, reason)
                if not self._reconnect(backoff, reason):
                    return
                self._status("connected", f"reconnected after {backoff.attempts} attempt(s)")
        finally:
            with self._lock:
                self._iterating = False
            self._drop_container()

    def _reconnect(self, backoff: Backoff, reason: str) -> bool:
        """Retry with backoff until connected (True) or stopped (False); raise when out of
        attempts."""
        limit = self.settings.reconnect
        while True:
            if limit is not None and backoff.attempts >= limit:
                tried = f"after {limit} reconnect attempt(s)" if limit else "(--reconnect 0)"
                raise SourceError(f"{self.source}: {reason}; gave up {tried}")
            delay = backoff.next_delay()
            self._status("reconnecting", f"attempt {backoff.attempts} in {delay:.1f} s")
            if self._wait(delay):
                return False
            try:
                container = connect(self._input, self.settings)
            except SourceError as exc:
                reason = str(exc).removeprefix(f"{self.source}: ")
                continue
            with self._lock:
                self._container = container
            self.reconnects += 1
            return True

    def _session(self, index: int) -> Generator[Frame, None, tuple[str, str, int]]:
        """Decode one connection; returns (outcome, reason, next frame index) where outcome is
        ended, stopped, disconnected, stalled or corrupt. Only frames the ``FrameGate``
        admits are yielded: from the first clean keyframe on, none flagged corrupt."""
        container = self._container
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "SLICE"  # frame threading would add frames of delay
        stall = self.settings.stall_timeout
        gate = self._gate
        gate.reset()
        started = last_data = last_clean = time.monotonic()
        keyframe_at: float | None = None  # when this session saw its first keyframe
        dropped_before = gate.dropped
        first_time: float | None = None
        session_start = time.time()
        try:
            for packet in container.demux(stream):
                if self._stopping():
                    return "stopped", "", index
                if getattr(packet, "is_corrupt", False):
                    gate.lost()
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.corrupt_packets += 1  # e.g. a lost slice; the next keyframe recovers
                    gate.lost()
                    decoded = []
                self.clock.lap("decode")
                now = time.monotonic()
                if packet.size:
                    last_data = now
                elif now - last_data > stall:
                    return "stalled", f"no frame for {stall:g} s (--stall-timeout)", index
                for frame in decoded:
                    if keyframe_at is None and frame_is_keyframe(frame):
                        keyframe_at = now
                    if not gate.admit(frame):
                        continue
                    last_clean = now
                    seconds = frame.time
                    if seconds is None:
                        seconds = time.time() - session_start
                    if first_time is None:
                        first_time = seconds
                    pts = max(self._offset + seconds - first_time, self._last_pts + 1e-3)
                    self._last_pts = pts
                    # Converted to BGR only if read: a live stream is analysed at a few frames
                    # per second and the frames in between (and those a full queue drops) are
                    # never looked at, unless an overlay or preview shows them.
                    yield Frame(
                        stream_id=self.stream_id,
                        index=index,
                        pts_seconds=pts,
                        wall_time=time.time(),
                        convert=partial(to_bgr, frame),
                    )
                    index += 1
                    if self._stopping():
                        return "stopped", "", index
                reason = self._corrupt_reason(
                    now, started, last_clean, keyframe_at, gate.dropped - dropped_before
                )
                if reason:
                    return "corrupt", reason, index
        except (av.error.FFmpegError, OSError) as error:
            if self._stopping():
                return "stopped", "", index
            # ExitError: PyAV's read timeout, min(--read-timeout, --stall-timeout), fired. Check
            # it by type too: a demuxer may flush its last frames just before raising it (MPEG-TS
            # completes a frame only when the next one starts), so the clock alone can miss it.
            read_timeout = self.settings.read_timeout
            timed_out = isinstance(error, av.error.ExitError)
            if (timed_out and read_timeout >= stall) or time.monotonic() - last_data >= stall * 0.9:
                return "stalled", f"no frame for {stall:g} s (--stall-timeout)", index
            if timed_out:
                return "disconnected", f"no data for {read_timeout:g} s (--read-timeout)", index
            reason = getattr(error, "strerror", None) or type(error).__name__
            return "disconnected", safe_message(reason), index
        finally:
            self._offset = self._last_pts + 1.0 / (self.fps or _FALLBACK_FPS)
        if self._input.ends_normally:
            return "ended", "", index
        return "disconnected", "the server ended the stream", index

    def _corrupt_reason(
        self,
        now: float,
        started: float,
        last_clean: float,
        keyframe_at: float | None,
        dropped: int,
    ) -> str:
        """Why this connection counts as delivering only corrupt frames, or "" while it does
        not: no clean frame for ``stall_timeout`` since the later of the last clean frame and
        the session's first keyframe, or no keyframe at all within ``keyframe_timeout``."""
        settings = self.settings
        if keyframe_at is None:
            if now - started <= settings.keyframe_timeout:
                return ""  # joining a long GOP: data flows, the keyframe is still to come
            return (
                f"no clean keyframe within {settings.keyframe_timeout:g} s of connecting "
                f"({dropped} frame(s) dropped as corrupt)"
            )
        if now - max(last_clean, keyframe_at) <= settings.stall_timeout:
            return ""
        return (
            f"only corrupt frames for {settings.stall_timeout:g} s (--stall-timeout): {dropped} "
            "dropped; packet loss or a stream joined where it cannot be decoded "
            "(with UDP transport try --rtsp-transport tcp)"
        )

    @property
    def decoder_threads(self) -> int | None:
        """FFmpeg's decoder threads of the current connection (slice threading), if any."""
        container = self._container
        if container is None:
            return None
        return int(container.streams.video[0].codec_context.thread_count)

    def _drop_container(self) -> None:
        with self._lock:
            container, self._container = self._container, None
        if container is not None:
            self.clock.poll()  # the decoder's threads end with the connection
            # Closing a dead connection may fail; it is released either way.
            with contextlib.suppress(av.error.FFmpegError, OSError):
                container.close()

    def close(self) -> None:
        """Release the connection; while ``frames()`` runs, it ends at the next frame instead
        (a container must not be closed under the thread decoding it)."""
        self._closed.set()
        with self._lock:
            if self._iterating:
                return
        self._drop_container()


def open_live(
    spec: SourceSpec,
    *,
    stream_id: str,
    live: LiveSettings,
    on_status: StatusCallback | None,
    stop: threading.Event | None,
) -> LiveSource:
    """The opener of RTSP, HTTP, HLS, UDP and webcam specs."""
    return LiveSource.open(spec, stream_id=stream_id, settings=live, on_status=on_status, stop=stop)


register_source(SourceKind.RTSP, open_live)
register_source(SourceKind.HTTP, open_live)
register_source(SourceKind.HLS, open_live)
register_source(SourceKind.UDP, open_live)
register_source(SourceKind.WEBCAM, open_live)
