"""The README's library example and ``examples/`` run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _library_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Library\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's Library section has no python example"
    return blocks[0]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_readme_library_example_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(_library_block(), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"(REAL|FAKE|UNCERTAIN) \d+ windows", lines[-1]), lines[-1]
    windows = int(lines[-1].split()[1])
    assert windows > 0 and sum(line.startswith("face 0 at ") for line in lines) == windows
    assert (tmp_path / "demo.jsonl").stat().st_size > 0
    assert (tmp_path / "demo-report.json").is_file() and (tmp_path / "demo-report.png").is_file()


def test_examples_library_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "library.py")], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": connected") == 2
    assert proc.stdout.count("windows scored") == 2
    assert proc.stdout.count("whole video") == 2
