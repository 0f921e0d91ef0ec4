"""Does self-blending carry a learnable signal? Train on one person, test on another.

Crops come from the real command line (``python -m training preprocess``, YuNet, 112 px, one
crop per sampled frame) for FF++ ``519.mp4`` (training) and DFDC ``brtujopkby.mp4`` (test: a
different person, pose, camera, resolution and compression, never seen in training).

The model is a dedicated *local* detector, ``LocalBlendNet``, not dfstream's DeepfakeNet:

* input: the crop resized to ``--size`` (64 px), each channel standardised per crop (minus its
  mean, over its standard deviation), so absolute colour, brightness and contrast - most of what
  tells two people and two cameras apart - are gone;
* five 3x3 convolutions (48 channels, BatchNorm, ReLU) with one 2x2 max-pool after the second:
  a receptive field of 18 px at 64 px, too small to see a whole face, so it cannot learn who or
  which pose it is looking at, only local texture such as a blending boundary or a patch blurred,
  sharpened or colour-shifted against its surroundings;
* global mean and max pooling of the feature map, then one linear unit (logit of FAKE).
  About 85 k parameters, random init, AdamW with a one-cycle schedule, binary cross-entropy.

Training data: ``--pairs`` (real crop, its self-blend) pairs made with ``training.sbi`` (one
``blend_window`` draw, T = 1) and ``training.augment.augment_window`` with the same seed for
both members (flip, colour cast, blur, resampling, JPEG, H.264), so augmentation carries no label.
Each batch holds half reals and their own blends. Test: every cached crop of brtujopkby once as
REAL and once self-blended (a fixed seed per crop), no augmentation; the figure is the
frame-level AUC (``training.metrics``), bar 0.9. The same is reported on 519's own crops.
Before this model the benchmark trained ``--backbone small`` (a ResNet18 trunk on raw crops)
through ``python -m training train --sbi``; that learned 519's identity and colour and reached
only 0.62 on brtujopkby.

Needs ``../shared``. Run from the repository root (single-threaded torch, CPU)::

    python -m benchmarks.sbi_signal [--steps 250] [--pairs 1500] [--size 64]

Results go to ``benchmarks/results/sbi_signal.json``. Timings on the shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.augment import AugmentSettings, augment_window
from training.cache import CropCache, VideoCrops
from training.metrics import equal_error_rate, roc_auc
from training.sbi import blend_window

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TRAIN_VIDEO = SHARED / "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
TEST_VIDEO = SHARED / "data/mini/dfdc/dfdc_train_part_0/brtujopkby.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
RESULT = REPO / "benchmarks" / "results" / "sbi_signal.json"
CACHE_SIZE = 112


class LocalBlendNet(nn.Module):
    """A small fully convolutional FAKE detector with an 18 px receptive field (see above)."""

    def __init__(self, width: int = 48) -> None:
        """Five 3x3 conv layers of ``width`` channels, one max-pool, mean+max pooling, linear."""
        super().__init__()

        def block(cin: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3), *block(width), nn.MaxPool2d(2), *block(width), *block(width), *block(width)
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of FAKE, shape (N,), for standardised crops (N, 3, S, S)."""
        z = self.features(x)
        return self.head(torch.cat([z.mean(dim=(2, 3)), z.amax(dim=(2, 3))], dim=1)).squeeze(1)


def standardise(crops: np.ndarray, size: int) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, size, size) float; per crop and channel mean 0, std 1."""
    if crops.shape[1] != size:
        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
    t = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    mean, std = t.mean(dim=(2, 3), keepdim=True), t.std(dim=(2, 3), keepdim=True)
    return (t - mean) / (std + 1e-4)


def training_pairs(
    video: VideoCrops, count: int, rng: np.random.Generator, zoom: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (real, self-blended) crops, each pair augmented with one shared draw.

    With ``zoom`` < 1 both members are first cut to one random square of ``zoom``..1 of the
    side and resized back (texture scale varies between people and cameras).
    """
    settings = AugmentSettings()
    reals, fakes = [], []
    for _ in range(count):
        i = int(rng.integers(len(video.crops)))
        real = np.asarray(video.crops[i : i + 1])
        fake = blend_window(real, video.landmarks[i : i + 1], rng)
        seed = int(rng.integers(2**62))
        pair = (real, fake)
        if zoom < 1.0:
            side = real.shape[1]
            cut = int(rng.integers(round(side * zoom), side + 1))
            y, x = (int(v) for v in rng.integers(0, side - cut + 1, 2))
            pair = tuple(
                np.stack([cv2.resize(c[y : y + cut, x : x + cut], (side, side)) for c in member])
                for member in pair
            )
        reals.append(augment_window(pair[0], np.random.default_rng(seed), settings)[0])
        fakes.append(augment_window(pair[1], np.random.default_rng(seed), settings)[0])
    return np.stack(reals), np.stack(fakes)


def test_set(video: VideoCrops, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every crop of ``video`` as REAL, and one self-blend of each (seed + crop index)."""
    reals = np.asarray(video.crops)
    fakes = np.concatenate(
        [
            blend_window(
                reals[i : i + 1], video.landmarks[i : i + 1], np.random.default_rng(seed + i)
            )
            for i in range(len(reals))
        ]
    )
    return reals, fakes


def score(net: nn.Module, reals: np.ndarray, fakes: np.ndarray, size: int) -> dict[str, float]:
    """Frame-level AUC and EER of ``net`` (label 1 = self-blended)."""
    net.eval()
    with torch.no_grad():
        s = torch.sigmoid(net(standardise(np.concatenate([reals, fakes]), size))).numpy()
    net.train()
    labels = np.r_[np.zeros(len(reals)), np.ones(len(fakes))]
    return {"auc": roc_auc(labels, s), "eer": equal_error_rate(labels, s), "n": len(labels)}


def crop_cache(work: Path, frames: int) -> CropCache:
    """Cut the crops of both videos with ``python -m training preprocess`` (fixed split)."""
    manifest = work / "manifest.csv"
    manifest.write_text(
        "path,label,dataset,split,group\n"
        f"{TRAIN_VIDEO},REAL,ffpp,train,ffpp:519\n"
        f"{TEST_VIDEO},REAL,dfdc,test,dfdc:gnmmhlbzge\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "training", "preprocess", str(manifest), "--out"]
    command += [str(work / "cache"), "--frames", str(frames), "--run-length", "1"]
    command += ["--size", str(CACHE_SIZE), "--detector", "yunet", "--detector-model", str(YUNET)]
    subprocess.run([*command, "--workers", "2"], cwd=REPO, check=True)
    return CropCache.open(work / "cache")


def train(
    args: argparse.Namespace, video: VideoCrops, log: list[dict[str, float]]
) -> LocalBlendNet:
    """Train ``LocalBlendNet`` on real / self-blended pairs of ``video``."""
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    reals, fakes = training_pairs(video, args.pairs, rng, args.zoom)
    x = torch.cat([standardise(reals, args.size), standardise(fakes, args.size)])
    y = torch.cat([torch.zeros(len(reals)), torch.ones(len(fakes))])
    net = LocalBlendNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2 * args.lr, total_steps=args.steps)
    for step in range(args.steps):
        idx = torch.randint(0, len(reals), (args.batch // 2,))
        both = torch.cat([idx, idx + len(reals)])
        loss = F.binary_cross_entropy_with_logits(net(x[both]), y[both])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            log.append({"step": step + 1, "loss": round(loss.item(), 4)})
            print(f"step {step + 1:>5}  loss {loss.item():.4f}", flush=True)
    return net


def main(argv: list[str] | None = None) -> int:
    """Run the experiment and record the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--pairs", type=int, default=1500, help="augmented training pairs")
    parser.add_argument("--frames", type=int, default=160, help="crops cached per video")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="model input side in pixels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--zoom", type=float, default=1.0, help="random crop, fraction of side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    for path in (TRAIN_VIDEO, TEST_VIDEO, YUNET):
        if not path.is_file():
            print(f"sbi_signal: {path} is absent; this benchmark needs ../shared", file=sys.stderr)
            return 2
    torch.set_num_threads(1)
    log: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="sbi-signal-") as tmp:
        started = time.monotonic()
        cache = crop_cache(Path(tmp), args.frames)
        t_pre = time.monotonic() - started
        (train_video,), (test_video,) = cache.select("train"), cache.select("test")
        started = time.monotonic()
        net = train(args, train_video, log)
        t_train = time.monotonic() - started
        started = time.monotonic()
        unseen = score(net, *test_set(test_video, args.seed + 100), args.size)
        seen = score(net, *test_set(train_video, args.seed + 100), args.size)
        t_eval = time.monotonic() - started
    result = {
        "benchmark": "sbi_signal",
        "question": "real vs self-blended crops: train on 519.mp4, test on brtujopkby.mp4",
        "frame_auc": unseen["auc"],
        "frame_eer": unseen["eer"],
        "test_rows": unseen["n"],
        "passes_0_9": unseen["auc"] >= 0.9,
        "train_person_frame_auc": seen["auc"],
        "model": "LocalBlendNet: per-crop channel standardisation, 5x conv3x3 (48 ch, BN, ReLU), "
        "one max-pool, receptive field 18 px at 64 px, global mean+max pooling, linear; "
        f"{sum(p.numel() for p in net.parameters())} parameters, random init",
        "window": 1,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "loss_log": log,
        "seconds": {
            "preprocess": round(t_pre, 1),
            "train": round(t_train, 1),
            "evaluate": round(t_eval, 1),
        },
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "note": "CPU only (1 torch thread), shared with other jobs: timings are noisy",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'metric':<24}{'value':>10}")
    for key in ("frame_auc", "frame_eer", "train_person_frame_auc", "test_rows"):
        value = result[key]
        print(f"{key:<24}{value:>10.4f}" if isinstance(value, float) else f"{key:<24}{value!s:>10}")
    print(f"-> {args.out}")
    return 0 if result["passes_0_9"] else 1


if __name__ == "__main__":
    sys.exit(main())
