"""Prometheus metrics: ``--metrics-port N`` serves ``/metrics`` (``prometheus_client``).

Counters and gauges are read from the pipeline's live state at scrape time (a custom collector
over ``Pipeline.snapshots()`` and its ``BatchStats``), so a scrape costs the pipeline nothing;
only the latency histogram is fed from score events. Every series carries the ``stream`` label
(the stream id: URL credentials redacted, and redacted again here). Series:

- ``dfstream_frames_decoded_total``, ``dfstream_frames_analyzed_total``,
  ``dfstream_frames_dropped_total`` (live queue overflow), ``dfstream_frames_corrupt_total``
  (dropped as corrupt or before a clean keyframe), ``dfstream_reconnects_total``,
  ``dfstream_crops_total``, ``dfstream_windows_total``: counters per stream;
- ``dfstream_stream_state{state=...}``: 1 for the stream's connection state, 0 for the others;
- ``dfstream_verdict{verdict=...}``: 1 for the current verdict; ``dfstream_score``: the
  stream's smoothed score (absent before the first window);
- ``dfstream_latency_seconds``: histogram of decode-to-score latency per stream;
- ``dfstream_batch_size``: histogram of CNN batch sizes (crops per call, all streams).

The server binds 127.0.0.1 unless ``--metrics-host`` says otherwise: the metrics name the
sources.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dfstream.errors import OutputError
from dfstream.pipeline.state import StreamSnapshot
from dfstream.pipeline.stats import BatchStats
from dfstream.sinks.base import Sink
from dfstream.sources import redact
from dfstream.types import Event, ScoreEvent, Verdict

STATES = (
    "starting", "connected", "disconnected", "stalled", "corrupt", "reconnecting", "ended",
    "failed",
)  # fmt: skip
"""Connection states exported by ``dfstream_stream_state`` (others are added as seen)."""
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

_COUNTERS = (
    ("frames_decoded", "frames_decoded", "Frames decoded and queued for analysis."),
    ("frames_analyzed", "frames_analyzed", "Frames sampled and analysed (face detection)."),
    ("frames_dropped", "dropped", "Live frames dropped because analysis fell behind."),
    ("frames_corrupt", "corrupt_frames", "Frames dropped as corrupt or before a keyframe."),
    ("reconnects", "reconnects", "Successful reconnects of a live source."),
    ("crops", "crops_embedded", "Face crops embedded by the CNN."),
    ("windows", "windows_scored", "Temporal windows scored."),
)


class _Collector:
    """Builds the metric families from the current snapshots at every scrape."""

    def __init__(self, sink: MetricsSink) -> None:
        self._sink = sink

    def describe(self) -> list[Any]:
        return []  # families vary with the streams: no describe-time registration checks

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snaps = self._sink.snapshots()
        for name, attr, help_text in _COUNTERS:
            family = CounterMetricFamily(f"dfstream_{name}", help_text, labels=["stream"])
            for snap in snaps:
                family.add_metric([redact(snap.stream_id)], float(getattr(snap, attr)))
            yield family
        state = GaugeMetricFamily(
            "dfstream_stream_state",
            "1 for the stream's connection state.",
            labels=["stream", "state"],
        )
        verdict = GaugeMetricFamily(
            "dfstream_verdict", "1 for the stream's current verdict.", labels=["stream", "verdict"]
        )
        score = GaugeMetricFamily(
            "dfstream_score", "Smoothed deepfake score of the stream (0..1).", labels=["stream"]
        )
        for snap in snaps:
            sid = redact(snap.stream_id)
            for known in (*STATES, *(() if snap.state in STATES else (snap.state,))):
                state.add_metric([sid, known], 1.0 if snap.state == known else 0.0)
            for v in Verdict:
                verdict.add_metric([sid, v.value], 1.0 if snap.verdict is v else 0.0)
            if snap.score is not None:
                score.add_metric([sid], snap.score)
        yield from (state, verdict, score)
        latency = HistogramMetricFamily(
            "dfstream_latency_seconds", "Decode-to-score latency of windows.", labels=["stream"]
        )
        for sid, (counts, total) in self._sink.latency_histograms().items():
            latency.add_metric([sid], _cumulative(LATENCY_BUCKETS, counts), sum_value=total)
        yield latency
        sizes = self._sink.batch_sizes()
        batch = HistogramMetricFamily("dfstream_batch_size", "Crops per CNN call.")
        counts = [0] * (len(BATCH_BUCKETS) + 1)
        for size, calls in sizes.items():
            counts[_bucket(BATCH_BUCKETS, size)] += calls
        total = float(sum(size * calls for size, calls in sizes.items()))
        batch.add_metric([], _cumulative(BATCH_BUCKETS, counts), sum_value=total)
        yield batch


def _bucket(bounds: Sequence[float], value: float) -> int:
    """Index of the first bucket whose upper bound holds ``value`` (len(bounds) = +Inf)."""
    for i, bound in enumerate(bounds):
        if value <= bound:
            return i
    return len(bounds)


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus histogram buckets (cumulative, ``+Inf`` last) from per-bucket counts."""
    running, out = 0, []
    for bound, count in zip((*[str(b) for b in bounds], "+Inf"), counts, strict=True):
        running += count
        out.append((bound, float(running)))
    return out


class MetricsSink(Sink):
    """Serves ``/metrics`` while the run lasts; see the module docstring for the series.

    ``attach`` connects it to the pipeline's state once the pipeline exists; before that a
    scrape shows no streams.
    """

    name = "metrics"

    def __init__(self) -> None:
        """An unserved sink; ``open`` starts the server."""
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))  # type: ignore[arg-type]
        self._server: Any = None
        self.address = ("", 0)
        self._lock = threading.Lock()
        self._latency: dict[str, tuple[list[int], float]] = {}
        self._snapshots: Callable[[], Sequence[StreamSnapshot]] = list
        self._batch_stats: BatchStats | None = None

    @classmethod
    def open(cls, host: str, port: int) -> MetricsSink:
        """Start the HTTP server now (a port in use is an ``OutputError``, exit 6); port 0
        picks a free one (see ``url``)."""
        from prometheus_client import start_http_server

        sink = cls()
        try:
            sink._server, _thread = start_http_server(port, addr=host, registry=sink.registry)
        except OSError as exc:
            raise OutputError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from exc
        sink.address = (host, int(sink._server.server_address[1]))
        return sink

    @property
    def url(self) -> str:
        """Where to scrape."""
        host, port = self.address
        return f"http://{host}:{port}/metrics"

    def attach(
        self, snapshots: Callable[[], Sequence[StreamSnapshot]], batch_stats: BatchStats
    ) -> None:
        """Read the streams' state from ``snapshots`` and batch sizes from ``batch_stats``."""
        self._snapshots, self._batch_stats = snapshots, batch_stats

    def snapshots(self) -> Sequence[StreamSnapshot]:
        """The streams as they are now."""
        return self._snapshots()

    def batch_sizes(self) -> dict[int, int]:
        """CNN calls per batch size so far."""
        return dict(self._batch_stats.sizes) if self._batch_stats is not None else {}

    def latency_histograms(self) -> dict[str, tuple[list[int], float]]:
        """Per stream: per-bucket counts and the sum of latencies in seconds."""
        with self._lock:
            return {sid: (list(c), total) for sid, (c, total) in self._latency.items()}

    def handle(self, event: Event) -> None:
        if not isinstance(event, ScoreEvent):
            return
        seconds = event.latency_ms / 1000.0
        sid = redact(event.stream_id)
        with self._lock:
            counts, total = self._latency.get(sid, ([0] * (len(LATENCY_BUCKETS) + 1), 0.0))
            counts[_bucket(LATENCY_BUCKETS, seconds)] += 1
            self._latency[sid] = (counts, total + seconds)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
