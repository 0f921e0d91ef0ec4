"""Per-track caches of CNN features: the reason every crop goes through the CNN exactly once.

Each face track keeps its last T features in a ``deque(maxlen=T)``. Whenever the deque is full
and ``stride`` new features arrived since the track's last window, a window is ready to score.
A track that ends (or whose stream ends) before it ever held T features gives one short window
of the 1..T-1 features it has, so that every face that was seen gets a score: a photo is a
one-crop track, and a face seen for a moment in a video is a short one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dfstream.types import Box


@dataclass(frozen=True, slots=True)
class ReadyWindow:
    """1..T consecutive features of one track, stamped with the newest crop's frame; fewer
    than T only for a track that ended before it held T (``short``)."""

    stream_id: str
    track_id: int
    frame_index: int
    media_time: float
    decode_wall_time: float
    box: Box
    features: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        """How many features the window holds."""
        return int(self.features.shape[0])


@dataclass
class _TrackWindow:
    features: deque[np.ndarray]
    since_last: int = 0
    scored: bool = False
    """A window of this track was ready at least once: no short window at its end."""
    last: tuple[int, float, float, Box] = (0, 0.0, 0.0, (0.0, 0.0, 1.0, 1.0))
    """(frame index, media time, decode wall time, box) of the newest crop."""


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
        state.last = (frame_index, media_time, decode_wall_time, box)
        if len(state.features) < self.window or state.since_last < self.stride:
            return None
        state.since_last = 0
        state.scored = True
        return _window(key, state)

    def end_track(self, stream_id: str, track_id: int) -> ReadyWindow | None:
        """Forget a track that ended; its short window when it never held T features."""
        state = self._tracks.pop((stream_id, track_id), None)
        return _short_window((stream_id, track_id), state)

    def end_stream(self, stream_id: str) -> list[ReadyWindow]:
        """Forget every track of a stream; the short windows of those that never held T
        features, by track id."""
        ready = []
        for key in sorted(k for k in self._tracks if k[0] == stream_id):
            window = _short_window(key, self._tracks.pop(key))
            if window is not None:
                ready.append(window)
        return ready

    def __len__(self) -> int:
        return len(self._tracks)


def _window(key: tuple[str, int], state: _TrackWindow) -> ReadyWindow:
    frame_index, media_time, wall_time, box = state.last
    return ReadyWindow(
        stream_id=key[0],
        track_id=key[1],
        frame_index=frame_index,
        media_time=media_time,
        decode_wall_time=wall_time,
        box=box,
        features=np.stack(state.features),
    )


def _short_window(key: tuple[str, int], state: _TrackWindow | None) -> ReadyWindow | None:
    if state is None or state.scored or not state.features:
        return None
    return _window(key, state)
