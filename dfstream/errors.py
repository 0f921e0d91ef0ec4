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
    """Done, whatever the verdicts."""
    FAKE = 1
    """A fake was found and ``--fail-on-fake`` was given."""
    USAGE = 2
    """Bad flag or value, or contradictory options."""
    SOURCE = 3
    """A source could not be opened or decoded (the other sources still ran)."""
    WEIGHTS = 4
    """Weights missing, unsafe, or not fitting the model."""
    BACKEND = 5
    """Inference backend or device unavailable, or an internal error."""
    OUTPUT = 6
    """An output (file, sink) could not be written; the others were finalised."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM, after every output was finalised."""


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
