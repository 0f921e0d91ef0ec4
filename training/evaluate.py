"""``evaluate``: frame-, window- and video-level metrics of a checkpoint on a crop cache.

Scoring follows the runtime: every crop goes through the CNN once, every window of T
consecutive crops of a track (stride 1) is scored by the temporal head.

* window level: one row per window;
* frame level: one row per crop, the mean score of the windows that contain it;
* video level: per track the mean window score, the highest track decides (as ``dfstream``'s
  whole-video verdict).

Segments shorter than T give no windows; videos without any window are counted, not scored.
With ``--sbi`` every crop is treated as real footage and scored against its self-blended copy
(one blend per segment), which measures what a self-blending detector learned on real video.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from dfstream.errors import OutputError, UsageError
from dfstream.model import DeepfakeNet, load_weights, preprocess
from training.cache import CropCache, VideoCrops
from training.metrics import Metrics, compute_metrics, roc_curve
from training.sbi import blend_window

LEVELS: tuple[str, ...] = ("frame", "window", "video")


@dataclass
class Scored:
    """Labels and scores per level, collected over many videos."""

    rows: dict[str, tuple[list[int], list[float]]]
    unscored: int = 0

    @classmethod
    def empty(cls) -> Scored:
        """No rows yet."""
        return cls({level: ([], []) for level in LEVELS})

    def add(self, level: str, label: int, scores: np.ndarray) -> None:
        """Append rows with one label."""
        labels, values = self.rows[level]
        labels.extend([label] * len(scores))
        values.extend(float(s) for s in scores)

    def arrays(self, level: str) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of one level."""
        labels, values = self.rows[level]
        return np.array(labels, np.int64), np.array(values, np.float64)


def pick_device(choice: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available here; use --device cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


@torch.no_grad()
def segment_scores(
    model: DeepfakeNet, crops: np.ndarray, device: torch.device, batch: int
) -> np.ndarray:
    """P(fake) of every stride-1 window of T crops in one segment (L - T + 1 values)."""
    spec = model.spec
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")
    features = []
    with autocast:
        for start in range(0, len(crops), batch):
            images = preprocess(np.ascontiguousarray(crops[start : start + batch]), spec)
            features.append(model.embed(images.to(device)).float())
        feats = torch.cat(features)
        windows = feats.unfold(0, spec.window, 1).permute(0, 2, 1)  # (L - T + 1, T, F)
        scores = [model.score(windows[i : i + batch]) for i in range(0, len(windows), batch)]
    return torch.cat(scores).float().cpu().numpy()


def score_video(
    model: DeepfakeNet,
    video: VideoCrops,
    label: int,
    scored: Scored,
    *,
    device: torch.device,
    batch: int,
    blend_rng: np.random.Generator | None = None,
) -> None:
    """Add one video's frame, window and video rows (self-blended first when ``blend_rng``)."""
    window = model.spec.window
    per_track: dict[int, list[np.ndarray]] = {}
    for segment in video.segments():
        if len(segment) < window:
            continue
        crops = np.asarray(video.crops[segment])
        if blend_rng is not None:
            crops = blend_window(crops, video.landmarks[segment], blend_rng)
        scores = segment_scores(model, crops, device, batch)
        scored.add("window", label, scores)
        covered = np.zeros(len(segment))
        count = np.zeros(len(segment))
        for offset in range(window):
            covered[offset : offset + len(scores)] += scores
            count[offset : offset + len(scores)] += 1
        scored.add("frame", label, covered / count)
        per_track.setdefault(int(video.track[segment[0]]), []).append(scores)
    if not per_track:
        scored.unscored += 1
        return
    best = max(float(np.mean(np.concatenate(s))) for s in per_track.values())
    scored.add("video", label, np.array([best]))


def score_videos(
    model: DeepfakeNet,
    videos: list[VideoCrops],
    *,
    device: torch.device,
    batch: int,
    sbi: bool = False,
    seed: int = 0,
) -> Scored:
    """Score every video (and, with ``sbi``, its self-blended copy); label 1 = FAKE."""
    scored = Scored.empty()
    rng = np.random.default_rng(seed)
    model.eval()
    for video in videos:
        if sbi:
            score_video(model, video, 0, scored, device=device, batch=batch)
            score_video(model, video, 1, scored, device=device, batch=batch, blend_rng=rng)
        else:
            label = 1 if video.entry.label == "FAKE" else 0
            score_video(model, video, label, scored, device=device, batch=batch)
    return scored


def metrics_table(results: dict[str, Metrics], title: str) -> Table:
    """A rich table with one row per level."""
    table = Table(title=title)
    for column in ("level", "n", "fakes", "AUC", "log-loss", "acc", "prec", "recall", "F1", "EER"):
        table.add_column(column, justify="left" if column == "level" else "right")
    for level, m in results.items():
        values = (m.auc, m.log_loss, m.accuracy, m.precision, m.recall, m.f1, m.eer)
        table.add_row(level, str(m.n), str(m.fakes), *(f"{v:.4f}" for v in values))
    return table


def plot_roc(path: Path, scored: Scored, title: str) -> bool:
    """Write the ROC curves of every level with both classes; False when there is none."""
    import matplotlib  # only needed here: the `train` extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for level in LEVELS:
        labels, scores = scored.arrays(level)
        if 0 < labels.sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.plot(fpr, tpr, label=f"{level} (n={len(labels)})")
            drawn = True
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the ROC plot ({exc})") from exc
    finally:
        plt.close(fig)
    return drawn


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    """Score a cache split with a checkpoint; print the table, write JSON and a ROC PNG."""
    loaded = load_weights(args.checkpoint)
    cache = CropCache.open(args.cache)
    if loaded.spec.input_size != cache.settings.size:
        raise UsageError(
            f"{args.cache}: crops are {cache.settings.size} px but the model expects "
            f"{loaded.spec.input_size} px; preprocess with --size {loaded.spec.input_size}"
        )
    videos = cache.select(args.split)
    if not videos:
        raise UsageError(
            f"{args.cache}: no cached videos in split {args.split!r} (try --split all)"
        )
    device = pick_device(args.device)
    model = loaded.model.to(device)
    scored = score_videos(
        model, videos, device=device, batch=args.batch, sbi=args.sbi, seed=args.seed
    )
    results = {level: compute_metrics(*scored.arrays(level)) for level in LEVELS}
    title = f"{args.checkpoint.name} on {args.split}{' (self-blended)' if args.sbi else ''}"
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = max(out.width, 110)  # a full table in logs and pipes
    out.print(metrics_table(results, title))
    roc_path = args.roc or args.out.with_name(args.out.stem + "_roc.png")
    report = {
        "checkpoint": str(args.checkpoint),
        "cache": str(args.cache),
        "split": args.split,
        "sbi": bool(args.sbi),
        "window": loaded.spec.window,
        "videos": len(videos),
        "videos_without_windows": scored.unscored,
        "levels": {level: m.to_json() for level, m in results.items()},
        "roc_png": str(roc_path),
    }
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        drawn = plot_roc(roc_path, scored, title)
    except ImportError:
        console.print("training: matplotlib is not installed (pip extra `train`): no ROC plot")
        report["roc_png"], drawn = None, True
    except OSError as exc:
        raise OutputError(f"{args.out.parent}: cannot create ({exc.strerror or exc})") from exc
    if not drawn:
        console.print("training: one class only in this split: ROC and AUC are undefined")
    try:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{args.out}: cannot write the metrics ({exc.strerror or exc})") from exc
    console.print(f"training: metrics -> {args.out}, ROC -> {report['roc_png']}")
    return 0
