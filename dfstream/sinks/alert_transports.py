"""Where FAKE alerts go: an HTTP webhook (``--webhook URL``) or an MQTT topic (``--mqtt URL``).

A transport sends one payload (bytes of JSON) or raises ``DeliveryError`` with a one-line
reason; ``AlertSink`` retries with backoff. ``target`` is the destination with credentials
redacted: the only form that reaches a message.

- ``WebhookTransport``: ``POST`` with ``Content-Type: application/json`` (``user:password@``
  in the URL is sent as HTTP Basic authentication); any 2xx answer is a delivery; a
  timeout, a refused connection or any other answer is a failure (retried).
- ``MqttTransport`` (paho-mqtt): ``mqtt://[user:password@]host[:port]/topic/path``, QoS 1
  (at least once: the broker acknowledges). paho keeps the connection and reconnects in the
  background; a publish while disconnected is a failure (retried), not queued in paho, so
  that a retry can never publish the same alert twice.
"""

from __future__ import annotations

import base64
import os
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from dfstream.errors import UsageError
from dfstream.sources import redact, safe_message


class DeliveryError(Exception):
    """An alert could not be delivered this time (the reason is one line, redacted)."""


class AlertTransport(Protocol):
    """Sends one alert payload; ``target`` names the destination (redacted)."""

    target: str

    def send(self, payload: bytes) -> None:
        """Deliver ``payload`` or raise ``DeliveryError``."""

    def close(self) -> None:
        """Release connections."""


class WebhookTransport:
    """POSTs JSON alerts to an ``http://`` or ``https://`` URL."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--webhook {redact(url)}: expected an http:// or https:// URL")
        self.timeout = timeout
        self.target = redact(url)
        self._headers = {"Content-Type": "application/json", "User-Agent": "dfstream"}
        if parts.username is not None:  # user:password@ becomes HTTP Basic authentication
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc))

    def send(self, payload: bytes) -> None:
        """One POST; a 2xx answer is a delivery."""
        request = urllib.request.Request(
            self.url,
            data=payload,
            method="POST",
            headers=self._headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeliveryError(safe_message(getattr(reason, "strerror", None) or reason)) from None

    def close(self) -> None:
        """Nothing to release: one connection per POST."""


@dataclass(frozen=True)
class MqttTarget:
    """An ``--mqtt`` URL taken apart."""

    host: str
    port: int
    topic: str
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt://[user:password@]host[:port]/topic/path`` or a one-line ``UsageError``."""
    parts = urlsplit(url)
    topic = unquote(parts.path.lstrip("/"))
    shown = redact(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise UsageError(f"--mqtt {shown}: expected mqtt://[user:password@]host[:port]/topic")
    if not topic or "+" in topic or "#" in url.rsplit("@", 1)[-1]:
        raise UsageError(f"--mqtt {shown}: expected a topic without wildcards after the host")
    try:
        port = parts.port or 1883
    except ValueError:
        raise UsageError(f"--mqtt {shown}: the port is not a number") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return MqttTarget(parts.hostname, port, topic, username, password)


class MqttTransport:
    """Publishes alerts with QoS 1 through a paho-mqtt client that reconnects on its own."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.settings = parse_mqtt_url(url)
        self.timeout = timeout
        self.target = redact(url)
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise UsageError("--mqtt needs paho-mqtt: pip install paho-mqtt") from None
        self._mqtt: Any = mqtt
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"dfstream-{os.getpid()}-{threading.get_ident()}",
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._connected = threading.Event()
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *_args: self._connected.clear()
        client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        client.loop_start()
        self._client = client

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, *_: Any) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def send(self, payload: bytes) -> None:
        """Publish once the client is connected (waits up to ``timeout``) and the broker has
        acknowledged."""
        if not self._connected.wait(self.timeout):
            raise DeliveryError(
                f"not connected to the broker {self.settings.host}:{self.settings.port}"
            )
        info = self._client.publish(self.settings.topic, payload, qos=1)
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            raise DeliveryError(f"publish failed ({self._mqtt.error_string(info.rc)})")
        try:
            info.wait_for_publish(timeout=self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"publish failed ({exc})") from None
        # Not acknowledged yet: paho owns the QoS 1 message now and resends it on reconnect;
        # a retry from here could deliver it twice.

    def close(self) -> None:
        """Disconnect and stop paho's network thread."""
        self._client.disconnect()
        self._client.loop_stop()


def open_transport(kind: str, url: str) -> AlertTransport:
    """The transport of ``--webhook`` (kind ``webhook``) or ``--mqtt`` (kind ``mqtt``)."""
    if kind == "webhook":
        return WebhookTransport(url)
    if kind == "mqtt":
        return MqttTransport(url)
    raise ValueError(f"kind: expected webhook or mqtt but got {kind!r}")
