"""Does self-blending carry a learnable signal? Train on one person, test on another.

A small model (``--backbone small``, random init, T = 1, 64 px crops to keep CPU time low)
is trained with ``python -m training train --sbi`` on real vs self-blended crops of FF++
``519.mp4`` only, then scored with
``evaluate --sbi`` on real vs self-blended crops of DFDC ``brtujopkby.mp4`` - a different
person, camera, resolution and compression, never seen in training. The frame-level AUC is the
figure; the acceptance bar is 0.9. Results go to ``benchmarks/results/sbi_signal.json``.

Needs ``../shared`` (the mini corpus and the YuNet model). Run from the repository root::

    python -m benchmarks.sbi_signal [--steps 300] [--frames 160] [--size 64]

Everything runs through the real command lines (index is replaced by a two-row manifest, so
that the train/test assignment is fixed). CPU timings on a shared machine are noisy.
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

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TRAIN_VIDEO = SHARED / "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
TEST_VIDEO = SHARED / "data/mini/dfdc/dfdc_train_part_0/brtujopkby.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
RESULT = REPO / "benchmarks" / "results" / "sbi_signal.json"


def _training(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the experiment and record the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    for path in (TRAIN_VIDEO, TEST_VIDEO, YUNET):
        if not path.is_file():
            print(f"sbi_signal: {path} is absent; this benchmark needs ../shared", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="sbi-signal-") as tmp:
        work = Path(tmp)
        manifest = work / "manifest.csv"
        manifest.write_text(
            "path,label,dataset,split,group\n"
            f"{TRAIN_VIDEO},REAL,ffpp,train,ffpp:519\n"
            f"{TEST_VIDEO},REAL,dfdc,test,dfdc:gnmmhlbzge\n",
            encoding="utf-8",
        )
        cache, run, metrics = work / "cache", work / "run", work / "metrics.json"
        t_pre = _training(
            "preprocess",
            str(manifest),
            "--out",
            str(cache),
            "--frames",
            str(args.frames),
            "--run-length",
            "1",
            "--size",
            str(args.size),
            "--detector",
            "yunet",
            "--detector-model",
            str(YUNET),
            "--workers",
            "2",
        )
        t_train = _training(
            "train",
            str(cache),
            "--out",
            str(run),
            "--sbi",
            "--backbone",
            "small",
            "--window",
            "1",
            "--epochs",
            "1000",
            "--max-steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--lr",
            str(args.lr),
            "--val-split",
            "none",
            "--seed",
            str(args.seed),
        )
        t_eval = _training(
            "evaluate",
            str(run / "last.pt"),
            str(cache),
            "--out",
            str(metrics),
            "--split",
            "test",
            "--sbi",
            "--seed",
            str(args.seed),
        )
        report = json.loads(metrics.read_text(encoding="utf-8"))
    frame = report["levels"]["frame"]
    result = {
        "benchmark": "sbi_signal",
        "question": "real vs self-blended crops: train on 519.mp4, test on brtujopkby.mp4",
        "frame_auc": frame["auc"],
        "frame_eer": frame["eer"],
        "frame_accuracy": frame["accuracy"],
        "test_rows": frame["n"],
        "passes_0_9": frame["auc"] is not None and frame["auc"] >= 0.9,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "backbone": "small (resnet18 trunk, random init)",
        "window": 1,
        "seconds": {
            "preprocess": round(t_pre, 1),
            "train": round(t_train, 1),
            "evaluate": round(t_eval, 1),
        },
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "note": "CPU only, shared with other jobs: timings are noisy",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'metric':<16}{'value':>10}")
    for key in ("frame_auc", "frame_eer", "frame_accuracy", "test_rows"):
        print(
            f"{key:<16}{result[key]:>10.4f}"
            if isinstance(result[key], float)
            else f"{key:<16}{result[key]!s:>10}"
        )
    print(f"-> {args.out}")
    return 0 if result["passes_0_9"] else 1


if __name__ == "__main__":
    sys.exit(main())
