"""Reading what ``dfstream scan`` wrote, for the scan tests (local and on a Ray cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def results(out: Path) -> list[dict[str, Any]]:
    """The complete lines of a scan's merged JSONL (a line still being written is left out)."""
    path = out / "results.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def summaries(out: Path) -> list[dict[str, Any]]:
    """The ``summary`` lines of a scan's output."""
    return [line for line in results(out) if line["type"] == "summary"]
