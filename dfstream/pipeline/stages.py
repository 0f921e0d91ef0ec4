"""The per-source worker threads: a reader that decodes, and an analyzer thread that feeds the
frames to a ``FaceAnalyzer`` (sample, detect, track, crop) and queues its crops. Both end by
sending a control message that is never dropped, also on error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dfstream.cputime import ANALYZER_THREAD, READER_THREAD, name_thread
from dfstream.errors import DfstreamError
from dfstream.faces import AnalyzerSettings, FaceAnalyzer, FaceDetector
from dfstream.pipeline.queues import Backpressure, BoundedQueue
from dfstream.pipeline.state import StreamState
from dfstream.sources import LiveSettings, Source, SourceSpec, open_source, redact
from dfstream.types import Box, FaceCrop, Frame, StatusEvent

FrameTap = Callable[[Frame, tuple[tuple[int, Box], ...]], None]
"""Sees every frame the analyzer takes from its queue, with the (track id, box) pairs the
pipeline uses on it (for the overlay). Called on the analyzer thread after the frame's crops
were queued; it may wait briefly but must not block for good."""


@dataclass(frozen=True)
class SourceEnd:
    """The reader is done: normally (error None), on an error, or because of a stop."""

    error: str | None


@dataclass(frozen=True)
class TrackEnd:
    """A face track ended; its window cache can go."""

    stream_id: str
    track_id: int


@dataclass(frozen=True)
class StreamEnd:
    """The analyzer is done with a stream; every crop of it was queued before this."""

    stream_id: str
    error: str | None
    exception: BaseException | None = None


@dataclass(frozen=True)
class Status:
    """A status event to emit from the inference thread (the only thread that writes sinks)."""

    event: StatusEvent


CropMessage = FaceCrop | TrackEnd | StreamEnd | Status


def run_reader(
    spec: SourceSpec,
    state: StreamState,
    frames: BoundedQueue[Frame | SourceEnd],
    crops: BoundedQueue[CropMessage],
    settings: AnalyzerSettings,
    stop: threading.Event,
    live: LiveSettings | None = None,
    opener: Callable[..., Source] = open_source,
) -> None:
    """Open ``spec`` and decode it into ``frames`` until it ends, fails or the pipeline stops.

    Live sources report their connection changes (disconnected, stalled, reconnecting,
    connected) as status messages through ``crops``, in order with the stream's crops.
    ``opener`` is ``open_source`` unless a harness wraps sources (e.g. real-time pacing).
    """
    error: str | None = None
    last_reason = ""

    def on_status(new_state: str, reason: str) -> None:
        nonlocal last_reason
        state.set_state(new_state)
        if new_state == "connected":
            state.reconnects += 1
        elif new_state == "corrupt":
            last_reason = reason
        crops.put_control(Status(_status(state, new_state, reason)))

    name_thread(READER_THREAD)  # FFmpeg's and swscale's threads are started from here
    clock = state.reader_clock
    clock.skip()
    try:
        with opener(
            spec, stream_id=state.stream_id, live=live, on_status=on_status, stop=stop
        ) as source:
            source.clock = clock
            clock.lap("decode")  # opening: probing the container, starting the decoder
            state.source = source.source
            state.live = source.live
            if not source.live:  # e.g. a file over HTTP: pulled at our pace, so lossless
                frames.policy = Backpressure.WAIT
            state.media_duration_s = source.media_duration_s
            state.input_fps = source.fps
            state.corrupt_counter = lambda: int(getattr(source, "corrupt_frames", 0))
            state.set_state("connected")
            crops.put_control(Status(_status(state, "connected", "")))
            # Time inside the decoder, excluding waits on the queue: one clock read per frame.
            started = time.perf_counter()
            clock.skip()
            for frame in source.frames():
                state.decode_s += time.perf_counter() - started
                if stop.is_set():
                    break
                if settings.max_seconds is not None and frame.pts_seconds >= settings.max_seconds:
                    break
                state.frames_decoded += 1
                if state.decoder_threads is None:  # known once the decoder has started
                    state.decoder_threads = source.decoder_threads
                if not frames.put(frame):
                    break
                state.dropped = frames.dropped
                started = time.perf_counter()
                clock.skip()  # the queue's waits are no stage's
    except DfstreamError as exc:
        error = redact(str(exc))
    except Exception as exc:  # noqa: BLE001 - a decoder bug must end the stream, not hang it
        error = redact(f"{spec.display}: unexpected {type(exc).__name__}: {exc}")
    finally:
        if error is None and state.frames_decoded == 0 and state.corrupt_frames:
            # Not NO_FACES: nothing could be analysed at all.
            why = f": {last_reason}" if last_reason else ""
            error = f"{spec.display}: only corrupt frames ({state.corrupt_frames} dropped){why}"
        frames.put_control(SourceEnd(error))
        clock.poll()  # this thread's last reading: it is gone when the run's census ends


def _status(state: StreamState, new_state: str, reason: str) -> StatusEvent:
    """A stream's status event, with its count of corrupt frames dropped so far."""
    return StatusEvent(
        state.stream_id, new_state, reason, time.time(), corrupt_frames=state.corrupt_frames
    )


def run_analyzer(
    state: StreamState,
    frames: BoundedQueue[Frame | SourceEnd],
    crops: BoundedQueue[CropMessage],
    settings: AnalyzerSettings,
    detector_factory: Callable[[], FaceDetector],
    tap: FrameTap | None = None,
) -> None:
    """Turn the frames of one stream into face crops and track-end messages with a
    ``FaceAnalyzer``; show every frame to ``tap`` (if any) with its boxes, sampled or not."""
    stream_id = state.stream_id
    error: str | None = None
    failure: BaseException | None = None
    ended = False
    name_thread(ANALYZER_THREAD)  # OpenCV's pool, when started from here, is named after it
    clock = state.analyzer_clock
    clock.skip()
    try:
        detector = detector_factory()
        clock.lap("detect")  # loading the detector
        analyzer: FaceAnalyzer | None = None
        while True:
            item = frames.get()
            clock.skip()
            if isinstance(item, SourceEnd):
                error, ended = item.error, True
                break
            if analyzer is None:  # the reader has set state.live before its first frame
                analyzer = FaceAnalyzer(
                    detector, settings, stream_id=stream_id, live=state.live, clock=clock
                )
            state.last_media_time = item.pts_seconds
            result = analyzer.analyze(item)
            if result.sampled:
                state.detect_s = analyzer.detect_s
                state.detections = analyzer.detections
                state.frames_analyzed = analyzer.frames_analyzed
                for track_id in result.ended:
                    crops.put_control(TrackEnd(stream_id, track_id))
                for crop in result.crops:
                    if not crops.put(crop):
                        break
                clock.skip()
            if tap is not None:
                tap(item, result.boxes)
                clock.lap("frame_sinks")
    except DfstreamError as exc:
        error = redact(str(exc))
    except BaseException as exc:  # noqa: BLE001 - re-raised where the pipeline is joined
        error = f"{stream_id}: internal error in the analyzer: {type(exc).__name__}: {exc}"
        failure = exc
    finally:
        if not ended:
            _drain_until_end(frames)
        clock.poll()  # this thread's last reading: it is gone when the run's census ends
        crops.put_control(StreamEnd(stream_id, error, failure))


def _drain_until_end(frames: BoundedQueue[Frame | SourceEnd]) -> None:
    # Keep the reader from blocking forever on a full queue after the analyzer failed.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            if isinstance(frames.get(timeout=0.1), SourceEnd):
                return
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting until the deadline
            continue


def start_thread(name: str, target: Callable[..., None], *args: object) -> threading.Thread:
    """Start a daemon worker thread (a hung decoder must never keep the process alive)."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


__all__ = [
    "AnalyzerSettings",
    "Backpressure",
    "CropMessage",
    "FrameTap",
    "SourceEnd",
    "Status",
    "StreamEnd",
    "TrackEnd",
    "run_analyzer",
    "run_reader",
    "start_thread",
]
