"""How many track ids the product gives the faces of real videos, with re-linking off and on.

    python -m benchmarks.track_ids [--videos DIR] [--max-seconds S] [--out FILE]

Runs ``dfstream.api.Analysis`` (the code path of the command line, default settings: YuNet,
detection every 5th frame, every frame analysed) over every video below ``--videos`` (default
``../shared/data/real/videos``; the benchmark says so and exits 0 when it is absent), once with
``relink=False`` and once with ``relink=True``, and counts the track ids of each clip's summary
(every track that got a crop is scored, so this is every id given out). Prints a table and
writes ``benchmarks/results/track_ids.json``.

The model is an untrained ``tiny`` backbone checkpoint written to a temporary folder: the ids do
not depend on it (re-linking compares an appearance descriptor of the crops, cut on the analyzer
thread before any CNN runs), and a small model keeps the run short.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dfstream.api import Analysis
from dfstream.config import AnalysisConfig
from dfstream.faces.relink import RELINK_DISTANCE, RELINK_GAP_S, RELINK_SCALE, RELINK_SIMILARITY
from dfstream.model import save_checkpoint, untrained_model
from dfstream.model.spec import native_spec
from dfstream.sources import VIDEO_EXTENSIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
VIDEOS = REPO_ROOT.parent / "shared" / "data" / "real" / "videos"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "track_ids.json"


def count_ids(video: Path, weights: Path, *, relink: bool, max_seconds: float | None) -> int:
    """Track ids in the summary of one product run over ``video``."""
    config = AnalysisConfig(
        sources=(str(video),), weights=weights, relink=relink, max_seconds=max_seconds
    )
    (summary,) = Analysis(config, on_notice=lambda _msg: None).run().summaries
    if summary.error:
        raise RuntimeError(summary.error)
    return len(summary.tracks)


def main(argv: list[str] | None = None) -> int:
    """Count, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--max-seconds", type=float, help="analyse only S s of each video")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    videos = sorted(
        p for p in args.videos.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
    )
    if not videos:
        print(f"no videos below {args.videos}: nothing to measure (it holds ../shared data)")
        return 0
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        weights = Path(work) / "tiny.pt"
        save_checkpoint(weights, untrained_model(native_spec(backbone="tiny")).model)
        for video in videos:
            off = count_ids(video, weights, relink=False, max_seconds=args.max_seconds)
            on = count_ids(video, weights, relink=True, max_seconds=args.max_seconds)
            rows.append({"video": video.relative_to(args.videos).as_posix(), "off": off, "on": on})
            print(f"{rows[-1]['video']}: {off} -> {on}", file=sys.stderr)
    table = Table(title="track ids per clip (relink off -> on)", title_justify="left")
    for name, justify in (("video", "left"), ("relink off", "right"), ("relink on", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(row["video"], str(row["off"]), str(row["on"]))
    total_off, total_on = sum(r["off"] for r in rows), sum(r["on"] for r in rows)
    table.add_row("total", str(total_off), str(total_on), style="bold")
    Console().print(table)
    result = {
        "command": "python -m benchmarks.track_ids " + " ".join(argv or sys.argv[1:]),
        "videos": str(args.videos),
        "max_seconds": args.max_seconds,
        "settings": "product defaults: detector auto (shipped YuNet), detect every 5th frame, "
        "every frame analysed",
        "model": "untrained tiny backbone (ids do not depend on it: appearance descriptor)",
        "relink": {
            "max_gap_s": RELINK_GAP_S,
            "min_similarity": RELINK_SIMILARITY,
            "max_distance_sides": RELINK_DISTANCE,
            "max_scale": RELINK_SCALE,
        },
        "total_off": total_off,
        "total_on": total_on,
        "clips": rows,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
