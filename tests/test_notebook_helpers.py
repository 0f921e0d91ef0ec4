"""training.notebook (the Colab notebook's helpers) and benchkit.compare_backends, small inputs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from dfstream.tools.benchkit import bench_model, compare_backends
from training.manifest import Entry, write_manifest
from training.notebook import (
    MetricsFollower,
    StepFailed,
    format_counts,
    metrics_png,
    read_metrics,
    run_command,
    split_counts,
    training_speed,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_run_command_streams_lines_and_names_the_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    code = "import sys; print('one'); print('two', file=sys.stderr)"
    assert run_command([sys.executable, "-c", code], cwd=tmp_path, on_line=seen.append) == 0
    assert [line.strip() for line in seen] == ["one", "two"]
    assert "one\ntwo\n" in capsys.readouterr().out
    failing = "print('working'); print('error: disk full'); raise SystemExit(6)"
    with pytest.raises(StepFailed, match=r"exited with 6: error: disk full$"):
        run_command([sys.executable, "-c", failing], cwd=tmp_path)
    assert run_command([sys.executable, "-c", failing], cwd=tmp_path, check=False) == 6


def test_metrics_follower_redraws_only_when_an_epoch_was_added(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.poll() is None and metrics_png(path) is None  # before the first epoch
    record = {"epoch": 1, "step": 5, "train_loss": 0.69, "val_auc": 0.6, "val_log_loss": 0.7}
    path.write_text(json.dumps(record) + "\n")
    first = follower.poll()
    assert first is not None and first.startswith(PNG)
    assert follower.poll() is None  # unchanged
    with path.open("a") as fh:
        fh.write(json.dumps({**record, "epoch": 2, "train_loss": 0.5}) + "\n" + '{"epoch": 3, "tr')
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2]  # the half-written line waits
    assert (follower.poll() or b"").startswith(PNG)
    no_val = tmp_path / "no_val.jsonl"
    no_val.write_text(json.dumps({"epoch": 1, "step": 1, "train_loss": 0.7}) + "\n")
    assert (metrics_png(no_val) or b"").startswith(PNG)


def test_split_counts_per_split_and_label(tmp_path: Path) -> None:
    rows = [("a", "REAL", "train"), ("b", "FAKE", "train"), ("c", "FAKE", "train")]
    rows += [("d", "REAL", "test")]
    entries = [
        Entry(f"/v/{n}.mp4", label, "x", (f"x:{n}",), split=split, group=f"x:{n}")  # type: ignore[arg-type]
        for n, label, split in rows
    ]
    write_manifest(tmp_path / "m.csv", entries)
    counts = split_counts(tmp_path / "m.csv")
    assert counts == {"test": {"REAL": 1, "FAKE": 0}, "train": {"REAL": 1, "FAKE": 2}}
    assert format_counts(counts).splitlines()[1:] == [
        "test           1     0",
        "train          1     2",
    ]


def test_training_speed_is_a_positive_rate() -> None:
    rate = training_speed("tiny", 32, window=2, device="cpu", batch=2, steps=1)
    assert math.isfinite(rate) and rate > 0


def test_compare_backends_measures_against_the_first_option(tmp_path: Path) -> None:
    loaded = bench_model("tiny", window=4, input_size=32)
    rows = compare_backends(
        loaded,
        [("torch", "fp32"), ("onnx", "fp32")],
        device="cpu",
        batch=8,
        seconds=0.1,
        onnx_cache=tmp_path,
    )
    assert [r.option for r in rows] == ["torch fp32", "onnx fp32"]
    assert rows[0].score_max_abs_diff == 0.0 and rows[0].feature_max_rel_diff == 0.0
    assert rows[1].score_max_abs_diff < 1e-4 and rows[1].feature_max_rel_diff < 1e-4
    assert "onnx" in rows[1].described and all(r.crops_per_s > 0 for r in rows)
