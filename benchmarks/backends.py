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
import dataclasses
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
BASE_OPTIONS = ("torch fp32", "torch bf16", "onnx fp32")


def option_name(backend: str, precision: str, threads: int | None) -> str:
    """``torch bf16`` (library default threads) or ``torch bf16 1t``."""
    return f"{backend} {precision}" + (f" {threads}t" if threads else "")


class _TorchThreads(InferenceBackend):
    """A torch backend that sets torch's (process-wide) thread count before every call."""

    def __init__(self, inner: TorchBackend, threads: int) -> None:
        super().__init__(inner.spec)
        self.inner, self.threads = inner, threads

    def embed(self, crops: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        return self.inner.embed(crops)

    def score(self, windows: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.threads)
        return self.inner.score(windows)


def realistic_crops(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images (blurred, upscaled noise): closer to faces than white noise."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC) for img in small])


def make_backends(
    loaded: LoadedModel, cache: Path, thread_grid: list[int | None]
) -> dict[str, InferenceBackend]:
    """The three CPU options on the same weights, once per thread setting (None = the
    libraries' defaults: one thread per core)."""
    cpu = torch.device("cpu")
    default_threads = torch.get_num_threads()
    out: dict[str, InferenceBackend] = {}
    for threads in thread_grid:
        for prec in ("fp32", "bf16"):
            inner = TorchBackend(loaded.model, cpu, precision=prec)
            out[option_name("torch", prec, threads)] = _TorchThreads(
                inner, threads or default_threads
            )
        out[option_name("onnx", "fp32", threads)] = OnnxBackend.create(
            loaded, cache_dir=cache, device="cpu", precision="fp32", threads=threads
        )
    return out


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
    backends = {name: backends[name] for name in BASE_OPTIONS}
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


def auto_check(
    speed: dict[str, dict[int, dict[str, float]]], batches: list[int], load_per_core: float
) -> list[dict]:
    """For each batch: what auto picks here (with the load seen when the benchmark started),
    the fastest measured option, and the ratio."""
    facts = dataclasses.replace(probe_facts(), load_per_core=load_per_core)
    rows = []
    for batch in batches:
        choice = choose(facts, device="cpu", batch=batch)
        picked = option_name(choice.backend, choice.precision, choice.threads)
        if picked not in speed:  # e.g. 1 thread picked but only default threads measured
            picked = option_name(choice.backend, choice.precision, None)
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
    for name in result["speed"]:
        cells = [f"{result['speed'][name][str(b)]['crops_per_s']:.1f}" for b in batches]
        base = name.removesuffix(" 1t")
        diff = result["accuracy"].get(base, {}).get("score_max_abs_diff", float("nan"))
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
        "--threads",
        default="default,1",
        help="thread settings to measure, comma-separated ('default' = the libraries' own)",
    )
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    grid: list[int | None] = [None if t == "default" else int(t) for t in args.threads.split(",")]
    stem = "backends-cpu"
    console = Console(highlight=False)
    default_threads = torch.get_num_threads()
    loaded = untrained_model(seed=3)
    with torch.no_grad():  # spread scores over (0, 1) so that differences are visible
        loaded.model.linear1.weight.mul_(40.0)
    started = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dfstream-bench-onnx-") as tmp:
        backends = make_backends(loaded, Path(tmp), grid)
        acc = accuracy(backends, loaded.spec.window)
        speed = time_batches(backends, batches, args.repeats, console.print, args.budget)
    batches = [b for b in batches if b in speed["torch fp32"]]
    result = {
        "benchmark": "backends-cpu",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, "
        f"default threads: torch {default_threads}, ONNX Runtime one per core",
        "note": "Shared machine (other jobs running): absolute numbers are noisy; the options "
        "were interleaved run by run, so their ratios are the meaningful part.",
        "loadavg_1_5_15_start": load_start,
        "loadavg_1_5_15_end": os.getloadavg(),
        "batches": batches,
        "repeats": args.repeats,
        "threads": args.threads,
        "speed": {n: {str(b): v for b, v in per.items()} for n, per in speed.items()},
        "accuracy": acc,
        "auto": auto_check(speed, batches, load_start[0] / (os.cpu_count() or 1)),
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
    for name in speed:
        table.add_row(
            name,
            *(f"{speed[name][b]['crops_per_s']:.1f}" for b in batches),
            f"{acc.get(name.removesuffix(' 1t'), {}).get('score_max_abs_diff', float('nan')):.1e}",
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
