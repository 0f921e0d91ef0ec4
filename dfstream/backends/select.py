"""``--backend auto``: which backend, device and precision to run, and why.

The rule, in order (each step says why in ``Choice.reason``, shown by ``backend.describe()`` in
the dashboard header and the summary):

1. **TensorRT** when the ``tensorrt`` package imports and torch sees a CUDA GPU (and ``--device``
   is not ``cpu``): engines are loaded from the engine folder, or built there once.
2. **torch on CUDA** (fp16 autocast, channels_last) when torch sees a GPU.
3. **On CPU**, the fastest option for the batch size the pipeline will actually run, from
   ``benchmarks/backends.py`` (ResNeXt50, 112 px, crops/s, medians, 2-core AVX512-BF16 CPU):

   - with native bf16 (AVX512-BF16 or AMX) and an expected batch of at least
     ``BF16_MIN_BATCH``: **torch bf16** (quiet CPU: about 115 vs 84 crops/s for ONNX Runtime
     fp32 at batch 8-32);
   - otherwise **ONNX Runtime fp32** (quiet CPU, batch 1: 76 vs 48 torch bf16 and 41 torch fp32;
     ahead of torch fp32 at every batch size);
   - **threads**: when the CPU is already busy (1-minute load average above
     ``BUSY_LOAD_PER_CORE`` per core as the run starts) and ``--threads`` is not given, the
     backend runs with 1 thread: both torch's OpenMP team and ONNX Runtime's pool degrade badly
     when their threads are descheduled (at load ~10 on 2 cores, 1 thread measured 2-25x faster
     than the default 2 for torch and about 2x for ONNX Runtime), and the batch rule above
     still holds with 1 thread.

   The expected batch is ``--batch`` when every source is a file (decoding outruns the CNN, so
   batches fill up) and the number of live sources (capped by ``--batch``) when any is live: a
   camera delivers about one face crop per stream per batch wait.

   If ONNX Runtime is not installed the CPU choice falls back to torch (bf16 or fp32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from dfstream.sources import SourceSpec

# From benchmarks/results/backends-cpu.md: on the 2-core AVX512-BF16 CPU torch bf16 overtakes
# ONNX Runtime fp32 between batch 2 and 4 (with 1 thread on the busy machine; the quiet
# figures put the crossover below batch 8 as well).
BF16_MIN_BATCH = 4
# Above this 1-minute load average per core the CPU counts as busy (see the module docstring).
BUSY_LOAD_PER_CORE = 1.0


@dataclass(frozen=True)
class Choice:
    """A backend, device and precision to create, with the reason in one short phrase."""

    backend: str
    device: str
    precision: str
    reason: str
    threads: int | None = None  # None: the library's default (one per core)


@dataclass(frozen=True)
class Facts:
    """What the auto rule looks at: measured once per run by ``probe_facts``."""

    cuda: bool
    tensorrt_reason: str | None  # None when TensorRT is usable
    native_bf16: bool
    onnxruntime: bool
    load_per_core: float = 0.0  # 1-minute load average / logical cores, before the run


def expected_batch(sources: Sequence[SourceSpec], batch: int) -> int:
    """The CNN batch size the pipeline will mostly run (see the module docstring)."""
    live = sum(1 for s in sources if s.live)
    if live == 0:
        return batch
    return max(1, min(batch, live))


def probe_facts() -> Facts:
    """Look at this machine: CUDA in torch, TensorRT, the CPU's bf16, ONNX Runtime."""
    import torch

    from dfstream.backends.onnx_backend import ort_providers
    from dfstream.backends.tensorrt_backend import tensorrt_unavailable_reason
    from dfstream.backends.torch_backend import cpu_has_native_bf16

    return Facts(
        cuda=bool(torch.cuda.is_available()),
        tensorrt_reason=tensorrt_unavailable_reason(),
        native_bf16=cpu_has_native_bf16(),
        onnxruntime=bool(ort_providers()),
        load_per_core=cpu_load_per_core(),
    )


def cpu_load_per_core() -> float:
    """1-minute load average per logical core (0.0 where the OS does not report it)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (OSError, AttributeError):  # Windows has no getloadavg
        return 0.0


def choose(facts: Facts, *, device: str, batch: int, precision: str = "auto") -> Choice:
    """Apply the rule of the module docstring; ``precision`` other than auto is kept."""
    want_gpu = device != "cpu"
    if want_gpu and facts.cuda and facts.tensorrt_reason is None:
        prec = precision if precision != "auto" else "fp16"
        return Choice(
            "tensorrt",
            device if device != "auto" else "cuda",
            prec,
            "auto: TensorRT and a CUDA GPU are present",
        )
    if want_gpu and facts.cuda:
        why = facts.tensorrt_reason or "TensorRT unavailable"
        return Choice(
            "torch",
            device if device != "auto" else "cuda",
            precision,
            f"auto: CUDA GPU, no TensorRT ({why.split(';')[0]})",
        )
    if device.startswith("cuda"):
        # Let the torch backend raise its "no CUDA GPU" error for an explicit --device cuda.
        return Choice("torch", device, precision, "auto: --device cuda asked for")
    busy = facts.load_per_core > BUSY_LOAD_PER_CORE
    threads = 1 if busy else None
    busy_note = f", 1 thread (CPU busy: load {facts.load_per_core:.1f} per core)" if busy else ""
    bf16_ok = facts.native_bf16 and precision in ("auto", "bf16")
    if bf16_ok and batch >= BF16_MIN_BATCH:
        return Choice(
            "torch",
            "cpu",
            "bf16",
            f"auto: CPU with native bf16, batch {batch} >= {BF16_MIN_BATCH}: torch bf16 "
            f"measured fastest{busy_note}",
            threads,
        )
    if facts.onnxruntime and precision in ("auto", "fp32"):
        why = f"batch {batch} < {BF16_MIN_BATCH}" if facts.native_bf16 else "no native bf16"
        return Choice(
            "onnx",
            "cpu",
            "fp32",
            f"auto: {why}: ONNX Runtime fp32 measured fastest{busy_note}",
            threads,
        )
    prec = precision if precision != "auto" else ("bf16" if facts.native_bf16 else "fp32")
    return Choice(
        "torch", "cpu", prec, f"auto: CPU, ONNX Runtime not installed{busy_note}", threads
    )


def auto_choice(
    *,
    device: str,
    sources: Sequence[SourceSpec],
    batch: int,
    precision: str = "auto",
    facts: Facts | None = None,
) -> Choice:
    """``choose`` on this machine for these sources."""
    return choose(
        facts or probe_facts(),
        device=device,
        batch=expected_batch(sources, batch),
        precision=precision,
    )


def describe_rule() -> str:
    """The CPU rule in one line (``dfstream doctor`` prints it)."""
    return (
        f"CPU: torch bf16 when the CPU has native bf16 and batch >= {BF16_MIN_BATCH}, else "
        f"ONNX Runtime fp32; 1 thread when the CPU is busy (load > {BUSY_LOAD_PER_CORE:g} per "
        "core) (from benchmarks/backends.py)"
    )
