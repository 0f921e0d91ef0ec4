"""How the inference thread batched its work: CNN batch sizes, mixed-stream batches, time
inside the backend. Emitted once at the end of a run as the ``batch_stats`` event."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dfstream.types import BatchStatsEvent, FaceCrop


@dataclass
class BatchStats:
    """How full the CNN batches were, how often one batch mixed several streams, and the time
    spent inside the backend."""

    batches: int = 0
    crops: int = 0
    multi_stream_batches: int = 0
    max_streams: int = 0
    embed_s: float = 0.0
    """Seconds inside ``backend.embed`` (the CNN)."""
    score_calls: int = 0
    windows: int = 0
    score_s: float = 0.0
    """Seconds inside ``backend.score`` (the temporal head)."""
    sizes: dict[int, int] = field(default_factory=dict)
    """How many CNN calls had each batch size (for the metrics' histogram)."""

    @property
    def mean_size(self) -> float:
        """Average crops per CNN call."""
        return self.crops / self.batches if self.batches else 0.0

    def add(self, crops: Sequence[FaceCrop]) -> None:
        """Count one CNN call over ``crops``."""
        streams = len({c.stream_id for c in crops})
        self.batches += 1
        self.sizes[len(crops)] = self.sizes.get(len(crops), 0) + 1
        self.crops += len(crops)
        self.multi_stream_batches += streams > 1
        self.max_streams = max(self.max_streams, streams)

    def event(self) -> BatchStatsEvent:
        """The JSONL ``batch_stats`` event."""
        return BatchStatsEvent(
            batches=self.batches,
            crops=self.crops,
            multi_stream_batches=self.multi_stream_batches,
            max_streams_per_batch=self.max_streams,
            wall_time=time.time(),
        )
