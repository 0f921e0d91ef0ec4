"""``dfstream gui`` where it cannot open a window (no tkinter, no display): one line and exit 5;
its usage errors; and tkinter stays inside ``dfstream.gui``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfstream.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_tkinter_one_line_names_the_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # ``None`` in sys.modules makes ``import tkinter`` fail as on a Python built without Tk.
    monkeypatch.setitem(sys.modules, "tkinter", None)
    assert main(["gui"]) == 5
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dfstream: error: dfstream gui needs tkinter")
    assert "python3-tk" in line


@pytest.mark.skipif(sys.platform != "linux", reason="X11 displays are a Linux matter")
def test_without_a_display_one_line_says_so(tmp_path: Path) -> None:
    pytest.importorskip("tkinter", reason="tkinter is missing")
    # In a child process: Xlib ends a process that opens a display after an X server it
    # used went away (as the window tests' Xvfb does).
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "c"), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "dfstream", "gui", "clip.mp4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 5, done.stderr
    (line,) = done.stderr.splitlines()
    assert "dfstream gui needs a display" in line and "Xvfb" in line
    assert not (tmp_path / "c").exists(), "nothing is written when no window opens"


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["gui", "--help"], 0, "XDG_CONFIG_HOME"),
        (["gui", "--threshold", "2"], 2, "--threshold"),
        (["gui", "--weights", "a.pt", "--untrained"], 2, "not allowed with"),
    ],
)
def test_usage(argv: list[str], code: int, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    assert needle in captured.out + captured.err


def test_tkinter_is_imported_only_by_the_gui_package() -> None:
    pattern = re.compile(r"^\s*(import tkinter|from tkinter)", re.MULTILINE)
    outside = [
        str(path.relative_to(REPO))
        for path in (REPO / "dfstream").rglob("*.py")
        if "gui" not in path.relative_to(REPO / "dfstream").parts[:1]
        and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert outside == []
    # The Tk-free half of the app and the rest of dfstream load without tkinter.
    modules = [
        "dfstream.api",
        "dfstream.cli.analyze",
        "dfstream.cli.gui",
        "dfstream.gui",
        "dfstream.gui.settings",
        "dfstream.gui.session",
        "dfstream.gui.viewmodel",
        "dfstream.gui.preview",
    ]
    done = _run(
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tkinter', '_tkinter')))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
