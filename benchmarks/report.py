"""Writing benchmark results: JSON for machines, a Markdown table for people, a rich table for
the terminal, all from the same rows."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from dfstream.sinks.console import compact_table

Row = Sequence[str]


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table: fixed digits, ``n/a`` for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def rich_table(title: str, header: Row, rows: Sequence[Row]) -> Table:
    """A rich table for the terminal, compact (a rule under the header, one space of padding)
    so that ten columns of numbers fit 80 columns; a cell's text is never cut, headers wrap."""
    table = compact_table(title=title)
    for i, name in enumerate(header):
        widest = max((len(row[i]) for row in rows if i < len(row)), default=0)
        table.add_column(name, justify="left" if i == 0 else "right", min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(header: Row, rows: Sequence[Row]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine_line(machine: dict[str, Any]) -> str:
    """One Markdown line naming the machine and library versions."""
    load = machine.get("load_average") or ()
    return (
        f"Machine: {machine['cpu']} x{machine['cpu_count']} ({machine['platform']}), "
        f"Python {machine['python']}, torch {machine['torch']} ({machine['torch_threads']} "
        f"threads), PyAV {machine['av']} (libavcodec {machine['ffmpeg_libavcodec']}), "
        f"OpenCV {machine['opencv']}, numpy {machine['numpy']}; load average at the end "
        f"{' '.join(f'{v:.1f}' for v in load)} (the machine was shared: figures are noisy)."
    )


def write_outputs(
    json_path: Path, result: dict[str, Any], *, title: str, header: Row, rows: Sequence[Row]
) -> Path:
    """Write ``result`` as JSON to ``json_path`` and a Markdown table next to it (``.md``)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path = json_path.with_suffix(".md")
    body = f"# {title}\n\n" + markdown_table(header, rows)
    if "command" in result:
        body += f"\nCommand: `{result['command']}`\n"
    if "machine" in result:
        body += "\n" + machine_line(result["machine"]) + "\n"
    md_path.write_text(body)
    return md_path
