"""preprocess -> sbi -> train -> evaluate on generated clips (fast) and on the mini corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from dfstream.model import load_weights
from tests.media import write_clip, write_text_as_mp4
from training.augment import AugmentSettings, augment_window, h264_roundtrip
from training.cache import CropCache, CropSettings, video_key
from training.cli import main as training_main
from training.data import WindowDataset
from training.manifest import Entry, write_manifest
from training.preprocess import DetectorChoice, run_preprocess, sample_plan
from training.sbi import draw_params, face_mask, self_blend
from training.train import load_imagenet

REPO = Path(__file__).resolve().parents[1]


def test_sample_plan_runs_are_evenly_spaced_and_consecutive() -> None:
    plan = sample_plan(100, 12, 4)
    assert sorted(plan) == [0, 1, 2, 3, 48, 49, 50, 51, 96, 97, 98, 99]
    assert [plan[i] for i in (0, 3, 48, 99)] == [0, 0, 1, 2]
    assert sorted(sample_plan(5, 32, 8)) == [0, 1, 2, 3, 4]  # short video: all of it
    assert len(sample_plan(300, 10, 1)) == 10
    assert sample_plan(0, 8, 8) == {}


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of 4 generated clips (2 'real' faces, 2 'fake' noise), whole-frame crops."""
    root = tmp_path_factory.mktemp("synthetic")
    entries = []
    for i, (pattern, label, split) in enumerate(
        [
            ("face", "REAL", "train"),
            ("noise", "FAKE", "train"),
            ("face", "REAL", "test"),
            ("noise", "FAKE", "test"),
        ]
    ):
        clip = write_clip(root / f"{pattern}{i}.mp4", frames=24, size=(48, 48), pattern=pattern)
        entries.append(Entry(str(clip), label, "x", (f"x:{i}",), split=split, group=f"x:{i}"))
    manifest = root / "manifest.csv"
    write_manifest(manifest, entries)
    cache = root / "cache"
    code = training_main(
        [
            "preprocess",
            str(manifest),
            "--out",
            str(cache),
            "--frames",
            "8",
            "--run-length",
            "4",
            "--size",
            "32",
            "--detector",
            "none",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    return cache


def test_preprocess_writes_compact_crops_and_resumes(synthetic_cache: Path) -> None:
    cache = CropCache.open(synthetic_cache)
    assert cache.settings == CropSettings(
        size=32, margin=0.2, frames=8, run_length=4, detector="none", detect_every=5
    )
    videos = cache.select("all")
    assert len(videos) == 4
    for video in videos:
        assert video.crops.dtype == np.uint8 and video.crops.shape == (8, 32, 32, 3)
        assert video.frame_index.tolist() == [0, 1, 2, 3, 20, 21, 22, 23]
        assert [len(s) for s in video.segments()] == [4, 4]
        assert np.isnan(video.landmarks).all()  # whole-frame "detector": no landmarks
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.videos_dir.iterdir()}
    entries = cache.entries()
    counts = run_preprocess(
        entries,
        synthetic_cache,
        cache.settings,
        DetectorChoice("none"),
        workers=1,
        console=Console(file=None, quiet=True),
    )
    assert counts["skipped"] == 4 and counts["done"] == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in cache.videos_dir.iterdir()}


def test_preprocess_records_a_broken_video_and_exits_3(tmp_path: Path) -> None:
    good = write_clip(tmp_path / "good.mp4", frames=10, size=(32, 32), pattern="face")
    bad = write_text_as_mp4(tmp_path / "bad.mp4")
    write_manifest(
        tmp_path / "m.csv",
        [
            Entry(str(good), "REAL", "x", ("a",), split="train"),
            Entry(str(bad), "FAKE", "x", ("b",), split="train"),
        ],
    )
    args = [
        "preprocess",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "c"),
        "--frames",
        "4",
        "--detector",
        "none",
        "--workers",
        "2",
        "--size",
        "32",
    ]
    assert training_main(args) == 3
    cache = CropCache.open(tmp_path / "c")
    assert cache.is_done(video_key(str(good))) and not cache.is_done(video_key(str(bad)))
    assert "not a readable video" in cache.paths(video_key(str(bad)))[2].read_text()
    rows = (tmp_path / "c" / "manifest.csv").read_text().splitlines()
    assert rows[0].endswith("key,crops,error") and "not a readable video" in rows[2]


def test_self_blend_changes_only_the_masked_face() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    landmarks = np.array([[22, 26], [42, 26], [32, 36], [25, 46], [39, 46]], np.float32)
    params = draw_params(rng)
    fake, mask = self_blend(crop, landmarks, params)
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask[36, 32] > 0.9
    outside = mask < 1e-4
    assert outside[0, 0] and np.array_equal(fake[outside], crop[outside])
    assert np.abs(fake.astype(int) - crop)[mask > 0.9].mean() > 1.0
    again, _ = self_blend(crop, landmarks, params)
    assert np.array_equal(fake, again)  # one parameter draw -> one result


def test_mask_falls_back_to_an_ellipse_without_landmarks() -> None:
    params = draw_params(np.random.default_rng(0))
    mask = face_mask(None, 64, params)
    nan_mask = face_mask(np.full((5, 2), np.nan, np.float32), 64, params)
    assert np.array_equal(mask, nan_mask)
    assert mask[33, 32] > 0.9 and mask[0, 0] < 1e-3 and mask[63, 63] < 1e-3


def test_augmentations_keep_shape_and_compress_for_real() -> None:
    rng = np.random.default_rng(0)
    window = np.stack(
        [
            np.roll(
                np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))[..., None].repeat(3, 2),
                i,
                axis=1,
            )
            for i in range(4)
        ]
    )
    coded = h264_roundtrip(window, 40)
    assert coded.shape == window.shape and not np.array_equal(coded, window)
    for _ in range(10):
        out = augment_window(window, rng)
        assert out.shape == window.shape and out.dtype == np.uint8


def test_sbi_dataset_is_balanced_and_uses_real_videos_only(synthetic_cache: Path) -> None:
    from dfstream.model import native_spec

    videos = CropCache.open(synthetic_cache).select("train")
    spec = native_spec(backbone="small", input_size=32, window=4)
    dataset = WindowDataset(videos, spec, sbi=True, augment=AugmentSettings(jpeg=1.0))
    assert dataset.class_counts() == {"REAL": 2, "FAKE": 2}  # 1 real video, 2 segments
    torch.manual_seed(0)
    clips, targets = dataset[1]
    assert clips.shape == (2, 4, 3, 32, 32)
    assert [spec.labels[int(t)] for t in targets] == ["REAL", "FAKE"]
    assert not torch.equal(clips[0], clips[1])
    plain = WindowDataset(videos, spec, sbi=False, augment=None)
    assert plain.class_counts() == {"REAL": 2, "FAKE": 2}  # 2 videos x 2 segments
    clips, targets = plain[0]
    assert clips.shape == (1, 4, 3, 32, 32) and targets.shape == (1,)


def test_train_resume_evaluate_and_load_in_dfstream(
    synthetic_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    base = [
        "train",
        str(synthetic_cache),
        "--out",
        str(run),
        "--backbone",
        "small",
        "--batch",
        "2",
        "--max-steps",
        "1",
        "--window",
        "4",
        "--device",
        "cpu",
    ]
    assert training_main([*base, "--epochs", "1"]) == 0
    assert training_main([*base, "--epochs", "2", "--max-steps", "2", "--resume"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["step"] == 2
    assert "val_auc" not in records[0]  # no val split in this cache
    for name in ("epoch_001.pt", "epoch_002.pt", "last.pt", "best.pt", "state.pt"):
        assert (run / name).is_file()
    loaded = load_weights(run / "last.pt")
    assert (loaded.spec.backbone, loaded.spec.window, loaded.spec.input_size) == ("small", 4, 32)
    assert loaded.spec.crop_margin == 0.0 and loaded.info["epoch"] == 2
    out = tmp_path / "metrics.json"
    capsys.readouterr()
    assert (
        training_main(
            [
                "evaluate",
                str(run / "last.pt"),
                str(synthetic_cache),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "window" in printed and "AUC" in printed and "EER" in printed
    report = json.loads(out.read_text())
    # test split: 2 videos x 2 segments of 4 crops, T = 4 -> one window per segment
    assert report["levels"]["window"]["n"] == 4 and report["levels"]["frame"]["n"] == 16
    assert report["levels"]["video"]["n"] == 2
    assert Path(report["roc_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretrained_offline_is_one_notice_and_random_init(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import models

    from dfstream.model import DeepfakeNet, native_spec

    def offline(*_args: object, **_kwargs: object) -> None:
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    model = DeepfakeNet(native_spec(backbone="small", input_size=32, window=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    notices: list[str] = []
    assert load_imagenet(model, notices.append) is False
    assert len(notices) == 1 and "random initialisation" in notices[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_every_command_has_help() -> None:
    for command in ("index", "preprocess", "sbi-preview", "train", "evaluate"):
        done = subprocess.run(
            [sys.executable, "-m", "training", command, "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "--out" in done.stdout, command


@pytest.mark.gpu
def test_train_on_cuda_with_mixed_precision(synthetic_cache: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA torch (fp16 autocast + GradScaler path)")
    run = tmp_path / "run"
    args = ["train", str(synthetic_cache), "--out", str(run), "--backbone", "small"]
    assert training_main([*args, "--max-steps", "2", "--batch", "2", "--device", "cuda"]) == 0
    assert load_weights(run / "last.pt").spec.backbone == "small"


def test_train_sbi_uses_real_videos_in_pairs(
    synthetic_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "sbi"
    args = [
        "train",
        str(synthetic_cache),
        "--out",
        str(run),
        "--backbone",
        "small",
        "--sbi",
        "--batch",
        "4",
        "--max-steps",
        "1",
        "--window",
        "4",
        "--device",
        "cpu",
    ]
    assert training_main(args) == 0
    err = capsys.readouterr().err
    assert "4 windows per epoch {'REAL': 2, 'FAKE': 2}" in err
    assert load_weights(run / "last.pt").info["sbi"] is True
