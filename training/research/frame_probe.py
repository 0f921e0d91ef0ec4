"""Which frame-stage settings make the CNN separate unseen face models' swaps: a probe.

``python -m training.research.frame_probe --data ../shared/data --variant supervised
--steps 400 --frozen 5`` runs the recipe's frame stage (``training.recipe.train_frame_classifier``:
EfficientNet-Lite0 from ImageNet, pairs drawn fresh each step) on each group-wise fold of
``training cv`` (the same folds, the same validation face model) and scores every held-out
clip's crops with the stage's own linear frame classifier - no LSTM head, no windows. Per fold
and pooled over folds it reports:

- DeepFaceLive frame AUC and video AUC (mean frame score of a clip) on the held-out face models;
- how often a held-out fake frame scores above its own real twin (the pair's same frame);
- FF++/DFDC video AUC against the fold's held-out real videos (as ``training cv``);
- the false-FAKE rate of held-out real videos at the 95th percentile of the validation real
  frames' scores.

It compares frame-stage settings cheaply; it is not the finished model's figure (``training cv``
is). Settings chosen by this probe have seen the folds' held-out groups: say so when quoting the
cross-validation of such settings.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from dfstream.model import DeepfakeNet, preprocess
from training import recipe as R
from training.metrics import roc_auc
from training.train import load_imagenet


@torch.inference_mode()
def frame_scores(model: DeepfakeNet, head: torch.nn.Module, crops: np.ndarray) -> np.ndarray:
    """P(fake) of each crop by the frame stage's linear classifier."""
    out = []
    for start in range(0, len(crops), 128):
        feats = model.embed(preprocess(np.asarray(crops[start : start + 128]), model.spec))
        out.append(torch.sigmoid(head(feats).squeeze(1)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return math.nan
    return roc_auc(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])


def run_fold(
    clips: list[R.Clip],
    groups: list[str],
    held_out: list[str],
    number: int,
    variant: str,
    s: R.RecipeSettings,
    log: Any,
    train_groups: int = 0,
    split_seed: int | None = None,
) -> dict[str, Any]:
    """One fold: train the frame stage without ``held_out``, score its held-out clips.

    ``split_seed`` (default ``s.seed``) draws the validation face model and the learning
    curve's subset; ``s.seed`` seeds the training itself, so that two training seeds can be
    compared on one split."""
    split_seed = s.seed if split_seed is None else split_seed
    remaining = [g for g in groups if g not in held_out]
    val_group = remaining[int(np.random.default_rng(split_seed + number).integers(len(remaining)))]
    split = R.make_split(clips, held_out, val_group)
    trained = sorted({c.group for c in split.train if R._is_dfl(c)})
    if train_groups:
        # a learning curve: only ``train_groups`` of the fold's training face models train
        # (seeded per fold); held-out, validation and real footage stay as they are
        keep = set(
            np.random.default_rng(split_seed + 100 + number).choice(
                trained, min(train_groups, len(trained)), replace=False
            )
        )
        split = replace(
            split, train=[c for c in split.train if not R._is_dfl(c) or c.group in keep]
        )
        trained = sorted(keep)
    model = DeepfakeNet(R.recipe_spec(s))
    load_imagenet(model, log)
    record, head = R.train_frame_classifier(model, split.train, variant, s, log)
    scores = {id(c): frame_scores(model, head, c.crops) for c in split.test + split.val}
    val_real = np.concatenate([scores[id(c)] for c in split.val if not c.fake] or [np.zeros(0)])
    threshold = float(np.quantile(val_real, 0.95)) if len(val_real) else 0.5
    dfl = [c for c in split.test if c.group in held_out]
    reals = [c for c in split.test if not c.fake]
    others = [c for c in split.test if c.generator in R.NEVER_TRAIN_GENERATORS]
    wins = []
    for real, fake, ri, fi in R.supervised_pairs(dfl):
        wins.extend((scores[id(fake)][fi] > scores[id(real)][ri]).tolist())
    mean = {id(c): float(scores[id(c)].mean()) for c in split.test}
    return {
        "fold": number,
        "test_groups": held_out,
        "val_group": val_group,
        "train_groups": trained,
        "frames": record,
        "dfl_frame_auc": _auc(
            [float(x) for c in dfl if c.fake for x in scores[id(c)]],
            [float(x) for c in dfl if not c.fake for x in scores[id(c)]],
        ),
        "dfl_video_auc": _auc(
            [mean[id(c)] for c in dfl if c.fake], [mean[id(c)] for c in dfl if not c.fake]
        ),
        "fake_above_twin": float(np.mean(wins)) if wins else math.nan,
        "ffpp_dfdc_video_auc": _auc([mean[id(c)] for c in others], [mean[id(c)] for c in reals]),
        "threshold": threshold,
        "real_false_fake": float(np.mean([mean[id(c)] >= threshold for c in reals])),
        "videos": [
            {"key": c.key, "group": c.group, "label": c.label, "score": mean[id(c)]}
            for c in split.test
        ],
    }


def summarise(
    results: list[dict[str, Any]],
    s: R.RecipeSettings,
    variant: str,
    argv: list[str] | None,
    started: float,
    train_groups: int = 0,
) -> dict[str, Any]:
    """The probe's record: settings, pooled and mean figures, every fold."""
    pooled, interval = R.pooled_held_out_auc(results)
    return {
        "command": "python -m training.research.frame_probe "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {
            k: getattr(s, k)
            for k in (
                "steps",
                "frozen_blocks",
                "lr",
                "pairs_per_step",
                "margin",
                "size",
                "seed",
                "patch",
                "extra_reals",
                "partial_swap",
            )
        },
        "variant": variant,
        "train_groups": train_groups or "all",
        "pooled_dfl_video_auc": pooled,
        "pooled_dfl_video_auc_interval": interval,
        **{
            f"mean_{k}": float(np.nanmean([r[k] for r in results]))
            for k in (
                "dfl_frame_auc",
                "dfl_video_auc",
                "fake_above_twin",
                "ffpp_dfdc_video_auc",
                "real_false_fake",
            )
        },
        "folds": results,
        "seconds": round(time.monotonic() - started, 1),
    }


def table(paths: list[Path]) -> str:
    """Markdown table of probe result files, one row each."""
    lines = [
        "| probe | folds | variant | margin | size | patch | frozen | steps | extra reals "
        "| partial swap | face models trained | DFL video AUC pooled | its 95% interval "
        "| DFL video AUC mean "
        "| DFL frame AUC mean | fake above twin | FF++/DFDC AUC | real false-FAKE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        r = json.loads(path.read_text(encoding="utf-8"))
        s = r["settings"]
        # from the stored scores, so that older files have it too
        _, interval = R.pooled_held_out_auc(r["folds"])
        spread = "n/a" if interval is None else f"[{interval['low']:.2f}, {interval['high']:.2f}]"
        lines.append(
            f"| {path.stem.removeprefix('frame_probe_')} | {len(r['folds'])} | {r['variant']} | "
            f"{s['margin']:g} | "
            f"{s['size']} | {s.get('patch', 0) or '-'} | {s['frozen_blocks']} | {s['steps']} | "
            f"{s.get('extra_reals', 0)} | {s.get('partial_swap', 0):g} | "
            f"{r.get('train_groups', 'all')} | "
            f"{r['pooled_dfl_video_auc']:.3f} | {spread} | "
            f"{r['mean_dfl_video_auc']:.3f} | {r['mean_dfl_frame_auc']:.3f} | "
            f"{r['mean_fake_above_twin']:.3f} | {r['mean_ffpp_dfdc_video_auc']:.3f} | "
            f"{r['mean_real_false_fake']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.research.frame_probe", description=__doc__)
    p.add_argument("--data", type=Path)
    p.add_argument("--work", type=Path, help="crop cache (one per margin/size)")
    p.add_argument("--variant", choices=R.VARIANTS, default="supervised")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--frozen", type=int, default=5, help="frozen Lite0 blocks (5)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--pairs", type=int, default=16, help="pairs per step (16)")
    p.add_argument("--patch", type=int, default=0, help="train on aligned patches of this side")
    p.add_argument("--extra-reals", type=int, default=0, help="unpaired real crops per step")
    p.add_argument(
        "--partial-swap",
        type=float,
        default=0.0,
        help="probability that a fake member is its real twin with one blob of the fake pasted in",
    )
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--size", type=int, default=112)
    p.add_argument(
        "--train-groups",
        type=int,
        default=0,
        help="train on only this many of each fold's training face models (a learning curve)",
    )
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--only-folds", type=int, nargs="*")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and of training")
    p.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="seed of the training alone (default: --seed): the same folds, another draw",
    )
    p.add_argument("--name", help="results file: frame_probe_NAME.json")
    p.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    p.add_argument(
        "--table", action="store_true", help="print the Markdown table of every probe result"
    )
    args = p.parse_args(argv)
    if args.table:
        print(table(sorted(args.results.glob("frame_probe_*.json"))))
        return 0
    if args.data is None or args.work is None or args.name is None:
        p.error("--data, --work and --name are needed to run a probe")
    console = Console(highlight=False)
    torch.set_num_threads(2)
    s = replace(
        R.RecipeSettings(),
        steps=args.steps,
        frozen_blocks=args.frozen,
        lr=args.lr,
        pairs_per_step=args.pairs,
        margin=args.margin,
        size=args.size,
        seed=args.seed if args.train_seed is None else args.train_seed,
        patch=args.patch,
        extra_reals=args.extra_reals,
        partial_swap=args.partial_swap,
    )
    log = lambda msg: console.print(f"probe: {msg}")  # noqa: E731
    started = time.monotonic()
    clips = R.build_corpus(args.data, args.work, s, console)
    groups = R._deepfacelive_groups(clips)
    folds = R.fold_groups(groups, args.folds, args.seed)
    results = []
    for number, held_out in enumerate(folds):
        if args.only_folds is not None and number not in args.only_folds:
            continue
        r = run_fold(
            clips, groups, held_out, number, args.variant, s, log, args.train_groups, args.seed
        )
        results.append(r)
        log(
            f"fold {number}: DFL frame {r['dfl_frame_auc']:.3f} video {r['dfl_video_auc']:.3f} "
            f"twin {r['fake_above_twin']:.3f} FF++/DFDC {r['ffpp_dfdc_video_auc']:.3f} "
            f"false-FAKE {r['real_false_fake']:.3f}"
        )
        # written after every fold, so that a run cut short keeps what it measured
        summary = summarise(results, s, args.variant, argv, started, args.train_groups)
        summary["split_seed"] = args.seed
        out = args.results / f"frame_probe_{args.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not results:
        p.error("no fold ran (--only-folds)")
    console.print(
        f"{args.name}: pooled DFL video AUC {summary['pooled_dfl_video_auc']:.3f}; mean frame "
        f"{summary['mean_dfl_frame_auc']:.3f}, video {summary['mean_dfl_video_auc']:.3f}, twin "
        f"{summary['mean_fake_above_twin']:.3f}, FF++/DFDC "
        f"{summary['mean_ffpp_dfdc_video_auc']:.3f}, false-FAKE "
        f"{summary['mean_real_false_fake']:.3f} ({summary['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
