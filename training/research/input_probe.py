"""Which crop margin and input size carry DeepFaceLive's traces: a linear probe.

``python -m training.research.input_probe --data ../shared/data`` cuts the DeepFaceLive clips of
``dev/labels.csv`` with the product's analyzer at each (margin, size), embeds them with the frozen
ImageNet EfficientNet-Lite0 trunk, fits a logistic regression on the face models of
``training.recipe``'s cross-validation fold 0 training side and scores the fold's held-out face
models (frame AUC, and video AUC of the mean frame score). It compares inputs cheaply, not
finished models; results in ``benchmarks/results/input_probe.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from dfstream.model import DeepfakeNet
from training import recipe as R
from training.cache import CropCache, CropSettings
from training.manifest import Entry, Label
from training.metrics import roc_auc
from training.preprocess import DetectorChoice, run_preprocess
from training.train import load_imagenet


def probe(data: Path, work: Path, margin: float, size: int, frames: int) -> dict[str, Any]:
    rows = [
        r
        for r in csv.DictReader((data / "dev" / "labels.csv").open(encoding="utf-8"))
        if r["path"].startswith("deepfacelive/")
    ]
    entries = []
    for r in rows:
        path = str((data / "dev" / r["path"]).resolve())
        label: Label = "FAKE" if r["label"] == "FAKE" else "REAL"
        entries.append(Entry(path, label, "dfl", (r["group"],), split="train", group=r["group"]))
    root = work / f"probe-m{margin}-s{size}"
    settings = CropSettings(size=size, margin=margin, color_order="RGB", frames=frames,
                            run_length=8, detector="auto", detect_every=1)  # fmt: skip
    console = Console(stderr=True, quiet=True)
    run_preprocess(entries, root, settings, DetectorChoice("auto"), workers=1, console=console)
    cache = CropCache.open(root)
    model = DeepfakeNet(R.recipe_spec(R.RecipeSettings()).replace(input_size=size))
    load_imagenet(model, lambda _m: None)
    groups = sorted({e.group for e in entries})
    held = set(R.fold_groups(groups, 3, R.RecipeSettings().seed)[0])
    train: list[tuple[np.ndarray, int]] = []
    test: list[tuple[np.ndarray, int]] = []
    for entry in entries:
        crops = cache.load(entry)
        if crops is None or not len(crops.crops):
            continue
        feats = R.embed(model, np.asarray(crops.crops))
        (test if entry.group in held else train).append((feats, int(entry.label == "FAKE")))
    x = np.concatenate([f for f, _ in train])
    y = np.concatenate([[label] * len(f) for f, label in train]).astype(np.float64)
    w, b = R.fit_logistic(x, y, c=0.01 * len(y))
    frame_y = np.concatenate([[label] * len(f) for f, label in test])
    frame_s = np.concatenate([f @ w + b for f, _ in test])
    video_s = np.array([float((f @ w + b).mean()) for f, _ in test])
    video_y = np.array([label for _, label in test])
    return {"margin": margin, "size": size, "frame_auc": roc_auc(frame_y, frame_s),
            "video_auc": roc_auc(video_y, video_s), "held_out": sorted(held)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training.research.input_probe")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/probe"))
    parser.add_argument("--inputs", default="0.2:112,0.0:112,0.0:160,0.0:224",
                        help="comma-separated margin:size pairs")  # fmt: skip
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/input_probe.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for item in args.inputs.split(","):
        margin, size = item.split(":")
        started = time.monotonic()
        result = probe(args.data, args.work, float(margin), int(size), args.frames)
        result["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(result), flush=True)
        results.append(result)
    args.out.write_text(json.dumps({"command": "python -m training.research.input_probe",
                                    "results": results}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
