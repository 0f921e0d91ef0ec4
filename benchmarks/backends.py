"""CPU backends side by side: torch fp32, torch bf16 (autocast), ONNX Runtime fp32.

    python -m benchmarks.backends [--batches 1,2,4,8,16,32,64] [--repeats 5] [--out DIR]

ResNeXt50 CNN at 112 px (untrained weights: speed does not depend on them), crops/s of ``embed``
per batch size: warm-up runs first, then ``--repeats`` timed runs per option, interleaved option by
option within each batch size so that machine noise hits all of them alike; the median is
reported. Accuracy: each option's features and window scores on the same inputs against torch
fp32 (max abs score difference, max feature difference relative to the largest feature), with a
classifier scaled up so that scores spread over (0, 1) rather than sit at 0.5. Finally, for every
batch size, what ``--backend auto`` picks on this machine and how far it is from the fastest.

Writes ``backends-cpu.json`` and ``backends-cpu.md`` under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from dfstream.backends.base import InferenceBackend
from dfstream.backends.onnx_backend import OnnxBackend
from dfstream.backends.select import choose, probe_facts
from dfstream.backends.torch_backend import TorchBackend, cpu_has_native_bf16
from dfstream.model.checkpoint import LoadedModel, untrained_model

RESULTS = Path(__file__).resolve().parent / "results"
OPTIONS = ("torch fp32", "torch bf16", "onnx fp32")
# What each option is called by the auto rule's Choice (backend, precision).
CHOICE_NAMES = {
    ("torch", "fp32"): "torch fp32",
    ("torch", "bf16"): "torch bf16",
    ("onnx", "fp32"): "onnx fp32",
}


def realistic_crops(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images (blurred, upscaled noise): closer to faces than white noise."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC) for img in small])


def make_backends(
    loaded: LoadedModel, cache: Path, threads: int | None
) -> dict[str, InferenceBackend]:
    """The three CPU options on the same weights (``threads``: None = each library's default)."""
    cpu = torch.device("cpu")
    return {
        "torch fp32": TorchBackend(loaded.model, cpu, precision="fp32"),
        "torch bf16": TorchBackend(loaded.model, cpu, precision="bf16"),
        "onnx fp32": OnnxBackend.create(
            loaded, cache_dir=cache, device="cpu", precision="fp32", threads=threads
        ),
    }


def time_batches(
    backends: dict[str, InferenceBackend],
    batches: list[int],
    repeats: int,
    log: Callable[[str], None],
    budget_s: float,
) -> dict[str, dict[int, dict[str, float]]]:
    """Median crops/s per option and batch size (interleaved runs); batch sizes left when the
    time budget is spent are skipped (and absent from the result)."""
    crops = realistic_crops(max(batches), 112, seed=1)
    out: dict[str, dict[int, dict[str, float]]] = {name: {} for name in backends}
    deadline = time.perf_counter() + budget_s
    for batch in batches:
        if time.perf_counter() > deadline:
            log(f"time budget spent: batch {batch} and larger skipped")
            break
        chunk = crops[:batch]
        for backend in backends.values():  # warm-up: allocations, oneDNN/ORT kernel selection
            start = time.perf_counter()
            backend.embed(chunk)
            if time.perf_counter() - start < 2.0:  # a second warm-up unless runs are slow
                backend.embed(chunk)
        times: dict[str, list[float]] = {name: [] for name in backends}
        batch_end = time.perf_counter() + budget_s / len(batches)
        for i in range(repeats):
            if i >= 3 and time.perf_counter() > batch_end:
                break  # a slow (contended) machine: 3 interleaved runs are enough for a median
            for name, backend in backends.items():
                start = time.perf_counter()
                backend.embed(chunk)
                times[name].append(time.perf_counter() - start)
        for name, ts in times.items():
            med = statistics.median(ts)
            out[name][batch] = {
                "crops_per_s": batch / med,
                "median_ms": med * 1e3,
                "min_ms": min(ts) * 1e3,
                "max_ms": max(ts) * 1e3,
            }
        log(f"batch {batch}: " + ", ".join(f"{n} {out[n][batch]['crops_per_s']:.1f}" for n in out))
    return out


def accuracy(backends: dict[str, InferenceBackend], window: int) -> dict[str, dict[str, float]]:
    """Score and feature differences of each option against torch fp32."""
    crops = realistic_crops(48, 112, seed=2)
    feats = {name: b.embed(crops) for name, b in backends.items()}
    starts = range(0, 48 - window + 1, 2)
    scores = {
        name: b.score(np.stack([feats[name][s : s + window] for s in starts]))
        for name, b in backends.items()
    }
    ref_f, ref_s = feats["torch fp32"], scores["torch fp32"]
    return {
        name: {
            "score_max_abs_diff": float(np.abs(scores[name] - ref_s).max()),
            "feature_max_rel_diff": float(np.abs(feats[name] - ref_f).max() / np.abs(ref_f).max()),
            "score_range_fp32": float(ref_s.max() - ref_s.min()),
            "windows": len(ref_s),
        }
        for name in backends
    }


def auto_check(speed: dict[str, dict[int, dict[str, float]]], batches: list[int]) -> list[dict]:
    """For each batch: what auto picks here, the fastest measured option, and the ratio."""
    facts = probe_facts()
    rows = []
    for batch in batches:
        choice = choose(facts, device="cpu", batch=batch)
        picked = CHOICE_NAMES[(choice.backend, choice.precision)]
        best = max(speed, key=lambda n: speed[n][batch]["crops_per_s"])
        ratio = speed[picked][batch]["crops_per_s"] / speed[best][batch]["crops_per_s"]
        rows.append(
            {
                "batch": batch,
                "auto": picked,
                "fastest": best,
                "auto_vs_fastest": ratio,
                "within_10pct": ratio >= 0.9,
            }
        )
    return rows


def markdown(result: dict) -> str:
    """The results as a Markdown report."""
    batches = result["batches"]
    lines = [
        "# CPU backends: crops/s of the ResNeXt50 CNN at 112 px (median)",
        "",
        f"Machine: {result['machine']}. {result['note']} Load average (1/5/15 min) at start "
        f"{result['loadavg_1_5_15_start']}, at end {result['loadavg_1_5_15_end']} on "
        f"{os.cpu_count()} cores.",
        "",
        "| option | " + " | ".join(f"batch {b}" for b in batches) + " | score diff vs fp32 |",
        "|---|" + "---:|" * (len(batches) + 1),
    ]
    for name in OPTIONS:
        cells = [f"{result['speed'][name][str(b)]['crops_per_s']:.1f}" for b in batches]
        diff = result["accuracy"][name]["score_max_abs_diff"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff:.2e} |")
    lines += ["", "| batch | auto picks | fastest | auto / fastest |", "|---:|---|---|---:|"]
    for row in result["auto"]:
        lines.append(
            f"| {row['batch']} | {row['auto']} | {row['fastest']} | {row['auto_vs_fastest']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write JSON and Markdown."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__)
    p.add_argument("--batches", default="1,2,4,8,16,32,64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the timing part")
    p.add_argument(
        "--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: theirs)"
    )
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    stem = "backends-cpu" + (f"-threads{args.threads}" if args.threads else "")
    console = Console(highlight=False)
    loaded = untrained_model(seed=3)
    with torch.no_grad():  # spread scores over (0, 1) so that differences are visible
        loaded.model.linear1.weight.mul_(40.0)
    started = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dfstream-bench-onnx-") as tmp:
        backends = make_backends(loaded, Path(tmp), args.threads)
        acc = accuracy(backends, loaded.spec.window)
        speed = time_batches(backends, batches, args.repeats, console.print, args.budget)
    batches = [b for b in batches if b in speed["torch fp32"]]
    result = {
        "benchmark": "backends-cpu",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}",
        "note": "Shared machine (other jobs running): absolute numbers are noisy; the options "
        "were interleaved run by run, so their ratios are the meaningful part.",
        "loadavg_1_5_15_start": load_start,
        "loadavg_1_5_15_end": os.getloadavg(),
        "batches": batches,
        "repeats": args.repeats,
        "threads": args.threads or "library defaults",
        "speed": {n: {str(b): v for b, v in per.items()} for n, per in speed.items()},
        "accuracy": acc,
        "auto": auto_check(speed, batches),
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    table = Table(title="crops/s (median), ResNeXt50 112 px, CPU")
    table.add_column("option")
    for b in batches:
        table.add_column(f"b{b}", justify="right")
    table.add_column("score diff", justify="right")
    for name in OPTIONS:
        table.add_row(
            name,
            *(f"{speed[name][b]['crops_per_s']:.1f}" for b in batches),
            f"{acc[name]['score_max_abs_diff']:.1e}",
        )
    console.print(table)
    for row in result["auto"]:
        console.print(
            f"batch {row['batch']}: auto -> {row['auto']}, fastest {row['fastest']}, "
            f"ratio {row['auto_vs_fastest']:.2f}"
        )
    console.print(f"wrote {args.out / stem}.json and .md ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
