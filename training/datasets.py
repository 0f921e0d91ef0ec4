"""Dataset adapters: find the videos of FaceForensics++, DFDC, Celeb-DF v2 and plain folders.

Each adapter walks a dataset in its official folder layout and yields ``Entry`` objects with the
label, the identities shown and, where the dataset ships a list, the official split. Videos that a
list or metadata file names but that are not on disk (partial downloads) are skipped with one
warning line each. ``build_index`` runs the adapters and the split rule of ``training.manifest``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from dfstream.errors import UsageError
from dfstream.sources import VIDEO_EXTENSIONS
from training.manifest import Entry, assign_splits

Warn = Callable[[str], None]

FFPP_SPLIT_FILES: tuple[str, ...] = ("train.json", "val.json", "test.json")
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"
_FFPP_PAIR = re.compile(r"^(\d+)_(\d+)$")
_CELEB_REAL = re.compile(r"^(id\d+)_\d+$")
_CELEB_FAKE = re.compile(r"^(id\d+)_(id\d+)_\d+$")


def _videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (recursive), sorted."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
    )


def _need_dir(path: Path, flag: str) -> None:
    if not path.is_dir():
        raise UsageError(f"{flag} {path}: no such folder")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable JSON file ({exc})") from exc


def read_ffpp_splits(folder: Path) -> list[tuple[tuple[str, str], str]]:
    """The official FF++ pair lists (``train.json`` ... each ``[["953", "974"], ...]``) found in
    ``folder`` or its ``splits/`` subfolder, as ``((ffpp:a, ffpp:b), split)`` links."""
    links: list[tuple[tuple[str, str], str]] = []
    for name in FFPP_SPLIT_FILES:
        path = next((p for p in (folder / name, folder / "splits" / name) if p.is_file()), None)
        if path is None:
            continue
        pairs = _read_json(path)
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in pairs
        ):
            raise UsageError(f"{path}: expected a JSON list of [target, source] id pairs")
        split = name.removesuffix(".json")
        links.extend(((f"ffpp:{a}", f"ffpp:{b}"), split) for a, b in pairs)
    return links


def index_ffpp(root: Path, warn: Warn) -> Iterator[Entry]:
    """FF++: ``original_sequences/youtube/<c>/videos`` (REAL) and
    ``manipulated_sequences/<method>/<c>/videos/<target>_<source>.mp4`` (FAKE)."""
    _need_dir(root, "--ffpp")
    originals = root / "original_sequences" / "youtube"
    manipulated = root / "manipulated_sequences"
    if not originals.is_dir() and not manipulated.is_dir():
        raise UsageError(
            f"--ffpp {root}: expected original_sequences/ or manipulated_sequences/ inside"
        )
    if originals.is_dir():
        for video in _videos(originals):
            yield Entry(
                path=str(video.absolute()),
                label="REAL",
                dataset="ffpp",
                identities=(f"ffpp:{video.stem}",),
                method="original",
                follow_group=True,
            )
    if manipulated.is_dir():
        for method_dir in sorted(p for p in manipulated.iterdir() if p.is_dir()):
            for video in _videos(method_dir):
                match = _FFPP_PAIR.match(video.stem)
                ids = (
                    (f"ffpp:{match.group(1)}", f"ffpp:{match.group(2)}")
                    if match
                    else (f"ffpp:{method_dir.name}:{video.stem}",)
                )
                yield Entry(
                    path=str(video.absolute()),
                    label="FAKE",
                    dataset="ffpp",
                    identities=ids,
                    method=method_dir.name,
                    follow_group=True,
                )


def _dfdc_metadata(path: Path, warn: Warn) -> Iterator[Entry]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected DFDC metadata (a JSON object keyed by file name)")
    for name, info in sorted(data.items()):
        video = path.parent / name
        label = str(info.get("label", "")).upper() if isinstance(info, dict) else ""
        if label not in ("REAL", "FAKE"):
            warn(f"{video}: listed in {path} without a REAL/FAKE label; skipped")
            continue
        if not video.is_file():
            warn(f"{video}: listed in {path} but missing; skipped")
            continue
        original = info.get("original") if label == "FAKE" else None
        # REAL entries have no "original"; a fake is grouped with the real video it came from.
        source = Path(str(original)).stem if original else video.stem
        yield Entry(
            path=str(video.absolute()),
            label=label,  # type: ignore[arg-type]
            dataset="dfdc",
            identities=(f"dfdc:{source}",),
            method="dfdc",
        )


def _dfdc_labels(path: Path, warn: Warn) -> Iterator[Entry]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"filename", "label"} <= set(reader.fieldnames or ()):
            raise UsageError(f"{path}: expected the DFDC test columns filename,label")
        for row in reader:
            name = row["filename"]
            video = next(
                (p for p in (path.parent / name, path.parent / "videos" / name) if p.is_file()),
                None,
            )
            if video is None:
                warn(f"{path.parent / name}: listed in {path} but missing; skipped")
                continue
            value = row["label"].strip()
            if value not in ("0", "1"):
                warn(f"{video}: label {value!r} in {path} is neither 0 nor 1; skipped")
                continue
            yield Entry(
                path=str(video.absolute()),
                label="FAKE" if value == "1" else "REAL",  # DFDC test labels: 1 = fake
                dataset="dfdc",
                identities=(f"dfdc-test:{video.stem}",),
                method="dfdc",
                official="test",
            )


def index_dfdc(root: Path, warn: Warn) -> Iterator[Entry]:
    """DFDC: every ``metadata.json`` (train parts) and ``labels.csv`` (test set) under ``root``."""
    _need_dir(root, "--dfdc")
    metadata = sorted(root.glob("metadata.json")) + sorted(root.glob("*/metadata.json"))
    labels = sorted(root.glob("labels.csv")) + sorted(root.glob("*/labels.csv"))
    if not metadata and not labels:
        raise UsageError(
            f"--dfdc {root}: expected dfdc_train_part_*/metadata.json or a test labels.csv"
        )
    for path in metadata:
        yield from _dfdc_metadata(path, warn)
    for path in labels:
        yield from _dfdc_labels(path, warn)


def read_celebdf_test_list(path: Path) -> dict[str, str]:
    """``List_of_testing_videos.txt`` as {relative path: label}. In this file **1 = REAL and
    0 = FAKE** (the opposite of DFDC's labels.csv)."""
    labels: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise UsageError(f"{path}:{number}: expected '<1 real|0 fake> <path>', got {line!r}")
        labels[parts[1]] = "REAL" if parts[0] == "1" else "FAKE"
    return labels


def _celebdf_identities(relative: str) -> tuple[str, ...]:
    stem = Path(relative).stem
    if fake := _CELEB_FAKE.match(stem):
        return (f"celebdf:{fake.group(1)}", f"celebdf:{fake.group(2)}")
    if real := _CELEB_REAL.match(stem):
        return (f"celebdf:{real.group(1)}",)
    return (f"celebdf:{Path(relative).parent.name}:{stem}",)  # YouTube-real: one per video


def index_celebdf(root: Path, warn: Warn) -> Iterator[Entry]:
    """Celeb-DF v2: ``Celeb-real``, ``YouTube-real`` (REAL), ``Celeb-synthesis`` (FAKE) and the
    official test list; listed videos are test, labelled by the list."""
    _need_dir(root, "--celebdf")
    folders = {"Celeb-real": "REAL", "YouTube-real": "REAL", "Celeb-synthesis": "FAKE"}
    if not any((root / name).is_dir() for name in folders):
        raise UsageError(f"--celebdf {root}: expected Celeb-real/, YouTube-real/, Celeb-synthesis/")
    list_path = root / CELEBDF_TEST_LIST
    test = read_celebdf_test_list(list_path) if list_path.is_file() else {}
    for relative in sorted(test):
        if not (root / relative).is_file():
            warn(f"{root / relative}: listed in {list_path} but missing; skipped")
    for name, folder_label in folders.items():
        if not (root / name).is_dir():
            continue
        for video in _videos(root / name):
            relative = video.relative_to(root).as_posix()
            label = test.get(relative, folder_label)
            if label != folder_label:
                warn(f"{video}: {CELEBDF_TEST_LIST} says {label}, its folder {folder_label}")
            yield Entry(
                path=str(video.absolute()),
                label=label,  # type: ignore[arg-type]
                dataset="celebdf",
                identities=_celebdf_identities(relative),
                method="celeb-synthesis" if name == "Celeb-synthesis" else name.lower(),
                official="test" if relative in test else None,
            )


def index_folder(root: Path, label: str, warn: Warn) -> Iterator[Entry]:
    """Every video under a plain folder, all with one label; each video is its own identity."""
    _need_dir(root, f"--{label.lower()}")
    for video in _videos(root):
        relative = video.relative_to(root).with_suffix("").as_posix()
        yield Entry(
            path=str(video.absolute()),
            label=label,  # type: ignore[arg-type]
            dataset=label.lower(),
            identities=(f"{label.lower()}:{relative}",),
        )


def build_index(
    *,
    ffpp: Path | None = None,
    dfdc: Path | None = None,
    celebdf: Path | None = None,
    real: Path | None = None,
    fake: Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    warn: Warn,
) -> list[Entry]:
    """All videos of the given datasets, with splits that keep every identity on one side."""
    entries: list[Entry] = []
    links: list[tuple[tuple[str, str], str]] = []
    if ffpp is not None:
        entries.extend(index_ffpp(ffpp, warn))
        links.extend(read_ffpp_splits(ffpp))
    if dfdc is not None:
        entries.extend(index_dfdc(dfdc, warn))
    if celebdf is not None:
        entries.extend(index_celebdf(celebdf, warn))
    if real is not None:
        entries.extend(index_folder(real, "REAL", warn))
    if fake is not None:
        entries.extend(index_folder(fake, "FAKE", warn))
    if not any(x is not None for x in (ffpp, dfdc, celebdf, real, fake)):
        raise UsageError("index: give at least one of --ffpp, --dfdc, --celebdf, --real, --fake")
    return assign_splits(
        entries, val_fraction=val_fraction, test_fraction=test_fraction, links=links
    )
