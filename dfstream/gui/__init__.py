"""The desktop app (``dfstream gui``): a tkinter window over the library API.

* ``settings``: preferences and recent sources (JSON in the user's config folder), and the
  run's ``AnalysisConfig`` / ``OutputConfig`` built from them;
* ``session``: runs analyses on background threads and reports through a message queue;
* ``viewmodel``: what the window shows, from messages and snapshots (tested without Tk);
* ``preview``: the preview picture with score-coloured face boxes;
* ``window`` and ``widgets``: the Tk window itself (tkinter is imported only there, and in
  ``tk_root`` below).

tkinter ships with Python but not always with a distribution's Python (``python3-tk`` on
Debian/Ubuntu) and cannot be installed with pip; ``tk_root`` turns a missing tkinter or a
missing display into a ``GuiUnavailable`` error with one line saying what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfstream.errors import DfstreamError, ExitCode

if TYPE_CHECKING:
    import tkinter


class GuiUnavailable(DfstreamError):
    """The desktop app cannot open a window here: no tkinter, or no display (exit 5)."""

    exit_code = ExitCode.BACKEND


def tk_root(screen: str | None = None) -> tkinter.Tk:
    """The application's Tk root on display ``screen`` (None: the desktop's own).

    Raises ``GuiUnavailable`` when tkinter is missing or no display can be opened."""
    try:
        import tkinter
    except ImportError as exc:
        raise GuiUnavailable(
            f"dfstream gui needs tkinter, which this Python lacks ({exc}): install python3-tk "
            "(Debian/Ubuntu), python3-tkinter (Fedora) or tk (Arch), or use a Python built "
            "with Tk (python.org installers include it)"
        ) from exc
    try:
        return tkinter.Tk(screenName=screen, className="dfstream")
    except tkinter.TclError as exc:
        raise GuiUnavailable(
            f"dfstream gui needs a display ({' '.join(str(exc).split())}): run it in a desktop "
            "session, or set DISPLAY (for example under Xvfb: xvfb-run dfstream gui)"
        ) from exc
