"""The real desktop window under a real X server (Xvfb): open through the Open dialog's code
path (the dialog itself patched), start, watch the verdict form, screenshot, save; stop
mid-run; error sources and a bad checkpoint; closing while running; ``dfstream gui`` itself.

Skipped with the reason where tkinter or Xvfb is missing (``bash .ci/run`` installs Xvfb).
The clips are played in real time (``paced_opener``) so that "mid-run" is a fact, not a race.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

tk = pytest.importorskip(
    "tkinter", reason="tkinter is missing (Debian: apt-get install python3-tk)"
)

from dfstream.gui import tk_root  # noqa: E402
from dfstream.gui import window as window_module  # noqa: E402
from dfstream.gui.session import Session  # noqa: E402
from dfstream.gui.settings import GuiSettings, RecentSources, load_settings  # noqa: E402
from dfstream.gui.viewmodel import VERDICT_COLOURS  # noqa: E402
from dfstream.gui.widgets import DETECTOR_HELP, MODEL_UNTRAINED, PreferencesDialog  # noqa: E402
from dfstream.gui.window import App  # noqa: E402
from dfstream.tools.benchkit import paced_opener  # noqa: E402
from dfstream.types import Verdict  # noqa: E402
from tests.media import write_clip  # noqa: E402

pytest_plugins = ("tests.xvfb",)  # the session-wide Xvfb display fixture, x_display

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def display(x_display: str) -> str:
    """The session's Xvfb display."""
    return x_display


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s clip and a 10 s one, with a face-like pattern."""
    folder = tmp_path_factory.mktemp("gui-media")
    return {
        "short": write_clip(folder / "clip.mp4", frames=50, size=(160, 120), pattern="face"),
        "long": write_clip(folder / "long.mp4", frames=250, size=(160, 120), pattern="face"),
    }


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """One session for every window of the module: the model loads once."""
    session = Session(cache_dir=tmp_path_factory.mktemp("gui-cache"), opener=paced_opener())
    yield session
    assert session.close(timeout=60)


@pytest.fixture
def app(display: str, session: Session, tmp_path: Path) -> Iterator[App]:
    """A fresh window on the test display (untrained model, whole-frame faces)."""
    root = tk_root(display)
    app = App(
        root,
        session=session,
        settings=GuiSettings(model="untrained", detector="none"),
        recent=RecentSources(tmp_path / "cfg" / "recent.json"),
        config_dir=tmp_path / "cfg",
    )
    root.geometry("1160x760+0+0")
    yield app
    app.quit()
    pump(app, lambda: app.closed, timeout=60)


def pump(app: App, done: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Run the Tk event loop (the window's own polling) until ``done()`` or the window closes."""
    deadline = time.monotonic() + timeout
    while not done() and not app.closed:
        app.root.update()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: rows {app.vm.rows()}, message {app.vm.message!r}")
        time.sleep(0.02)


def finished(app: App) -> bool:
    rows = app.vm.rows()
    return bool(rows) and not app.session.busy and not app.vm.running


def settle(app: App, seconds: float = 0.8) -> None:
    """Let the bounded-rate redraws (plot, preview) catch up."""
    end = time.monotonic() + seconds
    pump(app, lambda: time.monotonic() > end)


def key_press(app: App, sequence: str, widget: tk.Misc | None = None) -> None:
    """Type a key into ``widget`` (default the sources list) of the focused window."""
    widget = widget or app.sources.tree
    app.root.update()
    app.root.focus_force()
    widget.focus_set()
    app.root.update()
    widget.event_generate(sequence)
    app.root.update()


def jsonl_summaries(path: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in lines if e["type"] == "summary"]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def screenshot(app: App, display: str) -> tuple[np.ndarray, tuple[int, int]]:
    """The window's pixels (RGB) and its top-left corner on the screen."""
    from PIL import ImageGrab, features

    if not features.check("xcb"):
        pytest.skip("this Pillow was built without XCB: no screenshots of X displays")
    root = app.root
    x, y, w, h = root.winfo_rootx(), root.winfo_rooty(), root.winfo_width(), root.winfo_height()
    image = ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=display)
    return np.asarray(image.convert("RGB")), (x, y)


def region(shot: np.ndarray, origin: tuple[int, int], widget: tk.Misc) -> np.ndarray:
    x = widget.winfo_rootx() - origin[0]
    y = widget.winfo_rooty() - origin[1]
    return shot[y : y + widget.winfo_height(), x : x + widget.winfo_width()]


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def test_open_start_watch_the_verdict_screenshot_and_save(
    app: App, display: str, media: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        window_module.filedialog, "askopenfilenames", lambda **_kw: (str(media["short"]),)
    )
    key_press(app, "<Control-o>")  # the Open files shortcut -> the (patched) dialog
    (item,) = app.sources.tree.get_children()
    assert app.sources.tree.item(item, "text") == "clip.mp4"
    assert app.sources.tree.set(item, "state") == "ready"
    assert app.banner.title.cget("text") == "READY"
    assert "disabled" not in app.start_button.state()
    key_press(app, "<Control-r>")  # Start
    assert "disabled" in app.start_button.state()
    pump(app, lambda: finished(app))
    settle(app)

    (item,) = app.sources.tree.get_children()
    saveable = app.vm.saveable(item)
    assert saveable is not None
    (summary,) = jsonl_summaries(saveable[1] / "scores.jsonl")
    verdict = Verdict(summary["verdict"])
    assert verdict is not Verdict.NO_FACES  # whole-frame faces are always there
    title = verdict.value.replace("_", " ")
    assert app.banner.title.cget("text") == title
    assert "whole video: score" in app.banner.detail.cget("text")
    assert "UNTRAINED" in app.banner.detail.cget("text")
    assert app.sources.tree.set(item, "state") == "done"
    assert app.sources.tree.set(item, "done") == "100%"
    assert app.sources.tree.set(item, "verdict") == f"{title} {summary['score']:.2f}"
    assert app.sources.label.cget("text") == "clip.mp4: 100%"
    assert app.message.cget("text").startswith("Done")
    assert "untrained (seed 0)" in app.status.cget("text")
    assert str(app.preview.label.cget("image")), "the preview shows the last frame"
    lines = app.plot.axes.get_lines()
    assert len(lines) == 2 and lines[0].get_ydata()[0] == 0.5  # threshold + face #0
    assert len(lines[1].get_xdata()) == summary["windows_scored"]

    shot, origin = screenshot(app, display)
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 200, "blank window"
    banner = region(shot, origin, app.banner)
    share = (banner == rgb(VERDICT_COLOURS[verdict][0])).all(axis=2).mean()
    assert share > 0.6, f"banner is {share:.0%} verdict colour"
    preview = region(shot, origin, app.preview.label)
    assert preview.std() > 10, "the preview is blank"

    monkeypatch.setattr(window_module.filedialog, "askdirectory", lambda **_kw: str(tmp_path))
    key_press(app, "<Control-s>")  # Save outputs -> the (patched) folder dialog
    pump(app, lambda: (app.vm.message or "").startswith("Saved"))
    (saved,) = tmp_path.glob("dfstream-*")
    names = {p.name for p in saved.iterdir()}
    assert names == {"scores.jsonl", "report.json", "report.png", "overlay.mp4"}
    assert jsonl_summaries(saved / "scores.jsonl") == [summary]
    assert json.loads((saved / "report.json").read_text())["plot"] == "report.png"
    assert frame_count(saved / "overlay.mp4") == 50


def test_stop_mid_run_finalises_the_outputs(app: App, media: dict[str, Path]) -> None:
    app.add_sources([str(media["long"])])  # what the Open dialog's paths go through
    app.start()
    pump(app, lambda: sum(len(t) for t, _ in app.vm.series(app.selected).values()) >= 2)
    assert "disabled" not in app.stop_button.state()
    key_press(app, "<Escape>")  # Stop
    stopped_at = time.monotonic()
    pump(app, lambda: finished(app), timeout=30)
    assert time.monotonic() - stopped_at < 20
    (item,) = app.sources.tree.get_children()
    assert app.sources.tree.set(item, "state") == "stopped"
    assert app.message.cget("text").startswith("Stopped")
    saveable = app.vm.saveable(item)
    assert saveable is not None
    (summary,) = jsonl_summaries(saveable[1] / "scores.jsonl")
    assert 0 < int(summary["frames_decoded"]) < 250  # type: ignore[call-overload]
    assert 0 < frame_count(saveable[1] / "overlay.mp4") < 250
    assert json.loads((saveable[1] / "report.json").read_text())["sources"]


def test_errors_show_in_the_window_and_the_app_stays_usable(
    app: App, media: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.mp4"
    app.source_field.set(str(missing))  # typed in the URL / webcam field, Enter
    key_press(app, "<Return>", app.source_field)
    app.start()
    pump(app, lambda: finished(app))
    settle(app, 0.2)
    assert app.banner.title.cget("text") == "ERROR"
    assert f"{missing}: no such file" in app.banner.detail.cget("text")
    (item,) = app.sources.tree.get_children()
    assert app.sources.tree.set(item, "state") == "failed"

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    app._set_settings(app.settings.with_model("checkpoint", bad))  # as the model picker does
    assert app.model.field.get() == "Checkpoint: broken.pt"
    app.add_sources([str(media["short"])])
    app.start()
    pump(app, lambda: not app.session.busy and not app.vm.running)
    settle(app, 0.2)
    text = app.message.cget("text")
    assert str(bad) in text and "\n" not in text
    ready = [
        i for i in app.sources.tree.get_children() if app.sources.tree.set(i, "state") == "ready"
    ]
    assert len(ready) == 1, "the source that was not analysed is ready again"

    app.model.field.set(MODEL_UNTRAINED)
    app.model.field.event_generate("<<ComboboxSelected>>")
    assert app.settings.model == "untrained"
    app.start()
    pump(app, lambda: finished(app) and app.banner.title.cget("text") != "ERROR")
    assert any(app.sources.tree.set(i, "state") == "done" for i in app.sources.tree.get_children())


def test_closing_the_window_stops_the_run_and_finalises(app: App, media: dict[str, Path]) -> None:
    app.add_sources([str(media["long"])])
    app.start()
    pump(app, lambda: bool(app.vm.series(app.selected)))
    run_id = app.vm.current_run
    key_press(app, "<Control-q>")  # Quit while running
    assert not app.closed, "the window waits for the outputs to be finalised"
    pump(app, lambda: app.closed, timeout=30)
    assert not app.session.busy
    run_dirs = sorted((app.session.cache_dir / "runs").iterdir())
    (summary,) = jsonl_summaries(run_dirs[-1] / "scores.jsonl")
    assert summary["stream"] == str(media["long"]) and run_id is not None
    assert 0 < frame_count(run_dirs[-1] / "overlay.mp4") < 250


def test_the_dfstream_gui_command(display: str, media: dict[str, Path], tmp_path: Path) -> None:
    env = dict(
        os.environ,
        DISPLAY=display,
        PYTHONPATH=str(REPO),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    args = ["--untrained", "--detector", "none", str(media["short"])]
    process = subprocess.Popen(
        [sys.executable, "-m", "dfstream", "gui", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = tmp_path / "cache" / "dfstream" / "gui" / "runs"
    deadline = time.monotonic() + 90
    try:
        while not list(runs.glob("*/report.png")) or not any(
            p.stat().st_size for p in runs.glob("*/report.png")
        ):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no finished run within 90 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # closes the window like Quit
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    (run,) = runs.iterdir()
    (summary,) = jsonl_summaries(run / "scores.jsonl")
    assert summary["untrained"] is True
    recent = json.loads((tmp_path / "config" / "dfstream" / "recent.json").read_text())
    assert recent == [str(media["short"])]


def test_preferences_recent_sources_and_removing_a_row(app: App, tmp_path: Path) -> None:
    app.preferences()
    (dialog,) = [w for w in app.root.winfo_children() if isinstance(w, PreferencesDialog)]
    dialog.threshold.set("seven")
    dialog.ok()
    assert dialog.winfo_exists() and dialog.error.cget("text"), "a bad value is said, not saved"
    dialog.threshold.set("0.7")
    dialog.detector.set(DETECTOR_HELP["haar"])
    dialog.overlay.set(False)
    dialog.ok()
    assert (app.settings.threshold, app.settings.detector, app.settings.overlay) == (
        0.7,
        "haar",
        False,
    )
    assert load_settings(tmp_path / "cfg") == app.settings
    assert app.settings_label.cget("text") == (
        "threshold 0.70 · detector haar · annotated video off"
    )
    app.preferences()  # an empty threshold goes back to the model's calibrated one
    (dialog,) = [w for w in app.root.winfo_children() if isinstance(w, PreferencesDialog)]
    assert dialog.threshold.get() == "0.70"
    dialog.threshold.set("")
    dialog.ok()
    assert app.settings.threshold is None and load_settings(tmp_path / "cfg") == app.settings
    assert app.settings_label.cget("text").startswith("threshold the model's ·")

    app.add_sources([str(tmp_path / "a.mp4"), "rtsp://user:secret@cam/1"])
    assert app.recent_menu.entrycget(0, "label") == str(tmp_path / "a.mp4")
    assert json.loads((tmp_path / "cfg" / "recent.json").read_text()) == [str(tmp_path / "a.mp4")]
    assert len(app.sources.tree.get_children()) == 2
    key_press(app, "<Delete>")
    assert len(app.sources.tree.get_children()) == 1
