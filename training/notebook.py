"""What ``notebooks/train_on_colab.ipynb`` calls besides the commands themselves.

Every step of the notebook is one ``python -m training ...`` or ``python -m dfstream ...``
command run by ``run_command`` (its output streamed into the cell line by line, a failure raised
as ``StepFailed`` with the command's last line), so that a cell stays a thin wrapper that is the
same command a user would type. This module holds what the cells would otherwise repeat, and
what deserves a test: the split counts of a manifest, a grid of cached face crops, the loss/AUC
curves of ``metrics.jsonl`` (redrawn while training runs), and how long training will take here
(a quick measurement of training speed on this runtime and the steps the run plans).
(The runtime checks come before dfstream is installed, so they are in the notebook itself.)
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np


class StepFailed(RuntimeError):
    """A notebook step's command exited with an error (the message ends with its last line)."""


def run_command(
    argv: Sequence[str | Path],
    *,
    cwd: Path,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
) -> int:
    """Run ``argv`` in ``cwd``, printing its output (stdout and stderr) as it comes.

    ``on_line`` is called after every line (live plots). With ``check`` a non-zero exit raises
    ``StepFailed`` naming the command, its exit code and its last output line. Tables are laid
    out for ``COLUMNS`` (default 110 here: a notebook cell is wider than rich's 80 for pipes).
    """
    args = [str(a) for a in argv]
    shown = " ".join(args[2:] if args[:2] == [sys.executable, "-m"] else args)
    print(f"$ {shown}", flush=True)
    last = ""
    with subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={"COLUMNS": "110", **os.environ},
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            last = line.strip() or last
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    if check and code != 0:
        raise StepFailed(f"`{shown}` exited with {code}: {last}")
    return code


def split_counts(manifest: Path) -> dict[str, dict[str, int]]:
    """Videos per split and label of a ``python -m training index`` manifest."""
    from training.manifest import read_manifest

    counts = Counter((e.split, e.label) for e in read_manifest(manifest))
    out: dict[str, dict[str, int]] = {}
    for (split, label), n in sorted(counts.items()):
        out.setdefault(split, {"REAL": 0, "FAKE": 0})[label] = n
    return out


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    """A small plain-text table of ``split_counts``."""
    rows = [f"{'split':<10}{'REAL':>6}{'FAKE':>6}"]
    rows += [f"{s:<10}{c['REAL']:>6}{c['FAKE']:>6}" for s, c in counts.items()]
    return "\n".join(rows)


def crop_grid(cache: Path, *, count: int = 12, per_row: int = 6, seed: int = 0) -> np.ndarray:
    """An RGB grid of ``count`` cached face crops drawn from as many videos as possible, each
    with a REAL/FAKE stripe at the top (green/red)."""
    from training.cache import CropCache

    opened = CropCache.open(cache)
    videos = [v for v in opened.select("all") if len(v.frame_index)]
    if not videos:
        raise StepFailed(f"{cache}: no face crops in the cache (did preprocess find faces?)")
    rng = np.random.default_rng(seed)
    picks = [videos[i % len(videos)] for i in rng.permutation(max(count, len(videos)))[:count]]
    size = opened.settings.size
    tiles = []
    for video in picks:
        crop = np.array(video.crops[int(rng.integers(len(video.frame_index)))])
        if opened.settings.color_order == "BGR":
            crop = crop[..., ::-1]
        crop[: max(2, size // 16)] = (40, 180, 60) if video.entry.label == "REAL" else (220, 40, 40)
        tiles.append(crop)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
    rows = [np.concatenate(tiles[i : i + per_row], axis=1) for i in range(0, len(tiles), per_row)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB image (for ``IPython.display.Image(data=...)``)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise StepFailed("cannot encode the image as PNG")
    return bytes(data)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The epoch records of ``metrics.jsonl`` (a partly written last line is ignored)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def metrics_png(path: Path) -> bytes | None:
    """Loss (and validation AUC, when the run has a validation split) per epoch as a PNG;
    None before the first epoch has finished."""
    records = read_metrics(path)
    if not records:
        return None
    from matplotlib.figure import Figure  # no pyplot: the kernel's plotting backend is left alone
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(9, 3.2))
    loss_ax, auc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in records], marker="o", label="train")
    if any("val_log_loss" in r for r in records):
        val_loss = [r.get("val_log_loss", math.nan) for r in records]
        loss_ax.plot(epochs, val_loss, marker="o", label="validation (log-loss)")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    auc = [r.get("val_auc", math.nan) for r in records]
    if all(math.isnan(a) for a in auc):
        auc_ax.text(0.5, 0.5, "no validation split", ha="center", va="center")
    else:
        auc_ax.plot(epochs, auc, marker="o", color="tab:green")
        auc_ax.set_ylim(0.0, 1.0)
    auc_ax.set(xlabel="epoch", ylabel="AUC", title="validation AUC (windows)")
    for ax in (loss_ax, auc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


class MetricsFollower:
    """Watches ``metrics.jsonl`` during training; ``poll()`` gives a new plot when it grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = -1

    def poll(self) -> bytes | None:
        """A fresh PNG of the curves when an epoch was added since the last call, else None."""
        size = self.path.stat().st_size if self.path.is_file() else 0
        if size == self._seen:
            return None
        self._seen = size
        return metrics_png(self.path)


def training_speed(
    backbone: str, size: int, *, window: int, device: str, batch: int = 2, steps: int = 2
) -> float:
    """Crops per second of one training step (forward, backward, AdamW) of ``backbone`` at
    ``size`` px on ``device``, mixed precision on CUDA as in ``train``; random weights and data
    (the speed does not depend on them), one untimed warm-up step first."""
    import torch

    from dfstream.model import DeepfakeNet, native_spec

    dev = torch.device(device)
    model = DeepfakeNet(native_spec(backbone=backbone, input_size=size, window=window)).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda")
    clips = torch.randn(batch, window, 3, size, size, device=dev)
    targets = torch.randint(0, 2, (batch,), device=dev)
    elapsed = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda"):
            feats = model.embed(clips.flatten(0, 1)).view(batch, window, -1)
            loss = torch.nn.functional.cross_entropy(model.logits(feats.float()).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step:
            elapsed += time.perf_counter() - started
    return batch * window * steps / elapsed


def planned_steps(
    cache: Path,
    *,
    split: str,
    window: int,
    sbi: bool,
    batch: int,
    epochs: int,
    max_steps: int | None,
) -> tuple[int, int]:
    """``(steps per epoch, planned steps)`` of ``python -m training train`` on this cache,
    counted as ``train`` counts them (one item per segment of at least ``window`` crops; with
    ``sbi`` REAL videos only, each item a real/self-blended pair)."""
    from training.cache import CropCache
    from training.data import segments_of

    videos = CropCache.open(cache).select(split)
    if sbi:
        videos = [v for v in videos if v.entry.label == "REAL"]
    items = len(segments_of(videos, window))
    per_step = max(1, batch // 2 if sbi else batch)
    per_epoch = max(1, items // per_step) if items > per_step else (1 if items else 0)
    planned = epochs * per_epoch
    return per_epoch, min(planned, max_steps) if max_steps else planned
