"""Held-out-person self-blend AUC of a model: does it separate a real face from its self-blend?

``python -m training.research.sbi_heldout --data ../shared/data [--model default.pt]`` takes
the recipe's validation real footage (every fourth real video and photo by a stable hash of
its name, ``training.recipe._real_validation``: those people never train the shipped model),
cuts their crops with the recipe's settings (the product's analyzer), makes ``--pairs`` self-
blended pairs per clip with the training recipe (``training.sbi_pairs.training_pairs``: the
real crop and its blend share every augmentation), and scores every crop as a one-frame window
(as ``dfstream photo.jpg`` does). Reports the frame AUC of blend vs real, how often the blend
scores above its own real twin, and the same per clip; writes JSON.

It measures the issue's "held-out-person SBI AUC" of a finished model; it does not train.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from dfstream.model.checkpoint import load_weights
from dfstream.model.network import preprocess
from dfstream.model.shipped import default_model_path
from training import recipe as R
from training.metrics import roc_auc
from training.sbi_pairs import training_pairs


def _scores(model: Any, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """P(fake) of each crop as a one-frame window."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            feats = model.embed(preprocess(crops[start : start + batch], model.spec))
            out.append(model.score(feats[:, None, :]).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def main(argv: list[str] | None = None) -> int:
    """Measure and print; writes ``--json``."""
    p = argparse.ArgumentParser(prog="python -m training.research.sbi_heldout", description=__doc__)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    p.add_argument(
        "--work", type=Path, default=Path("runs/sbi_heldout"), help="crop cache (one per margin)"
    )
    p.add_argument("--pairs", type=int, default=40, help="self-blend pairs per clip (40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/sbi_heldout.json"))
    args = p.parse_args(argv)
    console = Console(highlight=False)
    torch.set_num_threads(2)
    started = time.perf_counter()
    path = args.model or default_model_path()
    loaded = load_weights(path)
    model = loaded.model.eval()
    # crops cut the way this model was trained and is served (its spec's margin and size)
    settings = replace(
        R.RecipeSettings(), margin=model.spec.crop_margin, size=model.spec.input_size
    )
    clips = [
        c
        for c in R.build_corpus(args.data, args.work, settings, console)
        if c.label == "REAL" and not R._is_dfl(c) and R._real_validation(c)
    ]
    rng = np.random.default_rng(args.seed)
    real_all, fake_all, per_clip = [], [], []
    for clip in clips:
        source = R._SbiSource([clip])
        if len(source.crops) == 0:
            continue
        reals, fakes = training_pairs(source, args.pairs, rng)  # type: ignore[arg-type]
        r, f = _scores(model, reals), _scores(model, fakes)
        real_all.append(r)
        fake_all.append(f)
        per_clip.append(
            {
                "clip": clip.group,
                "pairs": len(r),
                "auc": roc_auc(np.r_[np.zeros(len(r)), np.ones(len(f))], np.r_[r, f]),
                "blend_above_twin": float(np.mean(f > r)),
            }
        )
    reals_np, fakes_np = np.concatenate(real_all), np.concatenate(fake_all)
    y = np.r_[np.zeros(len(reals_np)), np.ones(len(fakes_np))]
    result: dict[str, Any] = {
        "command": "python -m training.research.sbi_heldout "
        + " ".join(str(a) for a in (sys.argv[1:] if argv is None else argv)),
        "model": loaded.name or str(path),
        "clips": len(per_clip),
        "pairs": len(reals_np),
        "frame_auc": roc_auc(y, np.r_[reals_np, fakes_np]),
        "blend_above_twin": float(np.mean(fakes_np > reals_np)),
        "mean_score_real": float(reals_np.mean()),
        "mean_score_blend": float(fakes_np.mean()),
        "per_clip": per_clip,
        "seconds": time.perf_counter() - started,
    }
    console.print(
        f"{result['model']}: held-out-person self-blend AUC {result['frame_auc']:.3f} over "
        f"{result['pairs']} pairs from {result['clips']} clips; blend above its twin "
        f"{100 * result['blend_above_twin']:.0f}%"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
