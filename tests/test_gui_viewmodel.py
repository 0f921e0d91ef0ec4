"""The desktop app without Tk: the view-model driven by real events and snapshots, settings and
recent sources on disk, the preview picture, and the session's error path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dfstream.gui.preview import fit_size, render_preview
from dfstream.gui.session import (
    EventArrived,
    Failed,
    Finished,
    Saved,
    Session,
    Started,
    save_outputs,
)
from dfstream.gui.settings import (
    MAX_RECENT,
    GuiSettings,
    RecentSources,
    analysis_config,
    load_settings,
    output_config,
    save_settings,
)
from dfstream.gui.viewmodel import ERROR_COLOURS, IDLE_COLOURS, VERDICT_COLOURS, ViewModel
from dfstream.pipeline.state import FaceSnapshot, StreamSnapshot
from dfstream.sinks.base import SinkFailure
from dfstream.sinks.overlay_draw import UNSCORED_COLOR, score_color
from dfstream.types import (
    Frame,
    ScoreEvent,
    StatusEvent,
    StreamSummary,
    TrackSummary,
    Verdict,
    VerdictEvent,
)


def _snap(stream: str, **changes: object) -> StreamSnapshot:
    fields: dict[str, object] = dict(
        stream_id=stream,
        source=stream,
        name=stream.rsplit("/", 1)[-1],
        live=False,
        state="connected",
        input_fps=25.0,
        media_duration_s=4.0,
        last_media_time=1.0,
        frames_decoded=25,
        frames_analyzed=25,
        crops_embedded=25,
        windows_scored=3,
        dropped=0,
        verdict=Verdict.NO_FACES,
        score=None,
        elapsed_s=2.0,
        latency_ms=None,
        error=None,
        faces=(),
    )
    fields.update(changes)
    return StreamSnapshot(**fields)  # type: ignore[arg-type]


def _score(stream: str, track: int, t: float, score: float) -> ScoreEvent:
    return ScoreEvent(stream, track, int(t * 25), t, score, score, (0, 0, 10, 10), 5.0, 0.0, True)


def _summary(stream: str, verdict: Verdict, score: float | None, error: str | None = None):  # type: ignore[no-untyped-def]
    tracks = () if error else (TrackSummary(1, 9, 0.7, 0.9, 0.2, 3.8),)
    return StreamSummary(
        stream,
        stream,
        stream.rsplit("/", 1)[-1],
        verdict,
        score,
        100,
        100,
        100,
        0 if error else 9,
        tracks,
        4.0,
        4.0,
        True,
        error=error,
    )


def test_a_run_from_ready_rows_to_whole_video_verdicts(tmp_path: Path) -> None:
    vm = ViewModel()
    assert vm.banner(None).title.startswith("Open")
    keys = vm.add_pending(["/v/a.mp4", "/v/missing.mp4"])
    assert [r.state for r in vm.rows()] == ["ready", "ready"]
    assert vm.pending_sources() == ["/v/a.mp4", "/v/missing.mp4"]
    ready = vm.banner(keys[0])
    assert (ready.title, ready.background) == ("READY", IDLE_COLOURS[0])

    vm.run_starting(1, threshold=0.6)
    assert vm.running and vm.pending_sources() == []
    assert vm.banner(keys[0]).title == "LOADING MODEL"
    vm.apply(Started(1, model="untrained (seed 0)", backend="torch fp32 on cpu", untrained=True))
    assert "untrained (seed 0)" in vm.status

    # The first snapshots replace the placeholders by the run's streams.
    vm.apply_snapshots(1, [_snap("/v/a.mp4"), _snap("/v/missing.mp4", state="starting")])
    rows = {r.name: r for r in vm.rows()}
    assert set(rows) == {"a.mp4", "missing.mp4"}
    a = rows["a.mp4"]
    assert (a.state, a.progress, a.progress_text, a.eta, a.fps) == (
        "analysing",
        0.25,
        "25%",
        "0:06",
        "12.5",
    )
    assert rows["missing.mp4"].state == "opening"

    key = a.key
    for i, (track, score) in enumerate([(1, 0.7), (2, 0.2), (1, 0.9)]):
        vm.apply(EventArrived(1, _score("/v/a.mp4", track, 1.0 + i, score)))
    vm.apply(EventArrived(1, VerdictEvent("/v/a.mp4", Verdict.FAKE, 0.8, 3.0, 0.0, True)))
    assert vm.series(key) == {1: ([1.0, 3.0], [0.7, 0.9]), 2: ([2.0], [0.2])}
    assert vm.threshold(key) == 0.6
    live = vm.banner(key)
    assert (live.title, live.background) == ("FAKE", VERDICT_COLOURS[Verdict.FAKE][0])
    assert "so far, score 0.80" in live.detail and "UNTRAINED" in live.detail

    failure = StatusEvent("", "sink_failed", "disk full", 0.0, sink="overlay")
    vm.apply(EventArrived(1, failure))
    assert vm.message == "output overlay failed: disk full" and vm.message_is_error

    run_dir = tmp_path / "run"
    missing_error = "/v/missing.mp4: no such file or folder; check the path"
    vm.apply(
        Finished(
            1,
            run_dir,
            (
                _summary("/v/a.mp4", Verdict.FAKE, 0.81),
                _summary("/v/missing.mp4", Verdict.NO_FACES, None, error=missing_error),
            ),
            (SinkFailure("overlay", "disk full"),),
            stopped=False,
        )
    )
    assert not vm.running
    rows = {r.name: r for r in vm.rows()}
    assert rows["a.mp4"].final and rows["a.mp4"].verdict == "FAKE 0.81"
    assert rows["a.mp4"].state == "done" and rows["a.mp4"].eta == ""
    final = vm.banner(key)
    assert final.title == "FAKE" and "whole video: score 0.81 over 9 windows" in final.detail
    error = vm.banner(rows["missing.mp4"].key)
    assert (error.title, error.background) == ("ERROR", ERROR_COLOURS[0])
    assert missing_error in error.detail
    assert rows["missing.mp4"].state == "failed" and rows["missing.mp4"].error == missing_error
    assert vm.message == "output overlay failed: disk full"
    assert vm.saveable(key) == (1, run_dir)
    vm.apply(Saved(1, tmp_path / "saved", ("report.json", "scores.jsonl")))
    assert vm.message == f"Saved report.json, scores.jsonl to {tmp_path / 'saved'}"


def test_a_run_that_cannot_start_gives_its_sources_back() -> None:
    vm = ViewModel()
    (key,) = vm.add_pending(["/v/a.mp4"])
    vm.run_starting(1, threshold=0.5)
    vm.apply(Failed(1, "no model given: pass --weights PATH"))
    assert not vm.running
    assert vm.message == "no model given: pass --weights PATH" and vm.message_is_error
    assert vm.pending_sources() == ["/v/a.mp4"] and vm.row(key) is not None
    assert vm.saveable(key) is None
    vm.run_starting(2, threshold=0.5)  # Start again: the same source, a new run
    assert vm.running and vm.pending_sources() == []


def test_stop_and_live_sources() -> None:
    vm = ViewModel()
    vm.add_pending(["rtsp://cam/1", "/v/long.mp4"])
    vm.run_starting(3, threshold=0.5)
    vm.apply_snapshots(
        3,
        [
            _snap(
                "rtsp://cam/1",
                live=True,
                media_duration_s=None,
                last_media_time=12.34,
                dropped=7,
                verdict=Verdict.REAL,
                score=0.1,
            ),
            _snap("/v/long.mp4", verdict=Verdict.UNCERTAIN, score=0.5),
        ],
    )
    cam, long = vm.rows()
    assert (cam.progress, cam.progress_text, cam.drops, cam.verdict) == (
        None,
        "12.3 s",
        "7",
        "REAL 0.10",
    )
    vm.apply(EventArrived(3, StatusEvent("rtsp://cam/1", "ended", "stopped", 0.0)))
    assert vm.row(cam.key).state == "stopped"  # type: ignore[union-attr]
    vm.apply(EventArrived(3, _summary("rtsp://cam/1", Verdict.REAL, 0.1)))
    after = vm.row(cam.key)
    assert after is not None and (after.state, after.final, after.verdict) == (
        "stopped",
        True,
        "REAL 0.10",
    )
    vm.apply(Finished(3, Path("/tmp/r"), (), (), stopped=True))
    assert vm.row(long.key).state == "stopped"  # type: ignore[union-attr]
    assert vm.row(long.key).eta == ""  # type: ignore[union-attr]
    banner = vm.banner(long.key)
    assert banner.title == "UNCERTAIN" and "when stopped, score 0.50" in banner.detail
    assert banner.background == VERDICT_COLOURS[Verdict.UNCERTAIN][0]
    assert vm.message is not None and vm.message.startswith("Stopped")


def test_a_video_without_faces_says_so() -> None:
    vm = ViewModel()
    vm.add_pending(["/v/empty.mp4"])
    vm.run_starting(1, threshold=0.5)
    vm.apply(
        Finished(
            1,
            Path("/tmp/r"),
            (_summary("/v/empty.mp4", Verdict.NO_FACES, None),),
            (),
            stopped=False,
        )
    )
    (row,) = vm.rows()
    banner = vm.banner(row.key)
    assert (banner.title, banner.background) == ("NO FACES", VERDICT_COLOURS[Verdict.NO_FACES][0])
    assert "no face was scored" in banner.detail
    assert row.verdict == "NO FACES" and row.state == "done"


def test_stop_while_the_model_loads_keeps_the_sources_ready() -> None:
    vm = ViewModel()
    vm.add_pending(["/v/a.mp4"])
    vm.run_starting(1, threshold=0.5)
    vm.apply(Finished(1, Path("/tmp/r"), (), (), stopped=True))
    assert [r.state for r in vm.rows()] == ["ready"] and vm.pending_sources() == ["/v/a.mp4"]


def test_face_scores_come_from_the_snapshot() -> None:
    vm = ViewModel()
    vm.add_pending(["/v/a.mp4"])
    vm.run_starting(1, threshold=0.5)
    face = FaceSnapshot(4, 0.75, (1, 1, 5, 5), (0.7, 0.8), True)
    vm.apply_snapshots(1, [_snap("/v/a.mp4", faces=(face,))])
    (row,) = vm.rows()
    assert vm.face_scores(row.key) == {4: 0.75}
    assert vm.stream_of(row.key) == (1, "/v/a.mp4")


def test_settings_round_trip_and_bad_files(tmp_path: Path) -> None:
    assert load_settings(tmp_path) == GuiSettings()  # nothing saved yet
    chosen = GuiSettings(
        model="checkpoint",
        checkpoint=tmp_path / "m.pt",
        threshold=0.7,
        detector="haar",
        overlay=False,
    )
    save_settings(tmp_path / "cfg", chosen)
    assert load_settings(tmp_path / "cfg") == chosen
    (tmp_path / "cfg" / "gui.json").write_text("{not json")
    assert load_settings(tmp_path / "cfg") == GuiSettings()
    (tmp_path / "cfg" / "gui.json").write_text(json.dumps({"threshold": 7}))
    assert load_settings(tmp_path / "cfg") == GuiSettings()
    with pytest.raises(ValueError, match="threshold"):
        GuiSettings(threshold=1.5)
    with pytest.raises(ValueError, match="no file"):
        GuiSettings(model="checkpoint")


def test_settings_become_the_clis_configs(tmp_path: Path) -> None:
    default = analysis_config(GuiSettings(), ("a.mp4",))
    assert (default.weights, default.untrained, default.sources) == (None, False, ("a.mp4",))
    ckpt = analysis_config(GuiSettings().with_model("checkpoint", tmp_path / "m.pt"), ())
    assert ckpt.weights == tmp_path / "m.pt" and not ckpt.untrained
    untrained = analysis_config(GuiSettings(model="untrained", threshold=0.3, detector="none"), ())
    assert untrained.untrained and untrained.threshold == 0.3 and untrained.detector == "none"
    outputs = output_config(GuiSettings(), tmp_path)
    assert (outputs.jsonl, outputs.report, outputs.overlay) == (
        str(tmp_path / "scores.jsonl"),
        tmp_path / "report.json",
        tmp_path / "overlay.mp4",
    )
    assert output_config(GuiSettings(overlay=False), tmp_path).overlay is None


def test_recent_sources_newest_first_without_credentials(tmp_path: Path) -> None:
    recent = RecentSources.load(tmp_path)
    assert recent.items == []
    recent.add(["a.mp4", "b.mp4"])
    recent.add(["rtsp://user:secret@cam/1", "c.mp4", "a.mp4"])
    assert recent.items == ["c.mp4", "a.mp4", "b.mp4"]
    recent.add([f"{i}.mp4" for i in range(20)])
    assert len(recent.items) == MAX_RECENT
    recent.save()
    assert RecentSources.load(tmp_path).items == recent.items
    assert "secret" not in (tmp_path / "recent.json").read_text()


def test_preview_is_downscaled_with_score_coloured_boxes() -> None:
    image = np.full((480, 640, 3), 30, dtype=np.uint8)
    frame = Frame("s", 0, 0.0, 0.0, image)
    tracks = ((1, (100.0, 100.0, 300.0, 300.0)), (2, (400.0, 100.0, 600.0, 300.0)))
    width, height, data = render_preview(frame, tracks, {1: 0.9}, max_size=(320, 320))
    assert (width, height) == (320, 240) == fit_size(640, 480, 320, 320)
    header = f"P6 {width} {height} 255\n".encode()
    assert data.startswith(header)
    rgb = np.frombuffer(data[len(header) :], np.uint8).reshape(height, width, 3)
    # Left edge of each box, mid-height (boxes scaled by 0.5): red for 0.9, grey unscored.
    assert tuple(rgb[100, 50]) == tuple(reversed(score_color(0.9)))
    assert tuple(rgb[100, 200]) == tuple(reversed(UNSCORED_COLOR))
    assert (image == 30).all(), "the shared frame must not be drawn on"


def test_save_outputs_copies_into_a_new_folder(tmp_path: Path) -> None:
    run = tmp_path / "20250101-120000"
    run.mkdir()
    for name in ("scores.jsonl", "report.json", "report.png", "overlay.mp4"):
        (run / name).write_text(name)
    (run / "empty.mp4").write_bytes(b"")
    first, names = save_outputs(run, tmp_path / "out")
    assert first == tmp_path / "out" / "dfstream-20250101-120000"
    assert names == ["overlay.mp4", "report.json", "report.png", "scores.jsonl"]
    assert (first / "report.json").read_text() == "report.json"
    second, _ = save_outputs(run, tmp_path / "out")
    assert second != first and second.is_dir()


def test_session_reports_a_bad_checkpoint_as_one_message(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    session = Session(cache_dir=tmp_path / "cache")
    settings = GuiSettings(model="checkpoint", checkpoint=bad)
    run_id = session.start([str(tmp_path / "a.mp4")], settings)
    assert session.close(timeout=60)
    message = session.messages.get(timeout=1)
    assert isinstance(message, Failed) and message.run_id == run_id
    assert str(bad) in message.message and "\n" not in message.message
    assert not session.busy
    run_dirs = list((tmp_path / "cache" / "runs").iterdir())
    assert len(run_dirs) == 1


def test_rows_follow_the_sources_order_whatever_event_comes_first() -> None:
    vm = ViewModel()
    vm.add_pending(["/v/first.mp4", "/v/second.mp4"])
    vm.run_starting(1, threshold=0.5)
    vm.apply(EventArrived(1, _score("/v/second.mp4", 1, 0.5, 0.4)))  # before any snapshot
    vm.apply_snapshots(1, [_snap("/v/first.mp4"), _snap("/v/second.mp4")])
    vm.add_pending(["/v/later.mp4"])
    assert [r.name for r in vm.rows()] == ["first.mp4", "second.mp4", "later.mp4"]
    assert [r.key for r in vm.rows()] == vm.keys()
