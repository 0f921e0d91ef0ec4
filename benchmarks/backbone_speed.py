"""Backbones side by side: crops/s of the backend alone, as ``dfstream bench`` measures it.

    python -m benchmarks.backbone_speed [--models NAME@SIZE,...] [--batch 16] [--stride 5]
        [--rounds 5] [--seconds 3] [--out FILE.json]

Default models: efficientnet_lite0@112, efficientnet_lite0@224, resnext50@112. Each is an
untrained dfstream model (registered backbone + LSTM head; speed does not depend on the weights)
on the torch backend, CPU fp32. One round times every model once with
``benchkit.bare_backend_rates`` (``--batch`` crops through ``embed`` plus the windows they make
due through ``score``, for ``--seconds``); after ``--warmup`` untimed rounds, rounds repeat
``--rounds`` times, models interleaved within each round so that machine noise hits them alike,
and the median of the rounds is reported with the ratio to the first model. Writes a JSON file
(default ``benchmarks/results/backbone_speed.json``) with every round, the machine and the
command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dfstream.backends.torch_backend import TorchBackend
from dfstream.tools.benchkit import bare_backend_rates, bench_model, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = "efficientnet_lite0@112,efficientnet_lite0@224,resnext50@112"


def parse_models(text: str) -> list[tuple[str, int]]:
    """``name@size,...`` -> [(backbone, crop size)]."""
    out = []
    for item in text.split(","):
        name, _, size = item.strip().partition("@")
        if not size.isdigit():
            raise SystemExit(f"--models: expected NAME@SIZE but got {item!r}")
        out.append((name, int(size)))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time every model ``args.rounds`` times; returns the JSON-able result."""
    models = parse_models(args.models)
    backends = {
        f"{name}@{size}": TorchBackend.create(
            bench_model(name, window=args.window, input_size=size), device="cpu", precision="fp32"
        )
        for name, size in models
    }
    rounds: dict[str, list[float]] = {label: [] for label in backends}
    cpu: dict[str, list[float]] = {label: [] for label in backends}
    started = time.time()
    for _ in range(args.warmup):  # oneDNN settles its kernels over the first batches
        for backend in backends.values():
            bare_backend_rates(backend, batch=args.batch, stride=args.stride, seconds=1.0)
    for _ in range(args.rounds):
        for label, backend in backends.items():
            rate, cpu_per_crop = bare_backend_rates(
                backend, batch=args.batch, stride=args.stride, seconds=args.seconds
            )
            rounds[label].append(rate)
            cpu[label].append(cpu_per_crop)
    first = next(iter(backends))
    medians = {label: statistics.median(rates) for label, rates in rounds.items()}
    return {
        "command": "python -m benchmarks.backbone_speed " + " ".join(sys.argv[1:]),
        "batch": args.batch,
        "stride": args.stride,
        "window": args.window,
        "seconds_per_round": args.seconds,
        "warmup_rounds": args.warmup,
        "wall_s": round(time.time() - started, 1),
        "models": {
            label: {
                "backbone": backends[label].spec.backbone,
                "input_size": backends[label].spec.input_size,
                "feature_dim": backends[label].spec.feature_dim,
                "crops_per_s_median": medians[label],
                "crops_per_s_rounds": rounds[label],
                "cpu_ms_per_crop_median": 1000.0 * statistics.median(cpu[label]),
                "ratio_to_first": medians[label] / medians[first],
            }
            for label in backends
        },
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse, measure, print the table, write the JSON."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.backbone_speed")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"NAME@SIZE,... ({DEFAULT_MODELS})")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--stride", type=int, default=5, help="window stride, as dfstream bench (5)")
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed 1 s rounds first (1)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=RESULTS / "backbone_speed.json")
    args = p.parse_args(argv)
    result = run(args)
    table = Table(title=f"backend alone, torch fp32 CPU, batch {args.batch}, median of rounds")
    for column in ("model", "crops/s", "rounds", "CPU ms/crop", "x first"):
        table.add_column(column)
    for label, m in result["models"].items():
        table.add_row(
            label,
            f"{m['crops_per_s_median']:.1f}",
            " ".join(f"{r:.0f}" for r in m["crops_per_s_rounds"]),
            f"{m['cpu_ms_per_crop_median']:.1f}",
            f"{m['ratio_to_first']:.2f}",
        )
    Console(width=120).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
