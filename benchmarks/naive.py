"""The naive reference: dfstream's analysis done the straightforward way, to measure against.

One stream, one thread, one frame at a time: decode a frame, hand it to the same
``FaceAnalyzer`` as dfstream's (the detector on every analysed frame, no tracker-only frames;
the same IoU tracker and crop rule), and whenever a track's window is due, run the full
model on it: the CNN on all T crops of the window (``backend.embed``) and then the LSTM head
(``backend.score``). No feature reuse between overlapping windows, no batching across tracks
or streams, no overlap of decoding, detection and inference.

It yields the same windows with the same scores as ``dfstream`` run with ``--detect-every 1``
(or ``--detector none``, where detection is trivial): same frames (the same file source), same
tracks, same crops, same model and backend. Only the amount of work and its order differ.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dfstream.backends.base import InferenceBackend
from dfstream.faces import AnalyzerSettings, FaceAnalyzer, FaceDetector
from dfstream.sources import open_source


@dataclass
class NaiveResult:
    """What the naive reference did and how long it took."""

    scores: dict[tuple[int, int], float] = field(default_factory=dict)
    """``{(track_id, frame_index): P(fake)}`` for every window scored."""
    frames: int = 0
    crops_embedded: int = 0
    """Crops through the CNN, counting a crop again for every window it is part of."""
    windows: int = 0
    wall_s: float = 0.0

    @property
    def crops_per_s(self) -> float:
        """CNN crops per second of wall time."""
        return self.crops_embedded / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class _Track:
    crops: deque[np.ndarray]
    since_last: int


def run_naive(
    video: Path,
    *,
    backend: InferenceBackend,
    detector: FaceDetector,
    analyzer: AnalyzerSettings,
    window: int,
    stride: int,
) -> NaiveResult:
    """Analyse ``video`` the naive way; ``analyzer`` gives the tracker and crop settings.

    Every frame is analysed (``analyzer.analysis_fps`` must be None) and the detector runs on
    every one of them, whatever ``analyzer.detect_every`` says.
    """
    if analyzer.analysis_fps is not None:
        raise ValueError("the naive reference analyses every frame: analysis_fps must be None")
    result = NaiveResult()
    faces = FaceAnalyzer(detector, replace(analyzer, detect_every=1), stream_id=str(video))
    tracks: dict[int, _Track] = {}
    started = time.perf_counter()
    with open_source(str(video)) as source:
        for frame in source.frames():
            if analyzer.max_seconds is not None and frame.pts_seconds >= analyzer.max_seconds:
                break
            result.frames += 1
            analysis = faces.analyze(frame)
            for track_id in analysis.ended:
                tracks.pop(track_id, None)
            for crop in analysis.crops:
                state = tracks.get(crop.track_id)
                if state is None:
                    # As in dfstream: the first window is due once T crops exist.
                    state = tracks[crop.track_id] = _Track(deque(maxlen=window), stride - 1)
                state.crops.append(crop.crop)
                state.since_last += 1
                if len(state.crops) < window or state.since_last < stride:
                    continue
                state.since_last = 0
                # The whole model on the whole window: T crops through the CNN, then the head.
                features = backend.embed(np.stack(state.crops))
                prob = backend.score(features[np.newaxis])
                result.scores[(crop.track_id, frame.index)] = float(prob[0])
                result.crops_embedded += window
                result.windows += 1
    result.wall_s = time.perf_counter() - started
    return result


def compare_scores(
    reference: dict[tuple[int, int], float], other: dict[tuple[int, int], float]
) -> dict[str, float | int]:
    """How two runs' window scores differ: windows in both, in one only, largest difference."""
    common = sorted(set(reference) & set(other))
    diffs = [abs(reference[k] - other[k]) for k in common]
    return {
        "windows_compared": len(common),
        "windows_only_naive": len(set(reference) - set(other)),
        "windows_only_dfstream": len(set(other) - set(reference)),
        "max_abs_score_diff": max(diffs) if diffs else float("nan"),
    }
