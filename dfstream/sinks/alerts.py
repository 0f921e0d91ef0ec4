"""FAKE alerts: one message when a stream's verdict turns FAKE (``--webhook``, ``--mqtt``).

``AlertSink`` is a ``ThreadedSink`` and a frame sink. On the analyzer threads it keeps the
latest face crops of each track (``on_frame``); on the inference thread it watches score and
verdict events and, when a stream's verdict changes to FAKE, queues one alert for the track
with the highest smoothed score, with a JPEG snapshot of that track's face. With
``--alert-recover`` it also sends one ``recovered`` alert when a FAKE stream's verdict changes
back. The worker thread sends each alert through its transport, retrying with exponential
backoff (0.5 s doubling up to 30 s) until it is delivered; meanwhile new alerts wait in a
bounded queue (the oldest is dropped beyond 256, counted). Nothing here blocks the analysis
or ends it: an unreachable endpoint is reported once per outage through ``notice`` (and once
when it answers again). Alerts still undelivered when the run ends make this output fail
(exit code 6), after every other output was finalised.

The payload (JSON, UTF-8, the same for both transports)::

    {"type": "alert", "alert": "fake" | "recovered", "stream": "rtsp://***@cam/1",
     "verdict": "FAKE", "score": 0.91, "threshold": 0.5, "track": 3, "track_score": 0.93,
     "window_score": 0.95, "frame_index": 812, "media_time": 32.4, "box": [x1, y1, x2, y2],
     "wall_time": 1767225600.123, "time": "2026-01-01T00:00:00.123Z",
     "model": "resnext50 untrained (seed 0)", "untrained": true,
     "snapshot": {"content_type": "image/jpeg", "encoding": "base64",
                  "width": 160, "height": 160, "data": "/9j/4AAQ..."}}

``score`` is the stream's smoothed score at the change, ``track_score`` the track's smoothed
score, ``window_score`` its last window's score; ``snapshot`` is null when no crop of the
track was seen (e.g. a recovered stream whose face left).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from dfstream.errors import OutputError
from dfstream.sinks.alert_transports import AlertTransport, DeliveryError
from dfstream.sinks.base import ThreadedSink
from dfstream.sources import redact
from dfstream.types import Event, Frame, ScoreEvent, TrackBoxes, Verdict, VerdictEvent

SNAPSHOT_MAX_SIDE = 224
_CROPS_PER_TRACK = 32
_BACKOFF_BASE, _BACKOFF_MAX = 0.5, 30.0


@dataclass(frozen=True)
class Alert:
    """One alert, as queued for the worker (the JPEG is encoded there)."""

    payload: dict[str, Any]
    crop: np.ndarray | None = field(default=None, repr=False)


def _snapshot(crop: np.ndarray | None) -> dict[str, Any] | None:
    if crop is None or crop.size == 0:
        return None
    height, width = crop.shape[:2]
    scale = SNAPSHOT_MAX_SIDE / max(height, width)
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(width * scale)), max(1, round(height * scale))))
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        return None
    return {
        "content_type": "image/jpeg",
        "encoding": "base64",
        "width": int(crop.shape[1]),
        "height": int(crop.shape[0]),
        "data": base64.b64encode(jpeg.tobytes()).decode("ascii"),
    }


def _iso(wall_time: float) -> str:
    stamp = datetime.fromtimestamp(wall_time, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class AlertSink(ThreadedSink):
    """Sends one alert per FAKE episode of a stream through ``transport`` (module docstring)."""

    def __init__(
        self,
        transport: AlertTransport,
        *,
        name: str,
        model: str,
        threshold: float,
        recover: bool = False,
        notice: Callable[[str], None] | None = None,
        maxsize: int = 256,
    ) -> None:
        self.name = name  # type: ignore[misc]  # per instance: webhook / mqtt
        super().__init__(maxsize=maxsize, close_timeout_s=15.0)
        self.transport = transport
        self.model, self.threshold, self.recover = model, threshold, recover
        self._notice = notice or (lambda _message: None)
        self._crops: dict[tuple[str, int], deque[tuple[int, np.ndarray]]] = {}
        self._crops_lock = threading.Lock()
        self._last_scores: dict[str, dict[int, ScoreEvent]] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._closing = threading.Event()
        self.sent = 0
        self.undelivered = 0
        self._last_failure = ""

    # -- analyzer threads -------------------------------------------------------------------

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        """Keep a copy of each tracked face (a small crop) for the snapshots."""
        if not tracks:
            return
        image = frame.image_bgr
        height, width = image.shape[:2]
        for track_id, (x1, y1, x2, y2) in tracks:
            left, top = max(0, int(x1)), max(0, int(y1))
            right, bottom = min(width, int(x2) + 1), min(height, int(y2) + 1)
            if right <= left or bottom <= top:
                continue
            crop = image[top:bottom, left:right].copy()
            key = (frame.stream_id, track_id)
            with self._crops_lock:
                kept = self._crops.setdefault(key, deque(maxlen=_CROPS_PER_TRACK))
                kept.append((frame.index, crop))

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        """The track's crops are no longer needed."""
        with self._crops_lock:
            self._crops.pop((stream_id, track_id), None)
        self._last_scores.get(stream_id, {}).pop(track_id, None)

    def _crop_for(self, score: ScoreEvent) -> np.ndarray | None:
        """The kept crop of the score's frame, else the latest one before it, else any."""
        with self._crops_lock:
            kept = list(self._crops.get((score.stream_id, score.track_id), ()))
        before = [crop for index, crop in kept if index <= score.frame_index]
        if before:
            return before[-1]
        return kept[-1][1] if kept else None

    # -- inference thread -------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Track scores; queue an alert when a verdict turns FAKE (or recovers)."""
        if isinstance(event, ScoreEvent):
            self._last_scores.setdefault(event.stream_id, {})[event.track_id] = event
        elif isinstance(event, VerdictEvent):
            before = self._verdicts.get(event.stream_id)
            self._verdicts[event.stream_id] = event.verdict
            if event.verdict is Verdict.FAKE and before is not Verdict.FAKE:
                self.submit(self._alert("fake", event))
            elif self.recover and before is Verdict.FAKE and event.verdict is not Verdict.FAKE:
                self.submit(self._alert("recovered", event))

    def _alert(self, kind: str, event: VerdictEvent) -> Alert:
        scores = self._last_scores.get(event.stream_id, {})
        top = max(scores.values(), key=lambda s: s.smoothed, default=None)
        payload: dict[str, Any] = {
            "type": "alert",
            "alert": kind,
            "stream": redact(event.stream_id),
            "verdict": event.verdict.value,
            "score": round(event.score, 6),
            "threshold": self.threshold,
            "track": None if top is None else top.track_id,
            "track_score": None if top is None else round(top.smoothed, 6),
            "window_score": None if top is None else round(top.score, 6),
            "frame_index": None if top is None else top.frame_index,
            "media_time": round(event.media_time, 4),
            "box": None if top is None else [round(v, 1) for v in top.box],
            "wall_time": round(event.wall_time, 3),
            "time": _iso(event.wall_time),
            "model": self.model,
            "untrained": event.untrained,
        }
        return Alert(payload, None if top is None else self._crop_for(top))

    # -- worker thread ----------------------------------------------------------------------

    def process(self, item: Any) -> None:
        """Deliver one alert, retrying with backoff; while closing, one last try."""
        alert: Alert = item
        if self._closing.is_set() and self._last_failure:
            self.undelivered += 1  # the endpoint is down and the run is over: do not wait
            return
        payload = dict(alert.payload, snapshot=_snapshot(alert.crop))
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        delay, failures = _BACKOFF_BASE, 0
        while True:
            try:
                self.transport.send(body)
            except DeliveryError as exc:
                failures += 1
                self._failed(str(exc))
                if self._closing.is_set() or self._closing.wait(delay):
                    self.undelivered += 1
                    return
                delay = min(_BACKOFF_MAX, delay * 2)
                continue
            self.sent += 1
            if self._last_failure:
                self._notice(f"{self.name} {self.transport.target}: delivering alerts again")
                self._last_failure = ""
            return

    def _failed(self, reason: str) -> None:
        """Report an outage once, when it starts."""
        if not self._last_failure:
            self._notice(
                f"{self.name} {self.transport.target}: cannot deliver an alert ({reason}); "
                "retrying with backoff, the analysis goes on"
            )
        self._last_failure = reason

    def finish(self) -> None:
        """After the last alert: release the transport; undelivered alerts fail this output."""
        self.transport.close()
        lost = self.undelivered + self.dropped
        if lost:
            raise OutputError(
                f"{self.transport.target}: {lost} alert(s) not delivered "
                f"({self._last_failure or 'queue full'})"
            )

    def close(self) -> None:
        """Deliver what is queued (one last try each once closing), then stop."""
        self._closing.set()
        super().close()
