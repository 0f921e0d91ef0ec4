"""One root error for everything dfstream reports to a user, and a few subclasses.

Only ``dfstream.cli`` catches these: it prints ``str(error)`` as one line and exits with the
subclass's ``exit_code`` (a traceback only under ``--debug``). Messages say what failed, where,
and how to fix it.
"""

from __future__ import annotations


class DfstreamError(Exception):
    """Root of every error dfstream expects and explains; exit code 5 unless a subclass says."""

    exit_code = 5


class UsageError(DfstreamError):
    """The command line asks for something contradictory or impossible (exit 2)."""

    exit_code = 2


class SourceError(DfstreamError):
    """A source cannot be opened or decoded: missing, empty, not a video, truncated (exit 3)."""

    exit_code = 3


class WeightsError(DfstreamError):
    """Weights are missing, unsafe to load, or do not fit the model (exit 4)."""

    exit_code = 4


class BackendUnavailable(DfstreamError):
    """An inference backend or device cannot be used here; the message names the fix (exit 5)."""

    exit_code = 5


class OutputError(DfstreamError):
    """An output path (JSONL, overlay, report) cannot be written (exit 6)."""

    exit_code = 6
