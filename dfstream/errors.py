"""One root error for everything dfstream reports to a user, and a few subclasses.

Only ``dfstream.cli`` catches these: it prints ``str(error)`` as one line and exits with the
subclass's ``exit_code`` (a traceback only under ``--debug``). Messages say what failed, where,
and how to fix it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit code of the ``dfstream`` command (also in ``--help`` and the README)."""

    OK = 0
    FAKE = 1
    USAGE = 2
    SOURCE = 3
    WEIGHTS = 4
    BACKEND = 5
    OUTPUT = 6
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """What the code means, in one line (``--help`` lists these)."""
        return _EXIT_MEANINGS[self]


_EXIT_MEANINGS = {
    ExitCode.OK: "done (whatever the verdicts)",
    ExitCode.FAKE: "a fake was found and --fail-on-fake was given",
    ExitCode.USAGE: "usage error (bad flag or value, contradictory options)",
    ExitCode.SOURCE: "a source could not be opened or decoded (other sources still ran)",
    ExitCode.WEIGHTS: "weights missing, unsafe, or not fitting the model",
    ExitCode.BACKEND: "backend/device unavailable (gui: no tkinter or display) or internal error",
    ExitCode.OUTPUT: "an output cannot be written or failed (the others were finalised)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C / SIGTERM); outputs are still finalised",
}


class DfstreamError(Exception):
    """Root of every error dfstream expects and explains; exit code 5 unless a subclass says."""

    exit_code: ExitCode = ExitCode.BACKEND


class UsageError(DfstreamError):
    """The command line asks for something contradictory or impossible (exit 2)."""

    exit_code = ExitCode.USAGE


class SourceError(DfstreamError):
    """A source cannot be opened or decoded: missing, empty, not a video, truncated (exit 3)."""

    exit_code = ExitCode.SOURCE


class WeightsError(DfstreamError):
    """Weights are missing, unsafe to load, or do not fit the model (exit 4)."""

    exit_code = ExitCode.WEIGHTS


class BackendUnavailable(DfstreamError):
    """An inference backend or device cannot be used here; the message names the fix (exit 5)."""

    exit_code = ExitCode.BACKEND


class OutputError(DfstreamError):
    """An output path (JSONL, overlay, report) cannot be written (exit 6)."""

    exit_code = ExitCode.OUTPUT
