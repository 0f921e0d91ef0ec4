"""The ``dfstream`` command line: one module per command, one entry point.

``dfstream SOURCE...`` analyses (``dfstream.cli.analyze``); ``dfstream bench|export|engine|
doctor`` are the other commands, each a module with ``main(argv) -> int`` imported only when
used. ``main`` is the only place that catches ``DfstreamError``: it prints one line and returns
the error's ``ExitCode`` (the traceback only with ``--debug``).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from dfstream.errors import DfstreamError, ExitCode

COMMANDS: dict[str, str] = {
    "bench": "dfstream.cli.bench",
    "export": "dfstream.cli.export",
    "engine": "dfstream.cli.engine",
    "doctor": "dfstream.cli.doctor",
    "scan": "dfstream.cli.scan",
    "gui": "dfstream.cli.gui",
}
"""Commands besides analysis: name -> module with ``main(argv) -> int``."""


def _redact(text: str) -> str:
    from dfstream.sources import redact

    return redact(text)


def run_guarded(command: str, argv: list[str]) -> int:
    """Run one command (``""`` = analysis) and turn every expected error into one line."""
    debug = "--debug" in argv
    try:
        module = importlib.import_module(COMMANDS.get(command, "dfstream.cli.analyze"))
        return int(module.main(argv))
    except DfstreamError as exc:
        if debug:
            traceback.print_exc()
        print(f"dfstream: error: {_redact(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    except SystemExit as exc:  # argparse: --help and --version
        return exc.code if isinstance(exc.code, int) else int(ExitCode.USAGE)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 5
        if debug:
            traceback.print_exc()
        print(
            f"dfstream: internal error: {type(exc).__name__}: {_redact(str(exc))} (rerun with "
            "--debug for the traceback)",
            file=sys.stderr,
        )
        return int(ExitCode.BACKEND)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; never lets an expected error out as a traceback.

    Run as a program (``argv`` None), an interrupted run leaves with ``os._exit`` once every
    output is finalised and flushed: the interpreter's own teardown (torch, threads still
    blocked in FFmpeg on a dead socket) can take seconds, and Ctrl-C must end within 5 s.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and args[0] in COMMANDS else ""
    code = run_guarded(command, args[1:] if command else args)
    if argv is None and code == ExitCode.INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
