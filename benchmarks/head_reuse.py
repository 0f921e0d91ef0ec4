"""``python -m benchmarks.head_reuse``: the temporal head with and without reusing each
feature's LSTM input projection.

At stride 1 every new crop makes one window due, and the plain head (``backend.score``) runs the
LSTM over all T features of it, input projection included. The reuse path projects each feature
once (``backend.project``, when the crop is embedded) and runs only the recurrence per window
(``backend.score_projected``). Per head, T and batch of windows: median ms per window of each
path (the reuse path's cost includes one projection per window, i.e. per new crop at stride 1),
the ratio and the largest score difference on the same random features. One torch thread unless
``--threads``.

    python -m benchmarks.head_reuse --json benchmarks/results/head_reuse.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from benchmarks.report import fmt, rich_table, write_outputs
from dfstream.backends.torch_backend import TorchBackend
from dfstream.model.checkpoint import LoadedModel, untrained_model
from dfstream.model.shipped import load_default_model
from dfstream.model.spec import native_spec
from dfstream.tools.benchkit import machine_info


def _median_ms(work: Callable[[], object], repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def heads() -> list[tuple[str, LoadedModel]]:
    """The heads measured: the ResNeXt50 head of dfstream's own checkpoints, LSTM(2048 -> 512),
    T=20, and the shipped default model's, LSTM(1280 -> 128), T=8."""
    return [
        ("dfstream ResNeXt50 head, LSTM(2048->512)", untrained_model(native_spec(window=20))),
        ("default model head, LSTM(1280->128)", load_default_model(None)),
    ]


def measure(loaded: LoadedModel, batch: int, repeats: int) -> dict[str, Any]:
    """One head at one batch of windows."""
    backend = TorchBackend.create(loaded, device="cpu", precision="fp32")
    spec = loaded.spec
    rng = np.random.default_rng(0)
    features = (rng.standard_normal((batch + spec.window, spec.feature_dim)) * 2).astype(np.float32)
    index = np.arange(batch)[:, None] + np.arange(spec.window)[None, :]
    windows = features[index]
    projected = backend.project(features)[index]
    new = features[:batch]
    plain = _median_ms(lambda: backend.score(windows), repeats)
    reuse = _median_ms(lambda: (backend.project(new), backend.score_projected(projected)), repeats)
    diff = float(np.abs(backend.score(windows) - backend.score_projected(projected)).max())
    return {
        "window": spec.window,
        "batch": batch,
        "plain_ms_per_window": plain / batch,
        "reuse_ms_per_window": reuse / batch,
        "speedup": plain / reuse if reuse > 0 else 0.0,
        "max_abs_score_diff": diff,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, optionally write JSON and Markdown."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.head_reuse", description=__doc__)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, table = [], []
    for name, loaded in heads():
        for batch in args.batches:
            row = {"head": name, **measure(loaded, batch, args.repeats)}
            rows.append(row)
            table.append(
                [
                    name,
                    str(row["window"]),
                    str(batch),
                    fmt(row["plain_ms_per_window"], 3),
                    fmt(row["reuse_ms_per_window"], 3),
                    f"{row['speedup']:.1f}x",
                    f"{row['max_abs_score_diff']:.1e}",
                ]
            )
    header = ["head", "T", "windows/call", "plain ms/window", "reuse ms/window", "ratio", "diff"]
    title = (
        f"Temporal head: plain vs reusing each feature's input projection, {args.threads} thread"
    )
    Console().print(rich_table(title, header, table))
    if args.json is not None:
        result = {
            "command": "python -m benchmarks.head_reuse " + " ".join(sys.argv[1:]),
            "rows": rows,
            "machine": machine_info(),
        }
        write_outputs(args.json, result, title=title, header=header, rows=table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
