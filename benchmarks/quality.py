"""``python -m benchmarks.quality``: detection quality of a model on labelled videos, measured
through the product's own path (``dfstream.Analysis``, as ``dfstream VIDEO`` runs it).

Inputs: a labelled CSV (``--labels FILE``: ``path,label[,generator][,group]``, paths relative
to the CSV's folder, labels REAL/FAKE or 0/1; a header row may name extra columns, as in
``../shared/data/dev/labels.csv``) or two folders (``--real DIR --fake DIR``). The model:
``--weights`` (default: the shipped default model), or ``--random-compat`` (a random
ResNeXt50+LSTM saved in the public checkpoint layout and loaded by the compatibility loader: it
proves the harness serves that format; its numbers mean nothing).

Every video is analysed alone with the same settings (detector, backend, window, stride,
threshold; ``--max-seconds`` or ``--limit-frames`` cap the work per video). Scores:

* **video score** = the mean of every window score of every face in the video (the headline;
  ``max`` is reported too). The mean is steadier than dfstream's whole-video verdict score (the
  highest per-face mean), which it equals for one-face videos; videos without any window
  (no face found) are listed and left out of the metrics;
* **window level**: every window score with its video's label (labels are per video).

Reported at the threshold the product uses (``--threshold``, else the checkpoint's, else 0.5):
AUC, accuracy, precision, recall, F1, the false-FAKE rate on REAL videos and the EER (from
``training.metrics.compute_metrics``); the AUC's 95% interval, a bootstrap that resamples the
CSV's groups (``group`` column; one group per video without it; windows go with their video's
group), so that it says how far the AUC could move on other face models or clips like these;
the product's verdict counts per label, and per
generator: a FAKE-only generator's recall, mean score and AUC against all REAL videos. Writes
``benchmarks/results/quality_<name>.json`` and ``.md``, and ``quality_<name>_roc.png`` when
matplotlib is installed (else a notice). Exit status: 0, 2 for a usage error, 3-6 as
``dfstream`` for other errors.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from benchmarks.report import fmt, markdown_table, rich_table
from dfstream.api import Analysis
from dfstream.config import BACKENDS, DETECTORS, AnalysisConfig
from dfstream.errors import DfstreamError, SourceError, UsageError
from dfstream.model import DeepfakeNet, LoadedModel, compat_spec, load_weights
from dfstream.model.shipped import load_default_model
from dfstream.sources import VIDEO_EXTENSIONS, Source, SourceSpec, open_source
from dfstream.tools.benchkit import ScoreCollector, machine_info
from dfstream.types import Frame, StreamSummary
from training.metrics import compute_metrics, grouped_auc_interval, roc_curve

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = {"REAL": 0, "FAKE": 1, "0": 0, "1": 1}


@dataclass(frozen=True)
class Item:
    """One labelled video: label 1 = FAKE."""

    path: Path
    label: int
    generator: str
    group: str


@dataclass
class Scored:
    """One analysed video: its window scores (all faces) and the product's summary."""

    item: Item
    windows: list[float] = field(default_factory=list)
    verdict: str = "ERROR"
    error: str | None = None
    wall_s: float = 0.0

    @property
    def mean(self) -> float | None:
        """The headline video score: the mean of every window score."""
        return float(np.mean(self.windows)) if self.windows else None

    @property
    def peak(self) -> float | None:
        """The highest window score."""
        return max(self.windows) if self.windows else None


# -- inputs ---------------------------------------------------------------------------------


def _label(text: str, where: str) -> int:
    label = LABELS.get(text.strip().upper())
    if label is None:
        raise UsageError(f"{where}: label {text!r}: expected REAL, FAKE, 0 or 1")
    return label


def read_labels(csv_path: Path) -> list[Item]:
    """The videos of a labelled CSV (``path,label[,generator][,group]``, or a header row naming
    at least ``path`` and ``label``); paths are relative to the CSV's folder."""
    try:
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--labels {csv_path}: cannot read it ({exc})") from exc
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    columns = ["path", "label", "generator", "group"]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        columns, rows = [c.strip().lower() for c in rows[0]], rows[1:]
    items = []
    for number, row in enumerate(rows, start=2 if columns[0] == "path" else 1):
        where = f"--labels {csv_path}:{number}"
        record = dict(zip(columns, (c.strip() for c in row), strict=False))
        if not record.get("path") or "label" not in record:
            raise UsageError(f"{where}: expected path,label[,generator][,group]")
        label = _label(record["label"], where)
        path = csv_path.parent / record["path"]
        generator = record.get("generator") or ("real" if label == 0 else "fake")
        items.append(Item(path, label, generator, record.get("group") or path.stem))
    if not items:
        raise UsageError(f"--labels {csv_path}: no videos listed")
    return items


def read_folders(real: Path, fake: Path) -> list[Item]:
    """Every video under ``real`` (REAL) and ``fake`` (FAKE; generator = the folder's name)."""
    items = []
    for folder, label in ((real, 0), (fake, 1)):
        if not folder.is_dir():
            raise UsageError(f"{folder}: not a folder")
        videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise UsageError(f"{folder}: no videos ({' '.join(sorted(VIDEO_EXTENSIONS))})")
        generator = "real" if label == 0 else folder.name
        items += [Item(p, label, generator, p.stem) for p in videos]
    return items


def select(items: list[Item], only: Sequence[str], exclude: Sequence[str]) -> list[Item]:
    """The items of the groups asked for (all by default), minus the excluded groups."""
    chosen = [i for i in items if (not only or i.group in only) and i.group not in exclude]
    if not chosen:
        raise UsageError("no videos left after --only-groups/--exclude-groups")
    missing = [i.path for i in chosen if not i.path.is_file()]
    if missing:
        raise SourceError(f"{missing[0]}: no such video ({len(missing)} listed videos missing)")
    return chosen


# -- the model ------------------------------------------------------------------------------


def random_compat_checkpoint(folder: Path, *, window: int, seed: int = 0) -> Path:
    """A random ResNeXt50+LSTM state dict saved as the public files are (a bare state dict,
    ``model_<acc>_acc_<T>_frames_*.pt``), for checking that path end to end."""
    import torch

    torch.manual_seed(seed)
    path = folder / f"model_0_acc_{window}_frames_random.pt"
    torch.save(DeepfakeNet(compat_spec(window)).state_dict(), path)
    return path


def load_model(args: argparse.Namespace, scratch: Path) -> LoadedModel:
    """The model under test (see the module docstring)."""
    if args.random_compat:
        return load_weights(random_compat_checkpoint(scratch, window=args.window or 20))
    if args.weights is not None:
        return load_weights(args.weights, window=args.window)
    return load_default_model(window=args.window)


# -- running --------------------------------------------------------------------------------


class _FirstFrames(Source):
    """The first ``limit`` frames of a source (``--limit-frames``)."""

    def __init__(self, inner: Source, limit: int) -> None:
        self.inner, self.limit = inner, limit
        self.stream_id, self.source, self.live = inner.stream_id, inner.source, inner.live
        self.fps, self.media_duration_s = inner.fps, inner.media_duration_s
        self.width, self.height = inner.width, inner.height
        if self.fps and self.media_duration_s:
            self.media_duration_s = min(self.media_duration_s, limit / self.fps)

    def frames(self) -> Iterator[Frame]:
        return itertools.islice(self.inner.frames(), self.limit)

    def close(self) -> None:
        self.inner.close()


def _opener(limit: int | None) -> Callable[..., Source]:
    if limit is None:
        return open_source

    def opener(spec: SourceSpec, *, stream_id: str | None = None, **live: Any) -> Source:
        return _FirstFrames(open_source(spec, stream_id=stream_id, **live), limit)

    return opener


def config_for(args: argparse.Namespace, item: Item, loaded: LoadedModel) -> AnalysisConfig:
    """The analysis of one video, as ``dfstream VIDEO`` with the same flags would run it."""
    try:
        return AnalysisConfig(
            sources=(str(item.path),),
            weights=Path(loaded.origin),
            detector=args.detector,
            detector_model=args.detector_model,
            detect_every=args.detect_every,
            window=args.window,
            stride=args.stride,
            batch=args.batch,
            device=args.device,
            backend=args.backend,
            precision=args.precision,
            threads=args.threads,
            threshold=args.threshold,
            max_seconds=args.max_seconds,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def analyse(
    args: argparse.Namespace,
    items: Sequence[Item],
    loaded: LoadedModel,
    progress: Callable[[Scored, int], None],
) -> tuple[list[Scored], float, str]:
    """Every video through ``dfstream.Analysis``; returns the results, the threshold used and
    where it came from."""
    scored, threshold, origin = [], 0.5, "default"
    notices: list[str] = []
    for item in items:
        collector = ScoreCollector()
        run = Analysis(
            config_for(args, item, loaded),
            sinks=[collector],
            model=loaded,
            opener=_opener(args.limit_frames),
            on_notice=notices.append,
        )
        threshold = run.settings.scoring.threshold
        origin = run.settings.scoring.describe_threshold()
        start = time.perf_counter()
        result = run.run()
        summary: StreamSummary = result.summaries[0]
        one = Scored(
            item,
            windows=[e.score for e in collector.scores],
            verdict="ERROR" if summary.error else summary.verdict.value,
            error=summary.error,
            wall_s=time.perf_counter() - start,
        )
        scored.append(one)
        progress(one, len(scored))
    return scored, threshold, origin


# -- metrics --------------------------------------------------------------------------------


def _metrics(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = compute_metrics(y, s, threshold).to_json()
    if groups is not None:
        interval = grouped_auc_interval(y, s, list(groups))
        out["auc_interval"] = None if interval is None else interval.to_json()
    reals = s[y == 0]
    out["false_fake_rate"] = float(np.mean(reals >= threshold)) if reals.size else None
    out["mean_score"] = float(np.mean(s)) if s.size else None
    return out


def summarise(scored: Sequence[Scored], threshold: float) -> dict[str, Any]:
    """Every metric of the run (see the module docstring) as plain data."""
    usable = [v for v in scored if v.windows]
    if not usable:
        raise SourceError("no video produced a scored window (no faces found?): nothing to measure")
    labels = [v.item.label for v in usable]
    groups = [v.item.group for v in usable]
    means = {id(v): float(np.mean(v.windows)) for v in usable}
    levels = {
        "video_mean": _metrics(labels, [means[id(v)] for v in usable], threshold, groups),
        "video_max": _metrics(labels, [max(v.windows) for v in usable], threshold, groups),
        "window": _metrics(
            [v.item.label for v in usable for _ in v.windows],
            [s for v in usable for s in v.windows],
            threshold,
            [v.item.group for v in usable for _ in v.windows],
        ),
    }
    real_means = [means[id(v)] for v in usable if v.item.label == 0]
    generators: dict[str, Any] = {}
    for name in sorted({v.item.generator for v in usable}):
        mine = [v for v in usable if v.item.generator == name]
        scores = [means[id(v)] for v in mine]
        row: dict[str, Any] = {
            "videos": len(mine),
            "label": "FAKE" if all(v.item.label for v in mine) else "REAL",
            "mean_score": float(np.mean(scores)),
            "called_fake": float(np.mean([m >= threshold for m in scores])),
        }
        if row["label"] == "FAKE" and real_means:
            both = _metrics(
                [0] * len(real_means) + [1] * len(scores), real_means + scores, threshold
            )
            row |= {"auc_vs_all_real": both["auc"], "recall": both["recall"]}
        generators[name] = row
    verdicts = {
        label: dict(Counter(v.verdict for v in scored if v.item.label == value))
        for label, value in (("REAL", 0), ("FAKE", 1))
    }
    return {
        "threshold": threshold,
        "videos": len(scored),
        "scored_videos": len(usable),
        "unscored": [str(v.item.path) for v in scored if not v.windows],
        "levels": levels,
        "generators": generators,
        "product_verdicts": verdicts,
    }


def plot_roc(path: Path, scored: Sequence[Scored], title: str) -> bool:
    """The ROC curves of the video (mean, max) and window levels; False without matplotlib or
    without both classes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    usable = [v for v in scored if v.windows]
    curves = {
        "video mean": ([v.item.label for v in usable], [v.mean for v in usable]),
        "video max": ([v.item.label for v in usable], [v.peak for v in usable]),
        "window": (
            [v.item.label for v in usable for _ in v.windows],
            [s for v in usable for s in v.windows],
        ),
    }
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for name, (labels, scores) in curves.items():
        if 0 < sum(labels) < len(labels):
            fpr, tpr, _ = roc_curve(np.asarray(labels), np.asarray(scores, dtype=np.float64))
            ax.plot(fpr, tpr, label=f"{name} (n={len(labels)})")
            drawn = True
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false FAKE rate (REAL called FAKE)", ylabel="FAKE recall", title=title)
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


# -- tables and files -----------------------------------------------------------------------

LEVEL_HEADER = ("level", "n", "fakes", "AUC", "acc", "prec", "recall", "F1", "false-FAKE", "EER")
INTERVAL_COLUMN = "AUC 95%"  # Markdown only: the terminal gets it on a line of its own
GEN_HEADER = ("generator", "label", "videos", "mean score", "called FAKE", "AUC vs all REAL")


def interval_text(interval: dict[str, Any] | None) -> str:
    """``low-high``, or ``n/a`` where too few groups hold each class."""
    if not interval:
        return "n/a"
    return f"{interval['low']:.2f}-{interval['high']:.2f}"


def interval_note(result: dict[str, Any], *, values: bool = False) -> str:
    """What the AUC 95% interval is and over how many groups; with ``values``, each level's."""
    levels = result["levels"]
    counts = sorted({m["auc_interval"]["groups"] for m in levels.values() if m.get("auc_interval")})
    if not counts:
        return "AUC 95%: n/a (fewer than two groups hold each label)"
    text = (
        f"AUC 95%: bootstrap interval resampling {'/'.join(map(str, counts))} groups (the CSV's "
        "group column, else one per video)"
    )
    if values:
        text += ": " + ", ".join(
            f"{name} {interval_text(m.get('auc_interval'))}" for name, m in levels.items()
        )
    return text


def level_rows(result: dict[str, Any], *, intervals: bool = True) -> list[list[str]]:
    """One table row per level; ``intervals`` adds the AUC 95% column after the AUC."""
    rows = []
    for name, m in result["levels"].items():
        auc = [fmt(m["auc"], 3)] + ([interval_text(m.get("auc_interval"))] if intervals else [])
        rows.append(
            [name, str(m["n"]), str(m["fakes"]), *auc]
            + [
                fmt(m[k], 3)
                for k in ("accuracy", "precision", "recall", "f1", "false_fake_rate", "eer")
            ]
        )
    return rows


def level_header(*, intervals: bool = True) -> tuple[str, ...]:
    """The level table's header, with or without the AUC 95% column."""
    at = LEVEL_HEADER.index("AUC") + 1
    return LEVEL_HEADER[:at] + ((INTERVAL_COLUMN,) if intervals else ()) + LEVEL_HEADER[at:]


def generator_rows(result: dict[str, Any]) -> list[list[str]]:
    """One table row per generator."""
    return [
        [
            name,
            g["label"],
            str(g["videos"]),
            fmt(g["mean_score"], 3),
            fmt(g["called_fake"], 3),
            fmt(g.get("auc_vs_all_real"), 3),
        ]
        for name, g in result["generators"].items()
    ]


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """The Markdown version of the printed tables."""
    body = [
        f"# Detection quality: {result['name']}",
        "",
        f"Model {result['model']['name']} ({result['model']['kind']}), threshold "
        f"{result['threshold_in_use']}; {result['scored_videos']} of {result['videos']} videos "
        "scored; video score = mean window score over all faces (max also shown).",
        "",
        markdown_table(level_header(), level_rows(result)),
        interval_note(result),
        "",
        markdown_table(GEN_HEADER, generator_rows(result)),
        f"Product verdicts per label: {result['product_verdicts']}",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    path.write_text("\n".join(body))


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.quality``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description="Detection quality of a model on labelled videos, through dfstream's API.",
    )
    p.add_argument("csv", nargs="?", type=Path, help="labelled CSV (the same as --labels)")
    inputs = p.add_mutually_exclusive_group()
    inputs.add_argument("--labels", type=Path, help="CSV: path,label[,generator][,group]")
    inputs.add_argument("--real", type=Path, help="folder of REAL videos (with --fake)")
    p.add_argument("--fake", type=Path, help="folder of FAKE videos (with --real)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, help="checkpoint (default: the shipped model)")
    model.add_argument(
        "--random-compat",
        action="store_true",
        help="a random ResNeXt50+LSTM in the public file layout (checks that path only)",
    )
    p.add_argument("--name", default="run", help="results are quality_<name>.json|md|_roc.png")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="default benchmarks/results")
    p.add_argument("--detector", choices=DETECTORS, default="auto")
    p.add_argument("--detector-model", type=Path, help="YuNet ONNX model file")
    p.add_argument("--detect-every", type=int, default=5)
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--threads", type=int)
    p.add_argument("--threshold", type=float, help="default: the model's, else 0.5")
    p.add_argument("--window", type=int, help="frames per window (default: the model's)")
    p.add_argument("--stride", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    cap = p.add_mutually_exclusive_group()
    cap.add_argument("--max-seconds", type=float, help="analyse the first S s of each video")
    cap.add_argument("--limit-frames", type=int, help="analyse the first N frames of each video")
    p.add_argument("--only-groups", default="", help="comma-separated groups to score")
    p.add_argument("--exclude-groups", default="", help="comma-separated groups to leave out")
    return p


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def run(argv: Sequence[str], console: Console) -> int:
    """Measure, print, write; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.csv is not None:
        if args.labels is not None or args.real is not None:
            raise UsageError("give the labelled CSV once: positional, --labels or --real/--fake")
        args.labels = args.csv
    if args.labels is None and args.real is None:
        raise UsageError("give a labelled CSV (positional or --labels) or --real DIR --fake DIR")
    if (args.real is None) != (args.fake is None):
        raise UsageError("--real and --fake go together")
    if args.limit_frames is not None and args.limit_frames < 1:
        raise UsageError("--limit-frames: expected a whole number >= 1")
    items = read_labels(args.labels) if args.labels else read_folders(args.real, args.fake)
    items = select(items, _groups(args.only_groups), _groups(args.exclude_groups))
    with tempfile.TemporaryDirectory(prefix="dfstream-quality-") as scratch:
        loaded = load_model(args, Path(scratch))
        console.print(f"model {loaded.name} ({loaded.kind}), {len(items)} videos")

        def progress(one: Scored, done: int) -> None:
            score = "-" if one.mean is None else f"{one.mean:.3f}"
            console.print(
                f"[{done}/{len(items)}] {one.item.path.name} ({one.item.generator}): "
                f"{len(one.windows)} windows, mean {score}, {one.verdict}, {one.wall_s:.1f} s",
                highlight=False,
            )

        scored, threshold, origin = analyse(args, items, loaded, progress)
    result = {
        "name": args.name,
        "command": "python -m benchmarks.quality " + shlex.join(argv),
        "model": {
            "name": loaded.name,
            "kind": loaded.kind,
            "backbone": loaded.spec.backbone,
            "window": loaded.spec.window,
            "untrained": loaded.untrained,
        },
        "threshold_in_use": origin,
        "video_score": "mean of all window scores of all faces (headline); max also reported",
        **summarise(scored, threshold),
        "per_video": [
            {
                "path": str(v.item.path),
                "label": v.item.label,
                "generator": v.item.generator,
                "group": v.item.group,
                "windows": len(v.windows),
                "mean": v.mean,
                "max": v.peak,
                "verdict": v.verdict,
                "error": v.error,
                "wall_s": round(v.wall_s, 2),
            }
            for v in scored
        ],
        "machine": machine_info(),
    }
    stem = args.out_dir / f"quality_{args.name}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=_json_safe) + "\n")
    write_markdown(stem.with_suffix(".md"), result)
    title = f"{loaded.name}: threshold {origin}"
    levels = rich_table(title, level_header(intervals=False), level_rows(result, intervals=False))
    levels.columns[0].no_wrap = True  # the level names must stay readable on 80 columns
    console.print(levels)
    console.print(interval_note(result, values=True), highlight=False)
    console.print(rich_table("per generator", GEN_HEADER, generator_rows(result)))
    roc = stem.with_name(stem.name + "_roc.png")
    if not plot_roc(roc, scored, title):
        console.print("notice: no ROC plot (matplotlib missing, or one class only)")
    console.print(f"wrote {stem.with_suffix('.json')} and .md", highlight=False)
    return 0


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line and the error's exit code for expected errors."""
    console = Console(highlight=False)
    try:
        return run(list(sys.argv[1:] if argv is None else argv), console)
    except DfstreamError as exc:
        print(f"quality: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
