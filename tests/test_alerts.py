"""FAKE alerts to a real HTTP receiver (``http.server`` here) and a real Mosquitto broker.

A FAKE is made deterministic with ``--threshold 0``: every window of the untrained model scores
above it, so the verdict turns FAKE once and stays (one episode). Episodes that end and start
again are driven through the sink with verdict events, delivered by the real transports.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from dfstream.sinks.alert_transports import MqttTransport, WebhookTransport, parse_mqtt_url
from dfstream.sinks.alerts import AlertSink
from dfstream.sinks.base import SinkFailed
from dfstream.types import Frame, ScoreEvent, Verdict, VerdictEvent
from tests.live_servers import REPO_ROOT, free_port, wait_for
from tests.media import write_clip
from tests.real_servers import Mosquitto, running

pytestmark = pytest.mark.network
needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason="needs the mosquitto broker (Debian: mosquitto)"
)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if outer.status == 200:
                    outer.bodies.append(body)
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def receiver(status: int = 200) -> Iterator[Receiver]:
    r = Receiver(status)
    try:
        yield r
    finally:
        r.close()


class Subscriber:
    """A paho-mqtt client subscribed to ``topic`` on the broker, keeping every message."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_: self.ready.set()
        client.on_message = lambda _c, _u, m: self.messages.append(json.loads(m.payload))
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        assert self.ready.wait(10), "the subscriber could not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _face_frame(stream: str, index: int) -> Frame:
    image = np.zeros((120, 160, 3), np.uint8)
    image[30:90, 50:110] = (60, 120, 200)
    return Frame(stream_id=stream, index=index, pts_seconds=index / 25, wall_time=time.time(),
                 image_bgr=image)  # fmt: skip


def _score(stream: str, index: int, smoothed: float, track: int = 1) -> ScoreEvent:
    return ScoreEvent(stream, track, index, index / 25, smoothed, smoothed, (50, 30, 110, 90),
                      10.0, time.time(), True)  # fmt: skip


def _verdict(stream: str, verdict: Verdict, index: int) -> VerdictEvent:
    return VerdictEvent(stream, verdict, 0.9 if verdict is Verdict.FAKE else 0.1, index / 25,
                        time.time(), True)  # fmt: skip


def _drive_episodes(sink: AlertSink, stream: str) -> None:
    """FAKE, REAL, UNCERTAIN, FAKE, FAKE again (no change), REAL: two FAKE episodes."""
    sequence = [Verdict.FAKE, Verdict.REAL, Verdict.UNCERTAIN, Verdict.FAKE, Verdict.FAKE,
                Verdict.REAL]  # fmt: skip
    for i, verdict in enumerate(sequence):
        sink.on_frame(_face_frame(stream, i), ((1, (50.0, 30.0, 110.0, 90.0)),))
        sink.handle(_score(stream, i, 0.9 if verdict is Verdict.FAKE else 0.1))
        sink.handle(_verdict(stream, verdict, i))


def _check_alert(alert: dict[str, Any], stream: str) -> None:
    assert alert["type"] == "alert" and alert["stream"] == stream and alert["track"] == 1
    assert alert["verdict"] == "FAKE" and alert["score"] == pytest.approx(0.9)
    assert alert["model"] == "test-model" and alert["untrained"] is True
    assert alert["wall_time"] > 0 and alert["time"].endswith("Z")
    snap = alert["snapshot"]
    assert snap["content_type"] == "image/jpeg" and snap["encoding"] == "base64"
    jpeg = np.frombuffer(base64.b64decode(snap["data"]), np.uint8)
    image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert image.shape[:2] == (snap["height"], snap["width"]) == (61, 61)
    assert np.abs(image.astype(int) - (60, 120, 200)).mean() < 8  # the face, not the background


def test_webhook_gets_one_alert_per_fake_episode_and_recoveries() -> None:
    stream = "rtsp://***@127.0.0.1:8554/cam"
    with receiver() as hook:
        sink = AlertSink(WebhookTransport(hook.url), name="webhook", model="test-model",
                         threshold=0.5, recover=True)  # fmt: skip
        sink.start()
        _drive_episodes(sink, stream)
        sink.close()
    kinds = [a["alert"] for a in hook.bodies]
    assert kinds == ["fake", "recovered", "fake", "recovered"] and sink.sent == 4
    _check_alert(hook.bodies[0], stream)
    assert hook.bodies[1]["verdict"] == "REAL"


@needs_mosquitto
def test_mqtt_subscriber_gets_one_alert_per_fake_episode(tmp_path: Path) -> None:
    with running(Mosquitto(tmp_path)) as broker:
        subscriber = Subscriber(broker.port, "dfstream/alerts")
        try:
            url = f"mqtt://127.0.0.1:{broker.port}/dfstream/alerts"
            sink = AlertSink(MqttTransport(url), name="mqtt", model="test-model", threshold=0.5)
            sink.start()
            _drive_episodes(sink, "cam-1")
            sink.close()
            assert wait_for(lambda: len(subscriber.messages) >= 2, 10)
            time.sleep(0.5)  # a duplicate would arrive within this
        finally:
            subscriber.close()
    assert [m["alert"] for m in subscriber.messages] == ["fake", "fake"]
    _check_alert(subscriber.messages[0], "cam-1")


def test_dead_endpoint_never_blocks_is_reported_once_and_fails_the_output_at_close() -> None:
    notices: list[str] = []
    dead = f"http://user:s3cret@127.0.0.1:{free_port()}/hook"
    sink = AlertSink(WebhookTransport(dead, timeout=0.5), name="webhook", model="m",
                     threshold=0.5, notice=notices.append)  # fmt: skip
    sink.start()
    started = time.monotonic()
    for i in range(3):
        sink.handle(_verdict("s", Verdict.FAKE, 3 * i))
        sink.handle(_verdict("s", Verdict.REAL, 3 * i + 1))
    assert time.monotonic() - started < 0.2  # handle() only queues
    assert wait_for(lambda: notices, 5)
    time.sleep(2.0)  # several retries with backoff: still one notice for this outage
    with pytest.raises(SinkFailed) as info:
        sink.close()
    assert len(notices) == 1 and "connection refused" in notices[0].lower()
    assert "3 alert(s) not delivered" in str(info.value)
    assert "s3cret" not in str(info.value) + notices[0]


def test_endpoint_back_after_an_outage_gets_the_queued_alert() -> None:
    notices: list[str] = []
    with receiver(status=503) as hook:
        sink = AlertSink(WebhookTransport(hook.url), name="webhook", model="m", threshold=0.5,
                         notice=notices.append)  # fmt: skip
        sink.start()
        sink.handle(_verdict("s", Verdict.FAKE, 0))
        assert wait_for(lambda: notices, 5)
        hook.status = 200
        assert wait_for(lambda: len(hook.bodies) == 1, 10)
        sink.close()
    assert "HTTP 503" in notices[0] and "again" in notices[1] and len(notices) == 2


def test_mqtt_urls_are_checked() -> None:
    target = parse_mqtt_url("mqtt://u:p%40ss@broker:1884/site/alerts")
    assert (target.host, target.port, target.topic) == ("broker", 1884, "site/alerts")
    assert target.password == "p@ss"
    for bad in ("mqtt://broker", "mqtt://broker/a/#", "http://broker/t"):
        with pytest.raises(Exception, match="--mqtt"):
            parse_mqtt_url(bad)


@needs_mosquitto
def test_cli_alerts_once_per_episode_to_webhook_and_mqtt(tmp_path: Path) -> None:
    """``--threshold 0``: the untrained model's first window makes the stream FAKE; it stays
    FAKE, so the webhook receiver and the MQTT subscriber each get exactly one alert."""
    clip = write_clip(tmp_path / "face.mp4", frames=40, size=(160, 120), pattern="face")
    with running(Mosquitto(tmp_path)) as broker, receiver() as hook:
        port = broker.port
        subscriber = Subscriber(port, "cams/alerts")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "dfstream", str(clip), "--untrained", "--detector", "none",
                 "--window", "4", "--stride", "2", "--no-dashboard", "--threshold", "0",
                 "--webhook", hook.url, "--mqtt", f"mqtt://127.0.0.1:{port}/cams/alerts",
                 "--jsonl", str(tmp_path / "e.jsonl")],
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert wait_for(lambda: subscriber.messages, 10)
            time.sleep(0.5)
        finally:
            subscriber.close()
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    fakes = [e for e in events if e["type"] == "verdict" and e["verdict"] == "FAKE"]
    assert len(fakes) == 1
    assert len(hook.bodies) == 1 and len(subscriber.messages) == 1
    for alert in (hook.bodies[0], subscriber.messages[0]):
        assert alert["stream"] == str(clip) and alert["alert"] == "fake"
        assert alert["model"].startswith("resnext50 untrained") or "untrained" in alert["model"]
        assert alert["snapshot"]["data"] and alert["media_time"] == fakes[0]["media_time"]


def test_bad_alert_urls_are_usage_errors(tmp_path: Path, clip_path: Path) -> None:
    for flag, url in (("--webhook", "ftp://u:pw@h/x"), ("--mqtt", "mqtt://u:pw@h")):
        done = subprocess.run(
            [sys.executable, "-m", "dfstream", str(clip_path), "--untrained", flag, url],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "pw" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
