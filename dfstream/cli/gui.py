"""``dfstream gui [SOURCE...]``: the desktop app (a tkinter window over the library API).

This is the app's edge: it finds the user's config folder (``$XDG_CONFIG_HOME/dfstream``,
else ``~/.config/dfstream``: preferences and recent sources) and cache folder (run outputs
until saved), applies the command line's model and threshold choices over the saved
preferences, and runs the window. Sources given here are analysed at once (``--no-start``
only lists them). Without tkinter or without a display it exits 5 with one line that says
what to install or that a display is needed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from types import FrameType, TracebackType

from dfstream import __version__
from dfstream.cli.args import (
    EXIT_CODES_HELP,
    Parser,
    default_cache_dir,
    default_model_override,
    probability,
)
from dfstream.config import DETECTORS
from dfstream.errors import ExitCode


def default_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/dfstream``, else ``~/.config/dfstream``."""
    root = os.environ.get("XDG_CONFIG_HOME")
    return (Path(root) if root else Path.home() / ".config") / "dfstream"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dfstream gui``."""
    p = Parser(
        prog="dfstream gui",
        description="The dfstream desktop app: open videos, photos, a folder, a URL or a webcam, "
        "watch each face's score and the verdict form, save the report, annotated video and "
        "JSONL. Preferences and recent sources are kept in $XDG_CONFIG_HOME/dfstream "
        "(default ~/.config/dfstream).",
        epilog=EXIT_CODES_HELP + "\n  (5 also: no tkinter, or no display)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="sources to open (and start)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, help="dfstream checkpoint or public model_*.pt")
    model.add_argument(
        "--untrained", action="store_true", help="random model: for pipeline checks only"
    )
    p.add_argument("--threshold", type=probability, help="FAKE above this score")
    p.add_argument("--detector", choices=DETECTORS, help="face detector (default: as saved)")
    p.add_argument("--no-start", action="store_true", help="open the sources without starting")
    p.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")
    p.add_argument("--version", action="version", version=f"dfstream {__version__}")
    return p


def main(argv: list[str]) -> int:
    """Open the window; returns when it is closed and every run's outputs are finalised."""
    args = build_parser().parse_args(argv)
    from dfstream.gui import tk_root

    root = tk_root()  # GuiUnavailable (one line, exit 5) without tkinter or a display
    from dfstream.gui.session import Session
    from dfstream.gui.settings import RecentSources, load_settings
    from dfstream.gui.window import App

    config_dir = default_config_dir()
    settings = load_settings(config_dir)
    if args.weights is not None:
        settings = settings.with_model("checkpoint", args.weights)
    elif args.untrained:
        settings = settings.with_model("untrained")
    if args.threshold is not None:
        settings = replace(settings, threshold=args.threshold)
    if args.detector is not None:
        settings = replace(settings, detector=args.detector)
    session = Session(
        cache_dir=default_cache_dir("gui"),
        model_cache=default_cache_dir("models"),
        default_weights=default_model_override(),
    )
    app = App(
        root,
        session=session,
        settings=settings,
        recent=RecentSources.load(config_dir),
        config_dir=config_dir,
    )

    def report(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        # A bug in a callback: one line in the window (the traceback only with --debug).
        if args.debug:
            traceback.print_exception(kind, exc, tb)
        app.vm.set_message(f"internal error: {kind.__name__}: {exc}", error=True)

    root.report_callback_exception = report  # type: ignore[method-assign]
    interrupted = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        interrupted.append(signum)
        app.quit()  # runs on the Tk thread, between two of its callbacks

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.sources:
        app.add_sources(args.sources)
        if not args.no_start:
            root.after(100, app.start)
    try:
        root.mainloop()
    finally:
        if not session.close(timeout=30.0):
            print("dfstream: warning: the analysis did not end within 30 s", file=sys.stderr)
    return int(ExitCode.INTERRUPTED if interrupted else ExitCode.OK)
