"""From window probabilities to smoothed per-face scores and per-stream verdicts.

* Each track's score is an exponential moving average of its window scores.
* A stream's live score is the highest smoothed score among its current faces (one fake face
  makes the stream suspicious). Its verdict moves with hysteresis: FAKE at or above
  ``threshold + hysteresis``, REAL at or below ``threshold - hysteresis``, and otherwise it keeps
  the verdict it had (UNCERTAIN until the first clear reading, NO_FACES before any window).
* The whole-video verdict uses each track's mean window score over the whole video, ignoring
  tracks with too few windows to mean anything (brief false detections), and the highest of
  those means, with the same thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfstream.types import TrackSummary, Verdict


@dataclass(frozen=True)
class ScoringSettings:
    """Thresholds for verdicts and the smoothing factor of the per-track average.

    ``threshold_source`` says where the threshold came from, for summaries and reports:
    ``--threshold`` (the user's), ``checkpoint`` (calibrated for the model; ``threshold_rule``
    says how) or ``default`` (0.5, the model carries none). The UNCERTAIN band is
    ``threshold ± hysteresis`` wherever the threshold sits."""

    threshold: float = 0.5
    hysteresis: float = 0.05
    ema_alpha: float = 0.3
    min_track_fraction: float = 0.2
    threshold_source: str = "default"
    threshold_rule: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold: expected 0..1 but got {self.threshold}")
        if not 0.0 <= self.hysteresis < 0.5:
            raise ValueError(f"hysteresis: expected 0..0.5 but got {self.hysteresis}")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha: expected (0, 1] but got {self.ema_alpha}")

    def describe_threshold(self) -> str:
        """The threshold and its origin in a few words: ``0.620 (checkpoint: EER on dev)``."""
        origin = self.threshold_source
        if self.threshold_rule:
            origin += f": {self.threshold_rule}"
        return f"{self.threshold:.3f} ({origin})"

    def classify(self, score: float, previous: Verdict) -> Verdict:
        """The verdict for ``score`` given the verdict held so far (hysteresis)."""
        if score >= self.threshold + self.hysteresis:
            return Verdict.FAKE
        if score <= self.threshold - self.hysteresis:
            return Verdict.REAL
        if previous in (Verdict.FAKE, Verdict.REAL):
            return previous
        return Verdict.UNCERTAIN


@dataclass
class _TrackStats:
    smoothed: float
    windows: int
    total: float
    peak: float
    first_time: float
    last_time: float
    active: bool = True


class StreamScorer:
    """Smoothed scores, the live verdict and the final verdict of one stream."""

    def __init__(self, settings: ScoringSettings) -> None:
        self.settings = settings
        self.verdict = Verdict.NO_FACES
        self.score: float | None = None
        self._tracks: dict[int, _TrackStats] = {}

    def update(self, track_id: int, score: float, media_time: float) -> tuple[float, bool]:
        """Record a window score; return the track's smoothed score and whether the stream's
        verdict changed."""
        stats = self._tracks.get(track_id)
        if stats is None:
            stats = _TrackStats(score, 0, 0.0, score, media_time, media_time)
            self._tracks[track_id] = stats
        else:
            alpha = self.settings.ema_alpha
            stats.smoothed = alpha * score + (1.0 - alpha) * stats.smoothed
        stats.windows += 1
        stats.total += score
        stats.peak = max(stats.peak, score)
        stats.last_time = media_time
        stats.active = True
        return stats.smoothed, self._refresh()

    def end_track(self, track_id: int) -> bool:
        """A face left the picture: it no longer drives the live verdict. Returns whether the
        verdict changed."""
        stats = self._tracks.get(track_id)
        if stats is None:
            return False
        stats.active = False
        return self._refresh()

    def _refresh(self) -> bool:
        active = [s.smoothed for s in self._tracks.values() if s.active]
        if not active:
            return False  # keep the last verdict while no face is visible
        self.score = max(active)
        new = self.settings.classify(self.score, self.verdict)
        changed = new != self.verdict
        self.verdict = new
        return changed

    def tracks(self) -> tuple[TrackSummary, ...]:
        """Per-track totals, in track order."""
        return tuple(
            TrackSummary(
                track_id=tid,
                windows=s.windows,
                mean_score=s.total / s.windows,
                max_score=s.peak,
                first_media_time=s.first_time,
                last_media_time=s.last_time,
            )
            for tid, s in sorted(self._tracks.items())
        )

    def final(self) -> tuple[Verdict, float | None]:
        """The whole-video verdict and its score."""
        tracks = self.tracks()
        if not tracks:
            return Verdict.NO_FACES, None
        longest = max(t.windows for t in tracks)
        floor = max(1.0, self.settings.min_track_fraction * longest)
        score = max(t.mean_score for t in tracks if t.windows >= floor)
        return self.settings.classify(score, Verdict.UNCERTAIN), score
