"""The sink contract: a failing sink is isolated, threaded sinks drain, frames reach frame sinks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from dfstream.api import Analysis
from dfstream.cli.analyze import exit_code_for
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.errors import ExitCode
from dfstream.sinks.base import FrameSink, Sink, SinkFailed, SinkGroup, ThreadedSink
from dfstream.types import Event, Frame, ScoreEvent, StatusEvent, StreamSummary, TrackBoxes

REPO = Path(__file__).resolve().parents[1]


class RaisesOnThird(Sink):
    """A network-like sink whose connection drops at its third event."""

    name = "flaky"

    def __init__(self) -> None:
        self.seen = 0
        self.closed = False

    def handle(self, event: Event) -> None:
        self.seen += 1
        if self.seen == 3:
            raise ConnectionError("connection reset by peer")

    def close(self) -> None:
        self.closed = True


class Collect(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


def _config(clip: Path, **changes: object) -> AnalysisConfig:
    base: dict[str, object] = {
        "sources": (str(clip),),
        "untrained": True,
        "detector": "none",
        "window": 4,
        "stride": 2,
        "batch": 8,
        "backend": "torch",
        "device": "cpu",
        "precision": "fp32",
    }
    base.update(changes)
    return AnalysisConfig(**base)  # type: ignore[arg-type]


def test_a_sink_failing_on_its_third_event_is_isolated(clip_path: Path, tmp_path: Path) -> None:
    flaky, collect = RaisesOnThird(), Collect()
    outputs = OutputConfig(
        jsonl=str(tmp_path / "events.jsonl"),
        report=tmp_path / "report.json",
        overlay=tmp_path / "overlay.mp4",
    )
    result = Analysis(_config(clip_path), outputs=outputs, sinks=[flaky, collect]).run()
    # The run completed and says which output failed, and how.
    (summary,) = result.summaries
    assert summary.error is None and summary.frames_decoded == 30
    (failure,) = result.sink_failures
    assert failure.sink == "flaky" and "ConnectionError: connection reset by peer" in failure.reason
    assert flaky.seen == 3 and flaky.closed
    assert exit_code_for(result, interrupted=False, fail_on_fake=False) == ExitCode.OUTPUT
    # Every other output is complete and valid.
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    failed = [e for e in events if e["type"] == "status" and e["state"] == "sink_failed"]
    assert failed == [
        {
            "type": "status",
            "stream": None,
            "state": "sink_failed",
            "reason": failure.reason,
            "wall_time": failed[0]["wall_time"],
            "sink": "flaky",
        }
    ]
    assert [e["type"] for e in events].count("summary") == 1
    scores = [e for e in events if e["type"] == "score"]
    assert len(scores) == summary.windows_scored > 0
    assert sum(isinstance(e, ScoreEvent) for e in collect.events) == len(scores)
    assert any(isinstance(e, StatusEvent) and e.sink == "flaky" for e in collect.events)
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.png").stat().st_size > 0
    (source,) = report["sources"]
    assert sum(t["windows"] for t in source["tracks"]) == len(scores)
    assert [f["sink"] for f in report["output_failures"]] == ["flaky"]
    with av.open(str(tmp_path / "overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 30


def test_jsonl_write_failure_exits_6_and_other_outputs_are_finalised(
    clip_path: Path, tmp_path: Path
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to make writes fail")
    proc = subprocess.run(
        [sys.executable, "-m", "dfstream", str(clip_path), "--untrained", "--detector", "none",
         "--window", "4", "--no-dashboard", "--jsonl", "/dev/full",
         "--report", str(tmp_path / "r.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    assert "dfstream: error: output jsonl failed: --jsonl /dev/full: writing failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sources"][0]["timings"]["frames_decoded"] == 30


@pytest.mark.parametrize(
    ("interrupted", "outputs_failed", "fake", "fail_on_fake", "source_error", "expected"),
    [
        (False, False, False, False, False, ExitCode.OK),
        (False, False, True, False, False, ExitCode.OK),
        (False, False, True, True, False, ExitCode.FAKE),
        (False, False, False, False, True, ExitCode.SOURCE),
        (False, True, True, True, True, ExitCode.OUTPUT),
        (True, True, True, True, True, ExitCode.INTERRUPTED),
    ],
)
def test_exit_code_order(
    interrupted: bool,
    outputs_failed: bool,
    fake: bool,
    fail_on_fake: bool,
    source_error: bool,
    expected: ExitCode,
) -> None:
    from dfstream.api import RunResult
    from dfstream.sinks.base import SinkFailure
    from dfstream.types import Verdict

    summary = StreamSummary(
        stream_id="s", source="s", name="s", verdict=Verdict.FAKE if fake else Verdict.REAL,
        score=0.5,
        frames_decoded=1, frames_analyzed=1, crops_embedded=1, windows_scored=1, tracks=(),
        duration_s=1.0, media_duration_s=1.0, untrained=False,
        error="s: broken" if source_error else None,
    )  # fmt: skip
    failures = (SinkFailure("jsonl", "disk full"),) if outputs_failed else ()
    result = RunResult(summaries=(summary,), sink_failures=failures, stopped=interrupted)
    code = exit_code_for(result, interrupted=interrupted, fail_on_fake=fail_on_fake)
    assert code == expected


class SlowThreaded(ThreadedSink):
    name = "slow"

    def __init__(self, *, fail_at: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.processed: list[int] = []
        self.finished = False
        self.fail_at = fail_at

    def process(self, event: Event) -> None:
        time.sleep(0.01)
        assert isinstance(event, StatusEvent)
        if self.fail_at is not None and int(event.reason) == self.fail_at:
            raise OSError("endpoint unreachable")
        self.processed.append(int(event.reason))

    def finish(self) -> None:
        self.finished = True


def _status(i: int) -> StatusEvent:
    return StatusEvent("s", "connected", str(i), 0.0)


def test_threaded_sink_drains_in_order_on_close_and_never_blocks() -> None:
    sink = SlowThreaded(maxsize=100)
    sink.start()
    started = time.perf_counter()
    for i in range(20):
        sink.handle(_status(i))
    assert time.perf_counter() - started < 0.15  # handle only queues
    sink.close()
    assert sink.processed == list(range(20)) and sink.finished and sink.dropped == 0


def test_threaded_sink_drops_oldest_when_behind() -> None:
    sink = SlowThreaded(maxsize=4)
    sink.start()
    for i in range(40):
        sink.handle(_status(i))
    sink.close()
    assert sink.dropped > 0
    assert sink.processed[-1] == 39 and len(sink.processed) + sink.dropped == 40


def test_threaded_sink_error_surfaces_and_group_isolates_it() -> None:
    failing, collect = SlowThreaded(maxsize=100, fail_at=2), Collect()
    failing.start()
    group = SinkGroup([failing, collect])
    for i in range(5):
        group.handle(_status(i))
    deadline = time.monotonic() + 5
    while failing.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    group.handle(_status(5))  # the worker's error is raised here: the group drops the sink
    group.close()
    (failure,) = group.failures
    assert failure.sink == "slow" and "OSError: endpoint unreachable" in failure.reason
    kinds = [(e.state, getattr(e, "sink", None)) for e in collect.events]
    assert ("sink_failed", "slow") in kinds
    assert sum(1 for state, _ in kinds if state == "connected") == 6  # collect saw every event
    with pytest.raises(SinkFailed):
        failing.handle(_status(9))


class FrameCounter(Sink):
    name = "frames"

    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list[int] = []
        self.track_ends: list[tuple[str, int]] = []
        self.fail_after = fail_after
        self.lock = threading.Lock()

    def on_frame(self, frame: Frame, tracks: TrackBoxes) -> None:
        with self.lock:
            if self.fail_after is not None and len(self.frames) >= self.fail_after:
                raise RuntimeError("preview window closed")
            self.frames.append(frame.index)

    def on_track_end(self, stream_id: str, track_id: int) -> None:
        self.track_ends.append((stream_id, track_id))


def test_frame_sinks_get_every_frame_and_a_failing_one_is_isolated(clip_path: Path) -> None:
    counter, failing = FrameCounter(), FrameCounter(fail_after=5)
    assert isinstance(counter, FrameSink)
    result = Analysis(_config(clip_path), sinks=[counter, failing]).run()
    assert counter.frames == list(range(30))
    assert [f.sink for f in result.sink_failures] == ["frames"]
    assert failing.frames == list(range(5))
