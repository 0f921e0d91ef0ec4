"""The overlay: frame-to-score matching, drawing, and the encoded file (synthetic clips)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from dfstream.errors import OutputError
from dfstream.sinks.overlay import OverlaySettings, OverlayWriter, ScoreMatcher, overlay_paths
from dfstream.sinks.overlay_draw import (
    FaceMark,
    Timeline,
    draw_faces,
    draw_watermark,
    score_color,
    strip_height,
)
from dfstream.sinks.overlay_encode import VideoEncoder
from dfstream.sources import parse_source
from dfstream.types import Frame, ScoreEvent
from tests.media import write_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
BOX = (10.0, 10.0, 50.0, 60.0)


# -- matching frames to window scores -------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "scores", "ended", "stream_done", "force", "expected"),
    [
        # the first window whose newest crop is at or after the frame
        (3, [(9, 0.2), (14, 0.7)], False, False, False, 0.2),
        (9, [(9, 0.2), (14, 0.7)], False, False, False, 0.2),
        (10, [(9, 0.2), (14, 0.7)], False, False, False, 0.7),
        # no window covers the frame yet: it waits ...
        (15, [(9, 0.2), (14, 0.7)], False, False, False, "wait"),
        # ... unless the track ended, the stream ended, or the buffer forces it out
        (15, [(9, 0.2), (14, 0.7)], True, False, False, 0.7),
        (15, [(9, 0.2), (14, 0.7)], False, True, False, 0.7),
        (15, [(9, 0.2), (14, 0.7)], False, False, True, 0.7),
        # a track that never got a window is drawn without a score once it is over
        (2, [], True, False, False, None),
        (2, [], False, False, False, "wait"),
    ],
)
def test_matcher_picks_the_window_that_contains_the_frame(
    frame: int,
    scores: list[tuple[int, float]],
    ended: bool,
    stream_done: bool,
    force: bool,
    expected: float | str | None,
) -> None:
    matcher = ScoreMatcher()
    for end, value in scores:
        matcher.add_score(7, end, value)
    if ended:
        matcher.end_track(7)
    matcher.stream_done = stream_done
    marks = matcher.resolve(frame, ((7, BOX),), force=force)
    if expected == "wait":
        assert marks is None
    else:
        assert marks == [FaceMark(7, BOX, expected)]  # type: ignore[arg-type]


def test_matcher_frame_without_faces_needs_no_score() -> None:
    assert ScoreMatcher().resolve(5, (), force=False) == []


def test_matcher_prune_keeps_what_later_frames_need() -> None:
    matcher = ScoreMatcher()
    for end, value in [(4, 0.1), (9, 0.2), (14, 0.3)]:
        matcher.add_score(0, end, value)
    matcher.prune(10)
    assert matcher.resolve(10, ((0, BOX),), force=False) == [FaceMark(0, BOX, 0.3)]
    matcher.prune(100)
    assert matcher.latest(0) == 0.3


def test_buffer_covers_the_longest_wait_unless_memory_caps_it() -> None:
    settings = OverlaySettings(
        window=20, stride=5, detect_every=5, max_misses=3, analysis_fps=None,
        threshold=0.5, untrained=False,
    )  # fmt: skip
    frames, covered = settings.buffer_frames(25.0, 640 * 480 * 3)
    assert covered and frames >= 20 + 5 + 4 * 5
    sparse = OverlaySettings(**{**settings.__dict__, "analysis_fps": 1.0})
    frames_sparse, covered_sparse = sparse.buffer_frames(25.0, 160 * 120 * 3)
    assert covered_sparse and frames_sparse == 25 * frames
    frames_4k, covered_4k = sparse.buffer_frames(25.0, 3840 * 2160 * 3)
    assert not covered_4k and frames_4k * 3840 * 2160 * 3 <= 512 * (1 << 20)


# -- drawing -----------------------------------------------------------------------------


def test_score_colour_runs_from_green_to_red() -> None:
    _, g, r = score_color(0.0)
    assert g > 150 and r < 80
    _, g, r = score_color(1.0)
    assert r > 150 and g < 80
    assert score_color(-3.0) == score_color(0.0) and score_color(9.0) == score_color(1.0)


def test_boxes_are_drawn_on_their_border_only() -> None:
    image = np.full((120, 160, 3), 100, dtype=np.uint8)
    draw_faces(image, [FaceMark(3, (40.0, 40.0, 100.0, 100.0), 0.9)])
    assert tuple(image[70, 40]) == score_color(0.9)  # left edge
    assert tuple(image[70, 70]) == (100, 100, 100)  # inside the box: untouched
    assert tuple(image[5, 150]) == (100, 100, 100)  # far away: untouched


def test_timeline_fills_columns_up_to_the_frame() -> None:
    image = np.full((120, 160, 3), 200, dtype=np.uint8)
    timeline = Timeline(160, total_frames=80)
    for index in range(40):
        timeline.add(index, 0.9)
    timeline.draw(image, threshold=0.5)
    band = image[120 - strip_height(120) :]
    assert (band[-3, 10] == score_color(0.9)).all()  # a scored column near the bottom
    assert band[-3, 140].max() < 100  # a future column: only darkened
    assert (image[: 120 - strip_height(120)] == 200).all()  # nothing above the strip


def test_watermark_marks_the_corner() -> None:
    image = np.full((240, 320, 3), 200, dtype=np.uint8)
    draw_watermark(image)
    assert (image[:10, :40] != 200).any() and (image[200:, 200:] == 200).all()


# -- files ---------------------------------------------------------------------------------


def test_overlay_paths_one_per_source() -> None:
    def paths(texts: list[str]) -> list[Path]:
        return overlay_paths(Path("o/out.mp4"), [parse_source(t) for t in texts])

    assert paths(["a.mp4"]) == [Path("o/out.mp4")]
    assert paths(["x/a.mp4", "y/a.mp4", "b.mkv"]) == [
        Path("o/out-a.mp4"),
        Path("o/out-a-1.mp4"),
        Path("o/out-b.mp4"),
    ]


def test_unwritable_overlay_path_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write there"):
        VideoEncoder.open(blocker / "out.mp4", source="x.mp4")
    with pytest.raises(OutputError, match="is a folder"):
        VideoEncoder.open(tmp_path, source="x.mp4")


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One CLI run on a 24-frame face clip with audio: overlay, report and JSONL."""
    tmp = tmp_path_factory.mktemp("overlay")
    clip = write_clip(tmp / "in.mp4", frames=24, size=(160, 120), pattern="face", audio=True)
    paths = {"clip": clip, "overlay": tmp / "out.mp4", "report": tmp / "report.json"}
    paths["jsonl"] = tmp / "events.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "dfstream", str(clip), "--untrained", "--detector", "none",
         "--window", "4", "--stride", "2", "--overlay", str(paths["overlay"]),
         "--report", str(paths["report"]), "--jsonl", str(paths["jsonl"]), "--no-dashboard"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return paths


def _video_pts(path: Path) -> list[int | None]:
    with av.open(str(path)) as container:
        return [f.pts for f in container.decode(video=0)]


def test_overlay_keeps_every_frame_and_timestamp(synthetic_run: dict[str, Path]) -> None:
    with av.open(str(synthetic_run["overlay"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert _video_pts(synthetic_run["overlay"]) == _video_pts(synthetic_run["clip"])


def test_overlay_copies_the_audio_track(synthetic_run: dict[str, Path]) -> None:
    with av.open(str(synthetic_run["clip"])) as source:
        source_packets = [p for p in source.demux(audio=0) if p.size]
    with av.open(str(synthetic_run["overlay"])) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
        packets = [p for p in container.demux(audio=0) if p.size]
    # every packet but the AAC priming one (negative time), bytes unchanged: a remux
    kept = [p for p in source_packets if p.pts is not None and p.pts >= 0]
    assert [bytes(p) for p in packets] == [bytes(p) for p in kept]


def test_every_overlay_frame_is_annotated(synthetic_run: dict[str, Path]) -> None:
    with av.open(str(synthetic_run["overlay"])) as out, av.open(str(synthetic_run["clip"])) as src:
        pairs = zip(out.decode(video=0), src.decode(video=0), strict=True)
        changed = [
            float(np.abs(a.to_ndarray(format="bgr24").astype(int) - b.to_ndarray(format="bgr24"))
                  .mean())
            for a, b in pairs
        ]  # fmt: skip
    # with --detector none the whole frame is the face: every frame gets a box, a label and
    # the timeline strip, far more change than compression noise
    assert min(changed) > 2.0


class _RecordingWriter(OverlayWriter):
    """An OverlayWriter that records what it would draw instead of encoding."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(None, source=parse_source("synthetic"), **kwargs)  # type: ignore[arg-type]
        self.drawn: list[tuple[int, list[FaceMark]]] = []

    def _begin(self, frame: Frame, timing: object) -> Timeline:  # type: ignore[override]
        return Timeline(16, total_frames=None)

    def _render(self, frame: Frame, marks: list[FaceMark], timeline: Timeline) -> None:
        self.drawn.append((frame.index, marks))

    def close(self) -> None:
        self.post("close")
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


def _frame(index: int) -> Frame:
    return Frame("s", index, index / 25, 0.0, np.zeros((8, 8, 3), dtype=np.uint8))


def test_writer_waits_for_scores_while_the_pipeline_keeps_going() -> None:
    """Frames 0..59 with face 0; windows end every 5 frames from frame 9, then the track ends
    at frame 49 and no window covers 45..49. With a 12-frame buffer the tap must wait for
    scores, which arrive from another thread, and nothing may deadlock."""
    settings = OverlaySettings(
        window=10, stride=5, detect_every=1, max_misses=0, analysis_fps=None, threshold=0.5,
        untrained=False, memory_budget_mb=1, max_wait_s=30.0,
    )  # fmt: skip
    writer = _RecordingWriter(settings=settings)
    writer._capacity = 12  # as small as the guarantee allows for T=10, stride 5
    writer.start()
    ends = list(range(9, 45, 5))  # 9, 14, ..., 44
    tapped = threading.Semaphore(0)

    def scores() -> None:  # the inference thread: a window is scored after its frames
        seen = -1
        for end in [*ends, 52]:
            while seen < end:
                tapped.acquire()
                seen += 1
            if end == 52:
                writer.post("track_end", 0)
            else:
                writer.post("score", _score_event(end, end / 100))
        writer.post("stream_end")

    producer = threading.Thread(target=scores)
    producer.start()
    for index in range(60):
        writer.tap(_frame(index), ((0, BOX),) if index < 50 else ())
        tapped.release()
    producer.join()
    writer.close()
    assert [i for i, _ in writer.drawn] == list(range(60))
    assert writer.forced == 0
    for index, marks in writer.drawn:
        if index >= 50:
            assert marks == []
            continue
        end = next((e for e in ends if e >= index), ends[-1])
        assert marks == [FaceMark(0, BOX, end / 100)], index


def _score_event(end: int, value: float) -> ScoreEvent:
    return ScoreEvent(
        stream_id="s", track_id=0, frame_index=end, media_time=end / 25, score=value,
        smoothed=value, box=BOX, latency_ms=1.0, wall_time=0.0, untrained=False,
    )  # fmt: skip


def test_writer_never_blocks_a_stopping_pipeline() -> None:
    settings = OverlaySettings(
        window=10, stride=5, detect_every=1, max_misses=0, analysis_fps=None, threshold=0.5,
        untrained=False, max_wait_s=30.0,
    )  # fmt: skip
    writer = _RecordingWriter(settings=settings, stopping=lambda: True)
    writer._capacity = 4
    writer.start()
    for index in range(20):  # no score ever comes; a stopping pipeline must not wait for one
        writer.tap(_frame(index), ((0, BOX),))
    writer.close()
    assert [i for i, _ in writer.drawn] == list(range(20))
    assert all(marks == [FaceMark(0, BOX, None)] for _, marks in writer.drawn)
