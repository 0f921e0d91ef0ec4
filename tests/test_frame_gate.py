"""The frame gate's rules (``dfstream.sources.integrity``), table-driven on stand-in frames,
and the metrics server's own failure modes."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from dfstream.errors import OutputError
from dfstream.sinks.metrics import MetricsSink
from dfstream.sources.integrity import FrameGate, PassThroughGate


@dataclass
class F:
    """A decoded frame as the gate sees it (PyAV 18 has both attributes)."""

    key_frame: bool
    is_corrupt: bool = False


@dataclass
class OldF:
    """A frame from a PyAV without ``is_corrupt``."""

    key_frame: bool


K, P, BAD_K, BAD_P = F(True), F(False), F(True, True), F(False, True)


@pytest.mark.parametrize(
    ("frames", "admitted"),
    [
        ([P, P, K, P, P], [0, 0, 1, 1, 1]),  # joined mid-GOP: from the keyframe on
        ([K, P, BAD_P, P, P, K, P], [1, 1, 0, 0, 0, 1, 1]),  # corrupt: drop until next keyframe
        ([BAD_K, P, P, K], [0, 0, 0, 1]),  # an open-GOP keyframe flagged corrupt is no resync
        ([K, P, BAD_K, P], [1, 1, 0, 0]),
        ([OldF(False), OldF(True), OldF(False)], [0, 1, 1]),  # older PyAV: keyframe rule only
    ],
)
def test_gate_rules(frames: list[object], admitted: list[int]) -> None:
    gate = FrameGate()
    assert [int(gate.admit(f)) for f in frames] == admitted
    assert gate.dropped == admitted.count(0)


def test_reconnect_and_lost_packets_wait_for_a_keyframe_and_passthrough_only_counts() -> None:
    gate = FrameGate()
    assert [gate.admit(f) for f in (K, P)] == [True, True]
    gate.reset()  # a new connection
    assert not gate.admit(P) and gate.admit(K)
    gate.lost()  # a packet that could not be decoded
    assert not gate.admit(P) and gate.admit(K) and gate.dropped == 2
    passthrough = PassThroughGate()
    assert all(passthrough.admit(f) for f in (P, K, BAD_P, P)) and passthrough.dropped == 3


def test_metrics_port_in_use_is_an_output_error_on_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=f"--metrics-port {port}: cannot listen") as info:
            MetricsSink.open("127.0.0.1", port)
    assert "\n" not in str(info.value) and info.value.exit_code == 6


def test_metrics_before_any_stream_and_after_close() -> None:
    import urllib.request

    sink = MetricsSink.open("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(sink.url, timeout=5) as answer:
            text = answer.read().decode()
        assert "dfstream_batch_size_count 0.0" in text and "stream=" not in text
    finally:
        sink.close()
    sink.close()  # twice is fine
