"""The packages type-check: ``mypy dfstream training benchmarks`` with the settings of
``pyproject.toml`` reports no error (mypy is a dev dependency, pinned to one minor version so
that a new release's stricter checks arrive by choice, not by a fresh install)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e .[dev])")
    monkeypatch.chdir(ROOT)
    out, err, status = api.run(
        ["--cache-dir", str(tmp_path / "cache"), "dfstream", "training", "benchmarks"]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 0 and not errors, "\n".join(errors[:20]) or out + err
