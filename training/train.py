"""``train``: fit a ``DeepfakeNet`` on a crop cache and write dfstream checkpoints.

Every epoch writes ``RUN/epoch_NNN.pt`` and ``RUN/last.pt`` (``save_checkpoint``: weights plus
the ``ModelSpec`` - backbone, input size, mean/std, colour order, T, labels, crop margin - so
``dfstream VIDEO --weights RUN/last.pt`` needs no other flag), ``RUN/best.pt`` when the
validation AUC (or, without validation, the training loss) improved, ``RUN/state.pt`` (optimizer
and progress, for ``--resume``) and one line of ``RUN/metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.data import DataLoader

from dfstream.errors import UsageError, WeightsError
from dfstream.faces import margin_for_detector
from dfstream.model import DeepfakeNet, ModelSpec, native_spec, save_checkpoint
from dfstream.model.backbones import get_backbone
from training.augment import AugmentSettings
from training.cache import CropCache
from training.data import WindowDataset, balanced_sampler
from training.evaluate import pick_device, score_videos
from training.metrics import compute_metrics


def load_imagenet(
    model: DeepfakeNet, notice: Callable[[str], None], *, file: Path | None = None
) -> bool:
    """Initialise the trunk with its backbone's ImageNet weights, as the registry says where
    they come from (``file`` overrides). Weights that must be downloaded (torchvision's) and
    cannot be had are one notice and the random init is kept; weights that an installed
    package ships (EfficientNet-Lite0's), or an explicit ``file``, are an error when missing."""
    entry = get_backbone(model.spec.backbone)
    if entry.imagenet is None:
        raise UsageError(f"--pretrained: backbone {entry.name} has no ImageNet weights")
    try:
        entry.imagenet(model.model, file)
    except WeightsError as exc:
        if file is not None or not entry.imagenet_source.startswith("torchvision"):
            raise
        notice(f"{exc}; starting from random initialisation")
        return False
    notice(f"ImageNet weights for {entry.name} from {file or entry.imagenet_source}")
    return True


def cosine_factor(step: int, planned: int, floor: float = 0.02) -> float:
    """Learning-rate factor at ``step`` of ``planned``: cosine from 1 down to ``floor``."""
    progress = min(step, planned) / max(planned, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _spec_for(args: argparse.Namespace, cache: CropCache) -> ModelSpec:
    settings = cache.settings
    window = args.window or settings.run_length
    if window > settings.run_length:
        raise UsageError(
            f"--window {window}: the cache holds runs of {settings.run_length} consecutive "
            "frames; preprocess with --run-length >= the window"
        )
    return native_spec(
        backbone=args.backbone,
        input_size=settings.size,
        crop_margin=margin_for_detector(settings.detector, settings.margin),
        color_order=settings.color_order,
        window=window,
    )


def _restore(
    run: Path, model: DeepfakeNet, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> tuple[int, int, float]:
    path = run / "state.pt"
    if not path.is_file():
        raise UsageError(f"--resume: {path} not found; start without --resume")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if ModelSpec.from_json(state["spec"]) != model.spec:
        raise WeightsError(f"{path}: was trained with another model spec; use another --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), int(state["step"]), float(state["best"])


def _save_state(
    run: Path,
    model: DeepfakeNet,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    step: int,
    best: float,
) -> None:
    state = {
        "spec": model.spec.to_json(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "step": step,
        "best": best,
    }
    tmp = run / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(run / "state.pt")


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    """Train; see the module docstring for what lands in ``--out``."""
    notice = lambda msg: console.print(f"training: {msg}", highlight=False)  # noqa: E731
    cache = CropCache.open(args.cache)
    spec = _spec_for(args, cache)
    torch.manual_seed(args.seed)
    train_videos = cache.select(args.split)
    dataset = WindowDataset(train_videos, spec, sbi=args.sbi, augment=AugmentSettings())
    counts = dataset.class_counts()
    if len(counts) < 2:
        hint = "" if args.sbi else "; with only real footage, train with --sbi"
        raise UsageError(
            f"{args.cache}: split {args.split!r} has windows of T={spec.window} for "
            f"{sorted(counts) or 'no'} class(es) only{hint}"
        )
    # Validating on videos that are also trained on would only flatter the numbers.
    overlap = args.split == "all" or args.val_split == args.split
    val_videos = [] if overlap else cache.select(args.val_split)
    device = pick_device(args.device)
    model = DeepfakeNet(spec)
    if (args.pretrained or args.pretrained_file) and not args.resume:
        load_imagenet(model, notice, file=args.pretrained_file)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    epoch, step, best = 0, 0, -math.inf
    if args.resume:
        epoch, step, best = _restore(args.out, model, optimizer, scaler)
        notice(f"resuming after epoch {epoch}, step {step}")
    per_item = 2 if args.sbi else 1  # a self-blending item is a real/pseudo-fake pair
    loader = DataLoader(
        dataset,
        batch_size=max(1, args.batch // per_item),
        sampler=balanced_sampler(dataset),
        num_workers=args.workers,
        drop_last=len(dataset) > max(1, args.batch // per_item),
        pin_memory=device.type == "cuda",
    )
    notice(
        f"{spec.backbone}, T={spec.window}, {sum(counts.values())} windows per epoch {counts}, "
        f"{len(val_videos)} validation videos, device {device}"
    )
    loss_fn = nn.CrossEntropyLoss()
    planned = args.epochs * len(loader)
    planned = min(planned, args.max_steps) if args.max_steps is not None else planned
    info = {"cache": str(args.cache), "sbi": bool(args.sbi), "split": args.split}
    while epoch < args.epochs and (args.max_steps is None or step < args.max_steps):
        started, total, correct, seen = time.monotonic(), 0.0, 0, 0
        model.train()
        columns = (
            TextColumn(f"[bold]epoch {epoch + 1}/{args.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("train", total=len(loader), loss=math.nan)
            for clips, targets in loader:
                # (B, K, T, 3, S, S) with K = 2 for real/self-blended pairs -> (B*K, T, 3, S, S)
                clips = clips.flatten(0, 1).to(device, non_blocking=True)
                targets = targets.flatten().to(device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                    n, t = clips.shape[:2]
                    feats = model.embed(clips.flatten(0, 1)).view(n, t, -1)
                    logits = model.logits(feats.float())
                    loss = loss_fn(logits.float(), targets)
                for group in optimizer.param_groups:
                    group["lr"] = args.lr * cosine_factor(step, planned)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                total += float(loss.detach()) * n
                correct += int((logits.argmax(1) == targets).sum())
                seen += n
                progress.update(task, advance=1, loss=total / seen)
                if args.max_steps is not None and step >= args.max_steps:
                    break
        epoch += 1
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "train_loss": total / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "seconds": round(time.monotonic() - started, 1),
        }
        if val_videos:
            scored = score_videos(model, val_videos, device=device, batch=32, sbi=args.sbi)
            val = compute_metrics(*scored.arrays("window"))
            record.update({f"val_{k}": v for k, v in val.to_json().items() if k != "fakes"})
        quality = record.get("val_auc")
        quality = -record["train_loss"] if quality is None else quality
        model.eval()
        meta = {**info, **record}
        save_checkpoint(args.out / f"epoch_{epoch:03d}.pt", model, info=meta)
        save_checkpoint(args.out / "last.pt", model, info=meta)
        if quality > best:
            best = quality
            save_checkpoint(args.out / "best.pt", model, info=meta)
        _save_state(args.out, model, optimizer, scaler, epoch, step, best)
        with (args.out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        notice(
            " ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
            )
        )
    notice(f"checkpoints -> {args.out} (last.pt, best.pt, epoch_*.pt)")
    return 0
