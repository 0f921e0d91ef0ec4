"""The manifest: one CSV row per video (path, label, dataset, split, group, ...) and the split rule.

Dataset adapters (``training.datasets``) produce ``Entry`` objects that know which identities
they show and, where a dataset ships one, their official split. ``assign_splits`` then joins the
identities of every video into connected groups (a fake links its target and source identities)
and gives every group exactly one side, so that no identity (and no FF++ pair) is ever on both
sides of a split:

* a group with official splits takes that split; two different official splits in one group are
  an error naming the identity;
* a group without official splits is hashed (stable across runs and machines) to train, val or
  test by the given fractions;
* rows of a group with official splits that are not listed themselves follow their group when
  their dataset says so (FF++: the originals of the pair identities), and are otherwise marked
  ``excluded`` (Celeb-DF: training videos showing a person of the official test list).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from dfstream.errors import OutputError, UsageError

Label = Literal["REAL", "FAKE"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
EXCLUDED = "excluded"
COLUMNS: tuple[str, ...] = ("path", "label", "dataset", "split", "group", "identities", "method")


@dataclass(frozen=True)
class Entry:
    """One video of a dataset, before and after the split rule."""

    path: str
    label: Label
    dataset: str
    identities: tuple[str, ...]
    """Everyone shown, namespaced by dataset (``ffpp:519``); a fake lists target and source."""
    method: str = ""
    official: str | None = None
    """The split a dataset's own list gives this video, if any."""
    follow_group: bool = False
    """When unlisted: take the split of the group's listed videos instead of ``excluded``."""
    split: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        if self.label not in ("REAL", "FAKE"):
            raise ValueError(f"Entry.label: expected REAL or FAKE but got {self.label!r}")
        if not self.identities:
            raise ValueError(f"Entry.identities: expected at least one identity for {self.path}")


class _UnionFind:
    """Connected components over identity names."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        parent = self._parent.setdefault(item, item)
        if parent != item:
            parent = self._parent[item] = self.find(parent)
        return parent

    def union(self, items: Sequence[str]) -> None:
        roots = sorted({self.find(i) for i in items})
        for other in roots[1:]:
            self._parent[other] = roots[0]


def _stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` alone (same on every machine and Python run)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    entries: Iterable[Entry],
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    links: Iterable[tuple[Sequence[str], str]] = (),
) -> list[Entry]:
    """Entries with ``split`` and ``group`` set by the rule in the module docstring.

    ``links`` are extra identity groups with their official split (FF++ pair lists), so that a
    pair is one group even when none of its videos is present.
    """
    if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
        raise UsageError("split fractions: expected val + test < 1 and both >= 0")
    entries = list(entries)
    links = [(tuple(ids), split) for ids, split in links]
    uf = _UnionFind()
    for entry in entries:
        uf.union(entry.identities)
    for ids, _ in links:
        uf.union(ids)
    official: dict[str, dict[str, str]] = {}  # root -> split -> an identity that proves it
    for ids, split in links:
        official.setdefault(uf.find(ids[0]), {}).setdefault(split, ids[0])
    for entry in entries:
        if entry.official is not None:
            root = uf.find(entry.identities[0])
            official.setdefault(root, {}).setdefault(entry.official, entry.path)
    for root, splits in official.items():
        if len(splits) > 1:
            where = ", ".join(f"{split} ({why})" for split, why in sorted(splits.items()))
            raise UsageError(
                f"the official split lists put one identity group ({root}) on both sides: "
                f"{where}; fix or drop the split files"
            )
    members: dict[str, list[str]] = {}
    for entry in entries:
        members.setdefault(uf.find(entry.identities[0]), []).extend(entry.identities)
    out = []
    for entry in entries:
        root = uf.find(entry.identities[0])
        group = "+".join(sorted(set(members[root])))
        if len(group) > 120:  # giant components: a stable short name
            group = f"{root}+{len(set(members[root])) - 1}more"
        listed = official.get(root)
        if entry.official is not None:
            split = entry.official
        elif listed:
            split = next(iter(listed)) if entry.follow_group else EXCLUDED
        else:
            value = _stable_fraction(root)
            split = (
                "test"
                if value < test_fraction
                else "val"
                if value < test_fraction + val_fraction
                else "train"
            )
        out.append(replace(entry, split=split, group=group))
    check_disjoint(out)
    return out


def check_disjoint(entries: Iterable[Entry]) -> None:
    """Raise ``UsageError`` when an identity appears in two of train / val / test."""
    seen: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if entry.split not in SPLITS:
            continue
        for identity in entry.identities:
            first = seen.setdefault(identity, (entry.split, entry.path))
            if first[0] != entry.split:
                raise UsageError(
                    f"identity {identity} is in {first[0]} ({first[1]}) and in {entry.split} "
                    f"({entry.path})"
                )


def write_manifest(path: Path, entries: Sequence[Entry]) -> None:
    """Write the manifest CSV (identities joined by ``;``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for e in entries:
                row = (e.path, e.label, e.dataset, e.split, e.group, ";".join(e.identities))
                writer.writerow((*row, e.method))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the manifest ({exc.strerror or exc})") from exc


def read_manifest(path: Path) -> list[Entry]:
    """Read a manifest CSV; only ``path`` and ``label`` are required, the rest default."""
    if not path.is_file():
        raise UsageError(f"{path}: no such manifest; make one with `python -m training index`")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        if not {"path", "label"} <= fields:
            raise UsageError(f"{path}: expected a CSV with at least the columns path,label")
        entries = []
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip().upper()
            if label not in ("REAL", "FAKE"):
                raise UsageError(f"{path}:{line}: label must be REAL or FAKE, got {label!r}")
            video = row["path"]
            identities = tuple(i for i in (row.get("identities") or "").split(";") if i)
            entries.append(
                Entry(
                    path=video,
                    label=label,  # type: ignore[arg-type]
                    dataset=row.get("dataset") or "",
                    identities=identities or (row.get("group") or video,),
                    method=row.get("method") or "",
                    split=row.get("split") or "train",
                    group=row.get("group") or video,
                )
            )
    return entries
