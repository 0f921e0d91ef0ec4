"""``python -m training``: index datasets, cut face crops, self-blend, train and evaluate.

Like ``dfstream``, every expected failure is one line on stderr with an exit code
(2 usage, 3 unreadable video, 4 weights, 5 internal/backend, 6 output, 130 interrupted);
``--debug`` adds the traceback. This is the only module that reads environment variables.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from dfstream.errors import DfstreamError, UsageError
from dfstream.faces import default_model_cache
from dfstream.model.backbones import backbone_names, get_backbone
from dfstream.model.spec import DEFAULT_BACKBONE

EXIT_CODES = """exit codes:
  0 done   2 usage error   3 unreadable video   4 weights missing/unfit
  5 internal error   6 output cannot be written   130 interrupted
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer but got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``python -m training`` command."""
    parser = _Parser(
        prog="python -m training",
        description="Turn deepfake datasets (or real footage only) into dfstream checkpoints.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("index", help="build a manifest CSV of videos, labels and splits")
    for flag, what in (
        (
            "--ffpp",
            "FaceForensics++ root (original_sequences/, manipulated_sequences/, "
            "optional train/val/test.json pair lists)",
        ),
        ("--dfdc", "DFDC root (dfdc_train_part_*/metadata.json, test labels.csv: 1 = fake)"),
        (
            "--celebdf",
            "Celeb-DF v2 root (Celeb-real/, YouTube-real/, Celeb-synthesis/, "
            "List_of_testing_videos.txt: 1 = real, 0 = fake)",
        ),
        ("--real", "a folder of real videos"),
        ("--fake", "a folder of fake videos"),
    ):
        p.add_argument(flag, type=Path, metavar="DIR", help=what)
    p.add_argument("--val-fraction", type=float, default=0.1, help="of unlisted groups (0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="of unlisted groups (0.1)")
    p.add_argument("--out", type=Path, required=True, metavar="MANIFEST.csv")

    p = sub.add_parser("preprocess", help="cut face crops of every manifest video into a cache")
    p.add_argument("manifest", type=Path, metavar="MANIFEST.csv")
    p.add_argument("--out", type=Path, required=True, metavar="CACHE", help="cache folder")
    p.add_argument("--frames", type=_positive, default=32, help="crops per video (32)")
    p.add_argument(
        "--run-length",
        type=_positive,
        default=8,
        help="consecutive frames per run; 1 = evenly spaced frames (8)",
    )
    p.add_argument("--size", type=_positive, default=112, help="crop side in pixels (112)")
    p.add_argument("--margin", type=float, default=0.2, help="crop margin around the box (0.2)")
    p.add_argument("--color-order", choices=("RGB", "BGR"), default="RGB")
    p.add_argument("--detector", choices=("auto", "yunet", "haar", "none"), default="auto")
    p.add_argument("--detector-model", type=Path, metavar="P", help="YuNet ONNX model file")
    p.add_argument("--detect-every", type=_positive, default=5, help="as in dfstream (5)")
    p.add_argument("--workers", type=int, default=None, help="processes (CPU count, max 8)")

    p = sub.add_parser("sbi-preview", help="PNG grid of real / self-blended / mask triples")
    p.add_argument("cache", type=Path, metavar="CACHE")
    p.add_argument("--out", type=Path, required=True, metavar="GRID.png")
    p.add_argument("--count", type=_positive, default=8, help="triples (8)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train a checkpoint from a crop cache")
    p.add_argument("cache", type=Path, metavar="CACHE")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    p.add_argument(
        "--backbone",
        choices=backbone_names(),
        default=DEFAULT_BACKBONE,
        help="; ".join(
            f"{get_backbone(n).name}: {get_backbone(n).description}" for n in backbone_names()
        )
        + f" ({DEFAULT_BACKBONE})",
    )
    p.add_argument("--epochs", type=_positive, default=10)
    p.add_argument("--max-steps", type=_positive, default=None, help="stop after N steps")
    p.add_argument("--batch", type=_positive, default=8, help="windows per step (8)")
    p.add_argument("--window", type=_positive, default=None, help="T (default: run length)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="ImageNet init of the backbone: "
        + "; ".join(
            f"{n} from {get_backbone(n).imagenet_source}"
            for n in backbone_names()
            if get_backbone(n).imagenet is not None
        ),
    )
    p.add_argument(
        "--pretrained-file",
        type=Path,
        metavar="FILE",
        help="ImageNet init from this state dict instead (implies --pretrained)",
    )
    p.add_argument("--sbi", action="store_true", help="train from REAL videos + self-blends")
    p.add_argument("--split", default="train", help="split to train on, or 'all' (train)")
    p.add_argument("--val-split", default="val", help="split for per-epoch metrics (val)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)

    for name, text in (
        ("recipe", "train the default model (EfficientNet-Lite0 + LSTM) in one command"),
        ("cv", "group-wise k-fold cross-validation of the recipe's variants"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--data",
            type=Path,
            default=Path("../shared/data"),
            help="folder with real/ and dev/labels.csv (default %(default)s)",
        )
        p.add_argument("--out", type=Path, required=True, help="run folder (resumable)")
        p.add_argument(
            "--work",
            type=Path,
            default=None,
            help="where the crop cache lives (default: --out); share it between runs",
        )
        p.add_argument("--steps", type=_positive, default=None, help="frame-stage steps")
        p.add_argument("--head-steps", type=_positive, default=None, help="head-stage steps")
        p.add_argument("--size", type=_positive, default=None, help="input size in pixels")
        p.add_argument(
            "--margin", type=float, default=None, help="crop margin around the box (0.0)"
        )
        p.add_argument(
            "--frozen-blocks", type=int, default=None, help="Lite0 blocks kept frozen (5)"
        )
        p.add_argument(
            "--patch",
            type=int,
            default=None,
            help="train the frame stage on aligned patches of this side (0: whole crops)",
        )
        p.add_argument(
            "--partial-swap",
            type=float,
            default=None,
            help="probability that a training fake is its real twin with one blob of the fake "
            "pasted in (0)",
        )
        p.add_argument(
            "--head-init",
            choices=("frame", "random"),
            default=None,
            help="start the LSTM head as the frame classifier (frame, default) or at random",
        )
        p.add_argument("--seed", type=int, default=None)
        if name == "recipe":
            p.add_argument(
                "--variant", choices=("sbi", "supervised", "mixed"), default="supervised"
            )
            p.add_argument("--name", default="dfstream-lite0-v2", help="the model's name")
            p.add_argument(
                "--val-group",
                default=None,
                help="DeepFaceLive face model kept for validation (default: seeded)",
            )
        else:
            p.add_argument("--folds", type=_positive, default=3)
            p.add_argument(
                "--only-folds",
                type=lambda t: [int(v) for v in t.split(",")],
                default=None,
                help="comma-separated fold numbers to run (0-based)",
            )
            p.add_argument(
                "--variants",
                type=lambda t: t.split(","),
                default=["sbi", "supervised", "mixed"],
                help="comma-separated: sbi, supervised, mixed",
            )
            p.add_argument(
                "--train-seed",
                type=int,
                default=None,
                help="seed of the training draws only (weights, pairs, augmentations); --seed "
                "still deals the folds and the validation face models, so the same splits are "
                "trained again: training noise",
            )
            p.add_argument("--results", type=Path, default=Path("benchmarks/results"))
            p.add_argument("--name", default="cv_folds", help="results file stem")  # fmt: skip

    p = sub.add_parser("evaluate", help="frame/window/video metrics of a checkpoint")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    p.add_argument("cache", type=Path, metavar="CACHE")
    p.add_argument("--out", type=Path, required=True, metavar="METRICS.json")
    p.add_argument("--roc", type=Path, default=None, help="ROC PNG (default: next to --out)")
    p.add_argument("--split", default="test", help="split to evaluate, or 'all' (test)")
    p.add_argument(
        "--sbi",
        action="store_true",
        help="score every crop against its self-blended copy (real footage only)",
    )
    p.add_argument("--batch", type=_positive, default=32)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _model_cache() -> Path:
    return default_model_cache(home=Path.home(), xdg_cache_home=os.environ.get("XDG_CACHE_HOME"))


def run(args: argparse.Namespace, console: Console) -> int:
    """Execute one parsed command."""
    if args.command == "index":
        from training.commands import cmd_index

        return cmd_index(args, console)
    if args.command == "preprocess":
        from training.commands import cmd_preprocess

        return cmd_preprocess(args, console, model_cache=_model_cache())
    if args.command == "sbi-preview":
        from training.sbi import cmd_preview

        return cmd_preview(args, console)
    if args.command == "train":
        from training.train import cmd_train

        return cmd_train(args, console)
    if args.command == "recipe":
        from training.recipe import cmd_recipe

        return cmd_recipe(args, console)
    if args.command == "cv":
        from training.recipe import cmd_cv

        return cmd_cv(args, console)
    from training.evaluate import cmd_evaluate

    return cmd_evaluate(args, console)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        args = build_parser().parse_args(argv)
        return run(args, console)
    except DfstreamError as exc:
        if debug:
            traceback.print_exc()
        print(f"training: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("training: interrupted; finished work is kept (rerun to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"training: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 5
