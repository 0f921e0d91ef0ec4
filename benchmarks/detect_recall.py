"""``python -m benchmarks.detect_recall``: how small and how seldom can the detector run?

The reference is YuNet at ``--reference-size`` (640 px, dfstream's default) on every frame.
Each configuration (detector input size x detect every k-th frame, the IoU tracker carrying the
boxes in between, exactly as ``FaceAnalyzer`` does in the pipeline) is scored per frame against
it: *recall* is the share of reference faces that a box of the configuration covers with IoU
>= 0.5, *precision* the share of the configuration's boxes that cover a reference face, and the
cost is the detector's CPU ms per frame (its runs' CPU spread over all frames). Clips are read
in two sets kept apart: ``--select`` (where a default is chosen) and ``--check`` (never looked
at while choosing; reported beside it).

    python -m benchmarks.detect_recall --select ../shared/data/real/videos \\
        --check ../shared/data/dev --frames 150 --json benchmarks/results/detect_recall.json

Writes JSON and a Markdown table beside it; prints the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks.report import fmt, rich_table, write_outputs
from dfstream.cputime import share_opencv_threads
from dfstream.faces import AnalyzerSettings, FaceAnalyzer
from dfstream.faces.detect import YuNetDetector, shipped_yunet_model
from dfstream.faces.track import iou
from dfstream.sources.ffmpeg import to_bgr
from dfstream.tools.benchkit import machine_info
from dfstream.types import Box, Frame

MATCH_IOU = 0.5


@dataclass(frozen=True)
class Config:
    """One way of running the detector."""

    size: int
    every: int

    @property
    def label(self) -> str:
        return f"{self.size} px, every {self.every}"


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    """The first ``limit`` frames of a video as BGR arrays."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(to_bgr(frame))
            if len(frames) >= limit:
                break
    return frames


def boxes_per_frame(
    frames: list[np.ndarray], model: Path, config: Config
) -> tuple[list[list[Box]], float]:
    """The boxes the pipeline's analyzer follows on each frame, and the detector's CPU seconds."""
    detector = YuNetDetector(model, max_side=config.size)
    settings = AnalyzerSettings(
        crop_margin=0.0, crop_size=8, color_order="BGR", detect_every=config.every
    )
    analyzer = FaceAnalyzer(detector, settings, stream_id="recall")
    cpu, out = 0.0, []
    for index, image in enumerate(frames):
        frame = Frame("recall", index, index / 30.0, 0.0, image)
        began = time.thread_time()
        result = analyzer.analyze(frame)
        if result.detected:
            cpu += time.thread_time() - began
        out.append([box for _track, box in result.boxes])
    return out, cpu


def match(reference: list[list[Box]], found: list[list[Box]]) -> tuple[int, int, int, int]:
    """(reference faces, covered reference faces, boxes found, boxes covering a reference)."""
    ref_n = hit = found_n = good = 0
    for ref_boxes, boxes in zip(reference, found, strict=True):
        ref_n += len(ref_boxes)
        found_n += len(boxes)
        hit += sum(any(iou(r, b) >= MATCH_IOU for b in boxes) for r in ref_boxes)
        good += sum(any(iou(r, b) >= MATCH_IOU for r in ref_boxes) for b in boxes)
    return ref_n, hit, found_n, good


def videos_in(folder: Path) -> list[Path]:
    """Every video below ``folder``, sorted."""
    suffixes = {".mp4", ".mkv", ".mov", ".avi", ".webm"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes)


def measure(
    videos: list[Path], configs: list[Config], *, model: Path, frames: int, reference_size: int
) -> dict[str, Any]:
    """Recall, precision and cost of each config over ``videos``, pooled over frames."""
    totals: dict[Config, list[float]] = {c: [0, 0, 0, 0, 0.0] for c in configs}
    per_clip_recall: dict[Config, list[float]] = {c: [] for c in configs}
    n_frames = 0
    for video in videos:
        images = read_frames(video, frames)
        n_frames += len(images)
        reference, _ = boxes_per_frame(images, model, Config(reference_size, 1))
        for config in configs:
            found, cpu = boxes_per_frame(images, model, config)
            ref_n, hit, found_n, good = match(reference, found)
            row = totals[config]
            row[0] += ref_n
            row[1] += hit
            row[2] += found_n
            row[3] += good
            row[4] += cpu
            if ref_n:
                per_clip_recall[config].append(hit / ref_n)
    rows = []
    for config in configs:
        ref_n, hit, found_n, good = (int(v) for v in totals[config][:4])
        cpu = totals[config][4]
        clips = per_clip_recall[config]
        rows.append(
            {
                "size": config.size,
                "every": config.every,
                "reference_faces": ref_n,
                "recall": hit / ref_n if ref_n else 0.0,
                "precision": good / found_n if found_n else 0.0,
                "worst_clip_recall": min(clips) if clips else 0.0,
                "median_clip_recall": statistics.median(clips) if clips else 0.0,
                "detect_cpu_ms_per_frame": 1000.0 * cpu / n_frames if n_frames else 0.0,
            }
        )
    return {"videos": [str(v) for v in videos], "frames": n_frames, "rows": rows}


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per configuration, the select and check sets side by side."""
    header = [
        "detector",
        "recall (select)",
        "worst clip",
        "precision",
        "CPU ms/frame",
        "recall (check)",
        "worst clip",
        "precision",
    ]
    rows = []
    check = {(r["size"], r["every"]): r for r in results.get("check", {}).get("rows", [])}
    for r in results["select"]["rows"]:
        c = check.get((r["size"], r["every"]))
        rows.append(
            [
                f"{r['size']} px, every {r['every']}",
                fmt(r["recall"], 3),
                fmt(r["worst_clip_recall"], 3),
                fmt(r["precision"], 3),
                fmt(r["detect_cpu_ms_per_frame"], 2),
                fmt(c["recall"], 3) if c else "",
                fmt(c["worst_clip_recall"], 3) if c else "",
                fmt(c["precision"], 3) if c else "",
            ]
        )
    return header, rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print; 2 when a folder holds no video or YuNet is missing."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.detect_recall", description=__doc__)
    p.add_argument("--select", type=Path, required=True, help="folder of clips to choose on")
    p.add_argument("--check", type=Path, help="folder of clips kept apart, reported beside")
    p.add_argument("--frames", type=int, default=150, help="frames per clip (150)")
    p.add_argument("--sizes", type=int, nargs="+", default=[640, 480, 320])
    p.add_argument("--every", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--reference-size", type=int, default=640)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    model = shipped_yunet_model()
    if model is None:
        print("benchmarks.detect_recall: error: no shipped YuNet model", file=sys.stderr)
        return 2
    share_opencv_threads()  # as the pipeline runs it
    configs = [Config(size, every) for size in args.sizes for every in args.every]
    results: dict[str, Any] = {"command": "python -m benchmarks.detect_recall " + " ".join(
        sys.argv[1:] if argv is None else argv)}  # fmt: skip
    for name, folder in (("select", args.select), ("check", args.check)):
        if folder is None:
            continue
        videos = videos_in(folder)
        if not videos:
            print(f"benchmarks.detect_recall: error: {folder}: no videos", file=sys.stderr)
            return 2
        results[name] = measure(
            videos, configs, model=model, frames=args.frames, reference_size=args.reference_size
        )
    results["machine"] = machine_info()
    header, rows = table(results)
    title = (
        f"Face boxes vs YuNet {args.reference_size} px on every frame (IoU >= {MATCH_IOU}), "
        f"first {args.frames} frames per clip"
    )
    from rich.console import Console

    Console().print(rich_table(title, header, rows))
    if args.json is not None:
        write_outputs(args.json, results, title=title, header=header, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
