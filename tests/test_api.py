"""The library API: build, start, watch, add and remove sources, stop from another thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import dfstream
from dfstream.tools.benchkit import paced_opener
from tests.media import write_clip


def _config(*sources: Path) -> dfstream.AnalysisConfig:
    return dfstream.AnalysisConfig(
        sources=tuple(str(s) for s in sources),
        untrained=True,
        detector="none",
        window=3,
        stride=1,
        batch=4,
        backend="torch",
        device="cpu",
        precision="fp32",
    )


def _wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_add_and_remove_a_source_while_running_then_stop_from_another_thread(
    tmp_path: Path,
) -> None:
    # 40 s each, played in real time: still running when stopped, even on a loaded machine.
    first = write_clip(tmp_path / "first.mp4", frames=1000, size=(64, 48))
    second = write_clip(tmp_path / "second.mp4", frames=1000, size=(64, 48))
    events: list[dfstream.Event] = []
    lock = threading.Lock()

    def on_event(event: dfstream.Event) -> None:
        with lock:
            events.append(event)

    def scored(stream: str) -> int:
        with lock:
            return sum(isinstance(e, dfstream.ScoreEvent) and e.stream_id == stream for e in events)

    run = dfstream.Analysis(
        _config(first), on_event=on_event, opener=paced_opener(), persistent=True
    )
    run.start()
    assert run.running
    _wait_for(lambda: scored(str(first)) >= 3)
    (added,) = run.add_source(str(second))
    assert added == str(second)
    _wait_for(lambda: scored(added) >= 3)
    assert {s.stream_id for s in run.snapshots()} == {str(first), added}
    run.remove_source(added)
    _wait_for(lambda: any(isinstance(e, dfstream.StreamSummary) and e.stream_id == added
                          for e in list(events)))  # fmt: skip
    assert run.running  # persistent: the run goes on with the first source
    stopper = threading.Thread(target=run.stop)
    stopper.start()
    result = run.join(timeout=30)
    stopper.join()
    assert not run.running and result.stopped and not result.sink_failures
    by_stream = {s.stream_id: s for s in result.summaries}
    assert list(by_stream) == [str(first), added]
    for summary in result.summaries:
        assert summary.error is None and 0 < summary.frames_decoded < 1000
        assert summary.windows_scored == scored(summary.stream_id)
    ends = {
        e.stream_id: e.reason
        for e in events
        if isinstance(e, dfstream.StatusEvent) and e.state == "ended"
    }
    assert ends == {added: "removed", str(first): "stopped"}
    # Each stream's events are in order: connected, scores, ended, summary.
    for stream in (str(first), added):
        kinds = [type(e).__name__ for e in events if getattr(e, "stream_id", None) == stream]
        assert kinds[0] == "StatusEvent" and kinds[-1] == "StreamSummary"
        assert kinds.index("ScoreEvent") < len(kinds) - 2


def test_events_iterator_ends_with_the_run(clip_path: Path) -> None:
    with dfstream.Analysis(_config(clip_path)) as run:
        stream = run.events()
        run.start()
        kinds = [type(e).__name__ for e in stream]
    assert kinds.count("StreamSummary") == 1 and kinds[-1] == "BatchStatsEvent"
    assert kinds.count("ScoreEvent") == run.result.summaries[0].windows_scored == 28


def test_api_errors_are_dfstream_errors(tmp_path: Path, clip_path: Path) -> None:
    missing = tmp_path / "no-default.pt"  # the shipped model may be installed: point past it
    with pytest.raises(dfstream.WeightsError, match="no model given"):
        dfstream.Analysis(
            dfstream.AnalysisConfig(sources=(str(clip_path),), default_weights=missing)
        )
    with pytest.raises(dfstream.OutputError, match="--report"):
        (tmp_path / "file").write_text("x")
        dfstream.Analysis(
            _config(clip_path), outputs=dfstream.OutputConfig(report=tmp_path / "file" / "r.json")
        )
    run = dfstream.Analysis(_config(clip_path))
    with pytest.raises(dfstream.UsageError, match="no source with stream id"):
        run.remove_source("nope")
    result = run.run()
    assert result.summaries[0].windows_scored == 28
    with pytest.raises(RuntimeError, match="already called"):
        run.start()


def test_a_missing_source_added_later_fails_alone(tmp_path: Path, clip_path: Path) -> None:
    run = dfstream.Analysis(_config(clip_path), persistent=True).start()
    run.add_source(str(tmp_path / "missing.mp4"))
    _wait_for(lambda: all(s.state in ("ended", "failed") for s in run.snapshots()))
    run.stop()
    good, bad = run.join(timeout=30).summaries
    assert good.error is None and bad.error is not None and "missing.mp4" in bad.error
