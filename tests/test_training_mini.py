"""The whole training path on the real mini corpus (``../shared/data/mini``), through the CLIs:
index -> preprocess (YuNet) -> sbi-preview -> train (small, a few steps) -> evaluate -> dfstream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.cache import CropCache

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, module: str = "training", timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{module} {args[0]}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Index, crop and train once on the mini corpus; the tests below check each product."""
    shared = REPO.parent / "shared"
    mini, yunet = shared / "data" / "mini", shared / "models" / "face_detection_yunet_2026may.onnx"
    if not mini.is_dir() or not yunet.is_file():
        pytest.skip(f"{mini} or {yunet} is absent (../shared holds the real test data)")
    work = tmp_path_factory.mktemp("mini")
    paths = {
        "manifest": work / "m.csv",
        "cache": work / "cache",
        "run": work / "run",
        "metrics": work / "metrics.json",
        "grid": work / "grid.png",
    }
    _run(
        "index",
        "--ffpp",
        str(mini / "ffpp"),
        "--dfdc",
        str(mini / "dfdc"),
        "--out",
        str(paths["manifest"]),
    )
    _run(
        "preprocess",
        str(paths["manifest"]),
        "--out",
        str(paths["cache"]),
        "--frames",
        "8",
        "--detector-model",
        str(yunet),
        "--workers",
        "2",
    )
    _run(
        "train",
        str(paths["cache"]),
        "--out",
        str(paths["run"]),
        "--backbone",
        "small",
        "--max-steps",
        "1",
        "--batch",
        "2",
        "--split",
        "all",
        "--device",
        "cpu",
    )
    return paths


def test_preprocess_cached_yunet_crops_with_landmarks(mini_run: dict[str, Path]) -> None:
    videos = CropCache.open(mini_run["cache"]).select("all")
    assert sorted(Path(v.entry.path).stem for v in videos) == ["519", "519_515", "brtujopkby"]
    for video in videos:
        assert video.crops.shape == (8, 112, 112, 3)
        assert (video.landmarks >= 0).all() and (video.landmarks <= 112).all()


def test_sbi_preview_writes_a_grid(mini_run: dict[str, Path]) -> None:
    _run("sbi-preview", str(mini_run["cache"]), "--out", str(mini_run["grid"]), "--count", "3")
    import cv2

    grid = cv2.imread(str(mini_run["grid"]))
    assert grid.shape == (3 * 112, 3 * 112, 3)


def test_evaluate_prints_the_table(mini_run: dict[str, Path]) -> None:
    done = _run(
        "evaluate",
        str(mini_run["run"] / "last.pt"),
        str(mini_run["cache"]),
        "--out",
        str(mini_run["metrics"]),
        "--split",
        "all",
        "--device",
        "cpu",
    )
    for word in ("frame", "window", "video", "AUC", "log-loss", "EER"):
        assert word in done.stdout
    report = json.loads(mini_run["metrics"].read_text())
    assert report["levels"]["video"]["n"] == 3 and report["levels"]["video"]["fakes"] == 2


def test_dfstream_runs_the_checkpoint(mini_run: dict[str, Path]) -> None:
    video = REPO.parent / "shared/data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
    done = _run(
        str(video),
        "--weights",
        str(mini_run["run"] / "last.pt"),
        "--max-seconds",
        "1",
        "--jsonl",
        "-",
        module="dfstream",
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    summary = [e for e in events if e["type"] == "summary"]
    assert summary and summary[0]["error"] is None and summary[0]["crops_embedded"] > 0
    assert all(e.get("untrained") is False for e in events if e["type"] == "score")


@pytest.mark.slow
def test_dfstream_runs_the_checkpoint_with_no_other_flag(mini_run: dict[str, Path]) -> None:
    video = REPO.parent / "shared/data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
    done = _run(
        str(video), "--weights", str(mini_run["run"] / "last.pt"), module="dfstream", timeout=600
    )
    assert "519.mp4" in done.stdout
