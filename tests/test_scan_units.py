"""The parts of ``dfstream scan`` that need no model: inputs, placement rules, the resumable
output and the scheduler's retry rules (with a scripted executor)."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from dfstream.cluster.placement import PlaceRule, parse_rule, placement_for
from dfstream.errors import SourceError, UsageError
from dfstream.scan.executor import Executor, Finished, Lost, Outcome
from dfstream.scan.inputs import collect
from dfstream.scan.results import RESULTS_NAME, ScanResults, read_results
from dfstream.scan.schedule import Done, Failed, Report, Scheduler
from dfstream.scan.worker import Job, JobResult


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_collect_expands_folders_globs_and_lists_each_video_once(tmp_path: Path) -> None:
    x = _touch(tmp_path / "a" / "b" / "x.mp4")
    y = _touch(tmp_path / "a" / "y.MOV")
    _touch(tmp_path / "a" / "notes.txt")  # not a video: a folder does not list it
    z = _touch(tmp_path / "c" / "z.mkv")
    (tmp_path / "list.txt").write_text(f"# archive\na/y.MOV\n\n{z}  # absolute\nmissing.mp4\n")
    (tmp_path / "list.csv").write_text("label,Video\nreal,a/b/x.mp4\nfake,c/z.mkv\n")
    (tmp_path / "empty").mkdir()
    inputs = collect(
        [
            str(tmp_path / "a"),
            str(tmp_path / "list.txt"),
            str(tmp_path / "list.csv"),
            str(tmp_path / "**" / "*.mp4"),
            str(x),
            str(tmp_path / "empty"),
            str(tmp_path / "*.webm"),
        ]
    )
    assert [v.key for v in inputs.videos] == [str(x), str(y), str(z)]
    assert inputs.missing == [str(tmp_path / "missing.mp4")]
    assert len(inputs.notes) == 2 and all("no video found" in n for n in inputs.notes)


def test_collect_csv_without_a_path_header_uses_the_first_column(tmp_path: Path) -> None:
    v = _touch(tmp_path / "v.mp4")
    (tmp_path / "plain.csv").write_text("v.mp4,REAL\n")
    assert [x.key for x in collect([str(tmp_path / "plain.csv")]).videos] == [str(v)]


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        (["rtsp://cam/1"], UsageError, "scan analyses video files"),
        (["{empty}"], SourceError, "no videos to scan"),
        (["{empty}/*.mp4"], SourceError, "no videos to scan"),
    ],
)
def test_collect_refuses_streams_and_nothing(
    tmp_path: Path, items: list[str], error: type[Exception], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=message):
        collect([item.format(empty=tmp_path / "empty") for item in items])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*=label:site=a", PlaceRule("*", "label", "site", "a")),
        ("10.1.=prefer:zone=edge", PlaceRule("10.1.", "prefer", "zone", "edge")),
        ("cam=resource:gpu-site:0.5", PlaceRule("cam", "resource", "gpu-site", amount=0.5)),
        ("rtsp://h/s?x=1=label:k=v", PlaceRule("rtsp://h/s?x=1", "label", "k", "v")),
        ("*=label:site", UsageError),
        ("*=resource:", UsageError),
        ("*=resource:r:-1", UsageError),
        ("site=a", UsageError),
        ("*=near:site=a", UsageError),
    ],
)
def test_place_rules_parse(text: str, expected: PlaceRule | type[Exception]) -> None:
    if isinstance(expected, PlaceRule):
        assert parse_rule(text) == expected
    else:
        with pytest.raises(expected, match="--ray-place"):
            parse_rule(text)


def test_first_matching_place_rule_wins() -> None:
    rules = (parse_rule("lobby=label:site=hq"), parse_rule("*=prefer:site=edge"))
    assert placement_for("rtsp://10.0.0.5/lobby", rules) == rules[0]
    assert placement_for("rtsp://10.0.0.6/dock", rules) == rules[1]
    assert placement_for("x", ()) is None


def _result(video: str, worker: str = "w", error: str | None = None) -> JobResult:
    summary = None if error else {"type": "summary", "verdict": "REAL", "crops_embedded": 3}
    return JobResult(video, worker, summary, (), error, 0.5)


def test_results_resume_keeps_complete_blocks_and_cuts_a_partial_one(tmp_path: Path) -> None:
    results = ScanResults.open(tmp_path)
    results.write_start({"executor": "test"})
    events = ({"type": "score", "stream": "s", "score": 0.1},)
    results.write_done(Done(JobResult("/v/a.mp4", "w1", {"type": "summary"}, events, None, 1.0), 1))
    results.write_failed(Failed("/v/b.mp4", ("broken", "broken"), ("w1", "w2")))
    results.close()
    path = tmp_path / RESULTS_NAME
    complete = path.stat().st_size
    with path.open("a") as fh:  # a scan killed while writing c.mp4's block
        fh.write(json.dumps({"type": "score", "video": "/v/c.mp4"}) + "\n")
        fh.write('{"type":"summary","video":"/v/c.m')
    again = ScanResults.open(tmp_path)
    assert path.stat().st_size == complete
    assert again.done == {"/v/a.mp4"} and again.previous_failures == {"/v/b.mp4"}
    again.write_done(Done(_result("/v/b.mp4"), 1))  # a rerun succeeds where the first failed
    report = again.finish({"executor": "test"})
    again.close()
    assert (report["videos"], report["done"], report["failed"]) == (2, 2, 0)
    lines, _ = read_results(path)
    scores = [line for line in lines if line["type"] == "score"]
    assert scores == [{"type": "score", "stream": "/v/a.mp4", "score": 0.1, "video": "/v/a.mp4"}]
    rows = (tmp_path / "verdicts.csv").read_text().splitlines()
    assert rows[0].startswith("video,status,verdict") and len(rows) == 3


class ScriptedExecutor(Executor):
    """Workers that follow a script: ``fails[worker]`` = videos that fail there, ``dies`` =
    (worker, video) pairs where the worker dies holding the video (it is then replaced)."""

    description = "scripted"

    def __init__(
        self, workers: list[str], *, fails: dict[str, set[str]], dies: set[tuple[str, str]]
    ):
        self.workers = {w: None for w in workers}  # name -> job
        self.fails, self.dies = fails, dies
        self.events: deque[Outcome] = deque()
        self.log: list[tuple[str, str]] = []
        self._spare = 0

    def idle(self) -> list[str]:
        return [w for w, job in self.workers.items() if job is None]

    def alive(self) -> int:
        return len(self.workers)

    def submit(self, worker: str, job: Job) -> None:
        self.log.append((worker, job.video))
        if (worker, job.video) in self.dies:
            del self.workers[worker]
            self._spare += 1
            self.workers[f"spare-{self._spare}"] = None
            self.events.append(Lost(worker, job, f"{worker} died"))
            return
        self.workers[worker] = job
        error = (
            f"{job.video} broken on {worker}" if job.video in self.fails.get(worker, ()) else None
        )
        self.events.append(Finished(worker, job, _result(job.video, worker, error)))

    def wait(self, timeout: float) -> list[Outcome]:
        out = list(self.events)
        self.events.clear()
        for outcome in out:
            if isinstance(outcome, Finished):
                self.workers[outcome.worker] = None
        return out

    def close(self) -> None:
        pass


def _run(executor: ScriptedExecutor, videos: list[str]) -> list[Report]:
    reports: list[Report] = []
    lost: list[str] = []
    scheduler = Scheduler(
        videos, executor, report=reports.append, on_lost=lambda w, r: lost.append(w)
    )
    assert scheduler.run(poll_s=0.0)
    return reports


def test_a_failed_video_is_retried_on_another_worker_then_reported() -> None:
    executor = ScriptedExecutor(["w1", "w2"], fails={"w1": {"bad"}, "w2": {"bad"}}, dies=set())
    reports = _run(executor, ["bad", "a", "b"])
    failed = [r for r in reports if isinstance(r, Failed)]
    assert [f.video for f in failed] == ["bad"] and len(reports) == 3
    assert failed[0].workers == ("w1", "w2"), "the retry must run on the other worker"
    assert failed[0].reasons == ("bad broken on w1", "bad broken on w2")


def test_a_video_that_fails_once_is_done_on_the_retry() -> None:
    executor = ScriptedExecutor(["w1", "w2"], fails={"w1": {"flaky"}}, dies=set())
    reports = _run(executor, ["flaky"])
    assert isinstance(reports[0], Done) and reports[0].attempts == 2
    assert reports[0].result.worker == "w2"


def test_a_lost_worker_has_its_video_retried_elsewhere_exactly_once() -> None:
    executor = ScriptedExecutor(["w1", "w2"], fails={}, dies={("w1", "v0")})
    videos = [f"v{i}" for i in range(6)]
    reports = _run(executor, videos)
    assert sorted(r.result.video for r in reports if isinstance(r, Done)) == videos
    ran = [video for _, video in executor.log]
    assert ran.count("v0") == 2 and all(ran.count(v) == 1 for v in videos[1:])
    assert ("w1", "v0") in executor.log and [w for w, v in executor.log if v == "v0"][1] != "w1"


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Scheduler([], ScriptedExecutor([], fails={}, dies=set()), report=print, attempts=0)
