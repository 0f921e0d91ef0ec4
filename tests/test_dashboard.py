"""The live dashboard: rendered into a StringIO console, chosen only for terminals, and seen in
a real terminal (tmux) during a run."""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from dfstream.pipeline.state import FaceSnapshot, StreamSnapshot, StreamState
from dfstream.sinks.console import ProgressLog
from dfstream.sinks.dashboard import Dashboard, DashboardView, format_eta, live_view, sparkline
from dfstream.types import Verdict
from tests.media import write_clip

REPO_ROOT = Path(__file__).resolve().parents[1]


def _snapshot(**overrides: object) -> StreamSnapshot:
    fields: dict[str, object] = {
        "stream_id": "rtsp://admin:hunter2@cam.local/live",
        "source": "rtsp://admin:hunter2@cam.local/live",
        "name": "rtsp://admin:hunter2@cam.local/live",
        "live": True,
        "state": "connected",
        "input_fps": 25.0,
        "media_duration_s": None,
        "last_media_time": 12.0,
        "frames_decoded": 300,
        "frames_analyzed": 150,
        "crops_embedded": 150,
        "windows_scored": 20,
        "dropped": 7,
        "verdict": Verdict.FAKE,
        "score": 0.734,
        "elapsed_s": 12.0,
        "latency_ms": (85.0, 140.0),
        "error": None,
        "faces": (
            FaceSnapshot(0, 0.734, (1.0, 2.0, 30.0, 40.0), (0.2, 0.5, 0.7, 0.9, 0.8), True),
            FaceSnapshot(1, 0.12, (50.0, 2.0, 80.0, 40.0), (0.1, 0.15), False),
        ),
    }
    fields.update(overrides)
    return StreamSnapshot(**fields)  # type: ignore[arg-type]


def _render(board: Dashboard, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(board)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_dashboard_shows_stream_scores_verdicts_and_hides_credentials() -> None:
    snaps = [_snapshot()]
    text = _render(Dashboard(lambda: snaps, backend="torch fp32 on cpu", untrained=True))
    assert "cam.local/live" in text and "hunter2" not in text and "***@" in text
    assert "0.734" in text and "0.120" in text  # per-face smoothed scores
    assert "FAKE" in text and "REAL" in text  # stream verdict, per-face verdicts
    assert "torch fp32 on cpu" in text and "UNTRAINED" in text
    assert "85/140" in text  # latency p50/p95
    assert "(gone)" in text  # a face that left the picture
    assert sparkline((0.2, 0.5, 0.7, 0.9, 0.8)).plain in text  # recent window scores


def test_dashboard_progress_bar_and_eta_for_files() -> None:
    snap = _snapshot(
        stream_id="clip.mp4", source="videos/clip.mp4", name="clip.mp4", live=False,
        media_duration_s=20.0, last_media_time=5.0, elapsed_s=3.0, verdict=Verdict.REAL, faces=(),
    )  # fmt: skip
    text = _render(Dashboard(lambda: [snap], backend="torch", untrained=False))
    assert "clip.mp4" in text and "25%" in text and "ETA 0:09" in text
    assert "UNTRAINED" not in text and "REAL" in text


def test_dashboard_reads_live_state_snapshots() -> None:
    state = StreamState(stream_id="a.mp4", source="a.mp4", name="a.mp4")
    state.record_score(3, 0.61, 0.58, (0.0, 0.0, 10.0, 10.0))
    state.verdict = Verdict.UNCERTAIN
    text = _render(Dashboard(lambda: [state.snapshot()], backend="torch", untrained=False))
    assert "a.mp4" in text and "#3" in text and "0.580" in text and "UNCERTAIN" in text


def test_sparkline_and_eta_formatting() -> None:
    assert sparkline([0.0, 0.5, 1.0]).plain == "▁▅█"
    assert len(sparkline([0.3] * 100, width=10).plain) == 10
    assert format_eta(None) == "-" and format_eta(75) == "1:15" and format_eta(3700) == "1:01:40"


@pytest.mark.parametrize(
    ("terminal", "dashboard", "expected"),
    [(True, True, DashboardView), (False, True, ProgressLog), (True, False, ProgressLog)],
)
def test_dashboard_only_on_a_terminal(terminal: bool, dashboard: bool, expected: type) -> None:
    console = Console(file=io.StringIO(), force_terminal=terminal)
    view = live_view(lambda: [], console, dashboard=dashboard, backend="b", untrained=False)
    assert isinstance(view, expected)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")
def test_dashboard_in_a_real_terminal(tmp_path: Path) -> None:
    """Run dfstream inside tmux and read the screen with ``tmux capture-pane``."""
    clip = write_clip(tmp_path / "faces.mp4", frames=40, size=(160, 120), pattern="face")
    session = f"dfstream-test-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "done"
    command = (
        f"cd {shlex.quote(str(REPO_ROOT))} && {shlex.quote(sys.executable)} -m dfstream "
        f"{shlex.quote(str(clip))} --untrained --detector none --window 4 --stride 2; "
        f"echo $? > {shlex.quote(str(done))}; sleep 120"
    )
    # A private tmux server (-L): the size asked for holds whatever else runs tmux here.
    subprocess.run(
        ["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "100", "-y", "40",
         command],
        check=True,
    )  # fmt: skip
    live_screens: list[str] = []  # captured while the run was still going
    try:
        deadline = time.monotonic() + 300
        while not done.exists() and time.monotonic() < deadline:
            live_screens.append(_capture(session))
            time.sleep(0.5)
        screen = _capture(session)
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)
    assert done.exists() and done.read_text().strip() == "0", screen
    assert any("in fps" in s and "ETA" in s for s in live_screens), "no live dashboard seen"
    assert "UNTRAINED MODEL" in screen  # the dashboard's banner
    assert "faces.mp4" in screen and "in fps" in screen and "faces in" in screen
    assert "#0" in screen and "100%" in screen  # the face row and the finished progress bar
    assert "dfstream summary" in screen  # the final table below the dashboard


def _capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "-L", session, "capture-pane", "-p", "-t", session],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_summary_table_keeps_every_column_whole_on_80_columns() -> None:
    from dfstream.sinks.console import summary_table
    from dfstream.types import StreamSummary

    def one(name: str, verdict: Verdict, score: float) -> StreamSummary:
        return StreamSummary(
            stream_id=name, source=name, name=name, verdict=verdict, score=score,
            frames_decoded=12345, frames_analyzed=12345, crops_embedded=123456,
            windows_scored=12345, tracks=(), duration_s=1234.5, media_duration_s=None,
            untrained=False,
        )  # fmt: skip

    rows = [one("Albica_Johns_0.mp4", Verdict.FAKE, 0.738), one("a.mp4", Verdict.UNCERTAIN, 0.5)]
    table = summary_table(
        rows, backend="torch bf16 on cpu, 2 threads", untrained=False, model="m", threshold="0.5"
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    header = next(line for line in text.splitlines() if line.startswith("source"))
    assert header.split() == ["source", "verdict", "score", "faces", "frames", "analysed",
                              "crops", "windows", "time", "s"]  # fmt: skip
    assert "UNCERTAIN  0.500" in text and "123456" in text and "1234.5" in text
