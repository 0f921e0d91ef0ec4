"""What ``--overlay`` and ``--report`` cost: the same run with and without them, side by side.

    python -m benchmarks.overlay_cost [--repeats 3] [--seconds 10]

Uses the real 519.mp4 with YuNet from ``../shared`` when present (else a generated clip with the
whole-frame detector), the untrained model, analysis at 5 frames/s. Runs the three variants in
turn, ``--repeats`` times, and reports the median wall time of ``Analysis.run()`` (model loading
excluded) and the ratio to the plain run. Prints a table and writes
``benchmarks/results/overlay_cost.json``. The machine may be shared: compare only the ratios
of one run, and repeat when the spread is large.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dfstream.api import Analysis
from dfstream.config import AnalysisConfig, OutputConfig
from dfstream.tools.synth import write_synthetic_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL = SHARED / "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "overlay_cost.json"


def _base_config(work: Path, seconds: float) -> tuple[AnalysisConfig, str]:
    if REAL.is_file() and YUNET.is_file():
        config = AnalysisConfig(
            sources=(str(REAL),), untrained=True, detector="yunet", detector_model=YUNET,
            analysis_fps=5.0, max_seconds=seconds,
        )  # fmt: skip
        return config, "519.mp4 (640x480, 25 fps, YuNet)"
    clip = write_synthetic_clip(work / "clip.mp4", seconds=seconds, size=(640, 480))
    config = AnalysisConfig(sources=(str(clip),), untrained=True, detector="none", analysis_fps=5.0)
    return config, "generated clip (640x480, 25 fps, whole-frame detector)"


def _timed(config: AnalysisConfig, outputs: OutputConfig) -> tuple[float, int]:
    run = Analysis(config, outputs=outputs)
    started = time.perf_counter()
    (summary,) = run.run().summaries
    return time.perf_counter() - started, summary.frames_decoded


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of video per run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dfstream-overlay-bench-") as tmp:
        work = Path(tmp)
        base, clip = _base_config(work, args.seconds)
        variants = {
            "plain": OutputConfig(),
            "+overlay": OutputConfig(overlay=work / "o.mp4"),
            "+overlay +report": OutputConfig(overlay=work / "o.mp4", report=work / "r.json"),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        frames = 0
        for _ in range(args.repeats):
            for name, outputs in variants.items():  # interleaved: load drifts hit all alike
                elapsed, frames = _timed(base, outputs)
                times[name].append(elapsed)
    plain = statistics.median(times["plain"])
    table = Table(title=f"--overlay / --report cost ({clip}, {frames} frames, untrained)")
    for column in ("variant", "median s", "min s", "max s", "frames/s", "vs plain"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"variant": name, "median_s": median, "runs_s": values,
                     "frames_per_s": frames / median, "ratio": median / plain})  # fmt: skip
        table.add_row(
            name, f"{median:.2f}", f"{min(values):.2f}", f"{max(values):.2f}",
            f"{frames / median:.1f}", f"{median / plain:.2f}x",
        )  # fmt: skip
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "overlay_cost",
        "clip": clip,
        "frames": frames,
        "repeats": args.repeats,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "results": rows,
        "note": "machine shared with other jobs; medians of interleaved runs",
    }
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
