"""Per-track caches of CNN features: the reason every crop goes through the CNN exactly once.

Each face track keeps its last T features in a ``deque(maxlen=T)``. Whenever the deque is full
and ``stride`` new features arrived since the track's last window, a window is ready to score.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dfstream.types import Box


@dataclass(frozen=True, slots=True)
class ReadyWindow:
    """T consecutive features of one track, stamped with the newest crop's frame."""

    stream_id: str
    track_id: int
    frame_index: int
    media_time: float
    decode_wall_time: float
    box: Box
    features: np.ndarray = field(repr=False)


@dataclass
class _TrackWindow:
    features: deque[np.ndarray]
    since_last: int = 0


class WindowCache:
    """Feature windows of every live track of every stream."""

    def __init__(self, *, window: int, stride: int) -> None:
        if window < 1 or stride < 1:
            raise ValueError(f"expected window >= 1 and stride >= 1 but got {window}, {stride}")
        self.window = window
        self.stride = stride
        self._tracks: dict[tuple[str, int], _TrackWindow] = {}

    def add(
        self,
        *,
        stream_id: str,
        track_id: int,
        frame_index: int,
        media_time: float,
        decode_wall_time: float,
        box: Box,
        feature: np.ndarray,
    ) -> ReadyWindow | None:
        """Append one crop's feature; return a window when one is due."""
        key = (stream_id, track_id)
        state = self._tracks.get(key)
        if state is None:
            # The first window is due as soon as T features exist, whatever the stride.
            state = _TrackWindow(deque(maxlen=self.window), since_last=self.stride - 1)
            self._tracks[key] = state
        state.features.append(feature)
        state.since_last += 1
        if len(state.features) < self.window or state.since_last < self.stride:
            return None
        state.since_last = 0
        return ReadyWindow(
            stream_id=stream_id,
            track_id=track_id,
            frame_index=frame_index,
            media_time=media_time,
            decode_wall_time=decode_wall_time,
            box=box,
            features=np.stack(state.features),
        )

    def end_track(self, stream_id: str, track_id: int) -> None:
        """Forget a track that ended."""
        self._tracks.pop((stream_id, track_id), None)

    def end_stream(self, stream_id: str) -> None:
        """Forget every track of a stream."""
        for key in [k for k in self._tracks if k[0] == stream_id]:
            del self._tracks[key]

    def __len__(self) -> int:
        return len(self._tracks)
