"""``python -m benchmarks.quality`` on a tiny labelled set of generated clips: it runs the
product's path, its numbers agree with the per-video scores it records, the threshold in use is
the checkpoint's unless ``--threshold`` is given, groups filter, bad input is one line with an
exit code, and the public ResNeXt50+LSTM layout runs through it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import main
from dfstream.model import build_model, native_spec, save_checkpoint
from tests.media import Pattern, write_clip
from training.metrics import compute_metrics, grouped_auc_interval

FAST = ["--detector", "none", "--backend", "torch", "--device", "cpu", "--precision", "fp32",
        "--stride", "2", "--limit-frames", "12"]  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 16-frame clips in two folders and a CSV with a header and a comment line."""
    root = tmp_path_factory.mktemp("quality")
    rows = ["path,label,generator,face_model,group", "# a comment line"]
    clips: list[tuple[str, Pattern, str]] = [
        ("REAL", "moving_square", "original"),
        ("REAL", "face", "original"),
        ("FAKE", "face", "gen_a"),
        ("FAKE", "noise", "gen_b"),
    ]
    for i, (label, pattern, generator) in enumerate(clips):
        folder = "real" if label == "REAL" else "fake"
        (root / folder).mkdir(exist_ok=True)
        write_clip(root / folder / f"v{i}.mp4", frames=16, size=(96, 96), pattern=pattern)
        rows.append(f"{folder}/v{i}.mp4,{label},{generator},,g{i}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    model = build_model(native_spec(backbone="tiny", window=4), seed=5)
    save_checkpoint(root / "tiny.pt", model, info={"name": "tiny-q", "threshold": 0.0}, half=True)
    return root


def _result(out: Path, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((out / f"quality_{name}.json").read_text())


def test_quality_on_a_labelled_csv(labelled: Path, tmp_path: Path) -> None:
    args = ["--labels", str(labelled / "labels.csv"), "--weights", str(labelled / "tiny.pt"),
            "--out-dir", str(tmp_path), "--name", "csv", *FAST]  # fmt: skip
    assert main(args) == 0
    result = _result(tmp_path, "csv")
    assert result["model"]["name"] == "tiny-q" and result["videos"] == 4
    assert result["threshold"] == 0.0 and "checkpoint" in result["threshold_in_use"]
    videos = result["per_video"]
    assert [v["windows"] for v in videos] == [5, 5, 5, 5]  # 12 crops, T=4, stride 2
    # Threshold 0 calls everything FAKE: recall 1, every REAL a false FAKE.
    mean = result["levels"]["video_mean"]
    assert (mean["recall"], mean["false_fake_rate"], mean["accuracy"]) == (1.0, 1.0, 0.5)
    labels = np.array([v["label"] for v in videos])
    expected = compute_metrics(labels, np.array([v["mean"] for v in videos]), 0.0)
    assert mean["auc"] == pytest.approx(expected.auc) and mean["n"] == 4
    assert result["levels"]["window"]["n"] == 20 and result["levels"]["window"]["fakes"] == 10
    # the AUC's interval resamples the CSV's groups (one video each here); windows go with
    # their video's group, so the window level has four groups too, not twenty rows
    interval = grouped_auc_interval(labels, np.array([v["mean"] for v in videos]),
                                    ["g0", "g1", "g2", "g3"])  # fmt: skip
    assert interval is not None and mean["auc_interval"] == interval.to_json()
    assert result["levels"]["window"]["auc_interval"]["groups"] == 4
    gens = result["generators"]
    assert set(gens) == {"original", "gen_a", "gen_b"}
    assert gens["gen_a"]["videos"] == 1 and gens["gen_a"]["called_fake"] == 1.0
    reals = [v["mean"] for v in videos if v["label"] == 0]
    gen_b = compute_metrics(np.array([0, 0, 1]), np.array([*reals, videos[3]["mean"]]), 0.0)
    assert gens["gen_b"]["auc_vs_all_real"] == pytest.approx(gen_b.auc)
    assert "auc_vs_all_real" not in gens["original"]
    assert result["product_verdicts"]["REAL"] == {"FAKE": 2}
    md = (tmp_path / "quality_csv.md").read_text()
    assert "tiny-q" in md and "| video_mean | 4 | 2 |" in md and "AUC 95%" in md
    assert f"| {mean['auc_interval']['low']:.2f}-{mean['auc_interval']['high']:.2f} |" in md
    assert "resampling 4 groups" in md
    pytest.importorskip("matplotlib")
    assert (tmp_path / "quality_csv_roc.png").stat().st_size > 1000


def test_folders_threshold_override_and_groups(labelled: Path, tmp_path: Path) -> None:
    args = ["--real", str(labelled / "real"), "--fake", str(labelled / "fake"),
            "--weights", str(labelled / "tiny.pt"), "--out-dir", str(tmp_path), *FAST]  # fmt: skip
    assert main([*args, "--name", "dirs", "--threshold", "1"]) == 0
    result = _result(tmp_path, "dirs")
    assert result["threshold"] == 1.0 and "--threshold" in result["threshold_in_use"]
    assert result["levels"]["video_mean"]["recall"] == 0.0
    assert set(result["generators"]) == {"real", "fake"}
    csv = ["--labels", str(labelled / "labels.csv"), "--weights", str(labelled / "tiny.pt"),
           "--out-dir", str(tmp_path), *FAST]  # fmt: skip
    assert main([*csv, "--name", "some", "--exclude-groups", "g0,g3"]) == 0
    assert [Path(v["path"]).name for v in _result(tmp_path, "some")["per_video"]] == [
        "v1.mp4",
        "v2.mp4",
    ]


@pytest.mark.parametrize(
    ("csv_text", "code", "message"),
    [
        ("real/v0.mp4,MAYBE\n", 2, "label 'MAYBE'"),
        ("real/nope.mp4,REAL\n", 3, "nope.mp4: no such video"),
        ("real/v0.mp4\n", 2, "expected path,label"),
    ],
)
def test_bad_labels_are_one_line_errors(
    labelled: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], csv_text: str, code: int,
    message: str,
) -> None:  # fmt: skip
    bad = labelled / f"bad{code}{len(csv_text)}.csv"
    bad.write_text(csv_text)
    assert main(["--labels", str(bad), "--weights", str(labelled / "tiny.pt"), *FAST]) == code
    err = capfd.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_public_resnext_layout_runs_through_the_harness(labelled: Path, tmp_path: Path) -> None:
    """A random state dict in the public checkpoints' layout, loaded by the compat loader."""
    args = ["--real", str(labelled / "real"), "--fake", str(labelled / "fake"), "--random-compat",
            "--window", "2", "--out-dir", str(tmp_path), "--name", "compat", *FAST,
            "--limit-frames", "4"]  # fmt: skip
    assert main(args) == 0
    result = _result(tmp_path, "compat")
    assert result["model"]["kind"] == "compat" and result["model"]["backbone"] == "resnext50"
    assert result["model"]["name"] == "model_0_acc_2_frames_random.pt"
    assert result["scored_videos"] == 4 and result["levels"]["window"]["n"] == 4 * 2
