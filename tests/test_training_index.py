"""``training index``: dataset layouts, label conventions, missing files, identity-safe splits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dfstream.errors import UsageError
from training.datasets import build_index, read_celebdf_test_list
from training.manifest import Entry, assign_splits, read_manifest, write_manifest

REPO = Path(__file__).resolve().parents[1]


def _touch(root: Path, *relative: str) -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by index")


def _by_name(entries: list[Entry]) -> dict[str, Entry]:
    return {Path(e.path).name: e for e in entries}


def test_celebdf_test_list_labels_are_inverted(tmp_path: Path) -> None:
    root = tmp_path / "Celeb-DF-v2"
    _touch(
        root,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0001.mp4",
        "Celeb-real/id2_0000.mp4",
        "Celeb-real/id3_0000.mp4",
        "YouTube-real/00170.mp4",
        "YouTube-real/00200.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
        "Celeb-synthesis/id2_id3_0000.mp4",
    )
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n"
        "0 Celeb-synthesis/id0_id1_0000.mp4\n"
        "1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-synthesis/id9_id8_0003.mp4\n"  # listed, not on disk
    )
    assert read_celebdf_test_list(root / "List_of_testing_videos.txt") == {
        "YouTube-real/00170.mp4": "REAL",
        "Celeb-synthesis/id0_id1_0000.mp4": "FAKE",
        "Celeb-real/id0_0000.mp4": "REAL",
        "Celeb-synthesis/id9_id8_0003.mp4": "FAKE",
    }
    warnings: list[str] = []
    entries = _by_name(build_index(celebdf=root, warn=warnings.append))
    assert [w for w in warnings if "id9_id8_0003.mp4" in w and "missing" in w] == warnings
    assert len(warnings) == 1
    assert (entries["00170.mp4"].label, entries["00170.mp4"].split) == ("REAL", "test")
    fake = entries["id0_id1_0000.mp4"]
    assert (fake.label, fake.split) == ("FAKE", "test")
    assert set(fake.identities) == {"celebdf:id0", "celebdf:id1"}
    # id1 is in the test list through the fake: its unlisted training video must not be trained
    assert entries["id1_0001.mp4"].split == "excluded"
    # id2/id3 are not in the test list: they stay together on one side
    assert entries["id2_0000.mp4"].split == entries["id2_id3_0000.mp4"].split
    assert entries["id2_0000.mp4"].split in ("train", "val", "test")


def _ffpp_tree(root: Path) -> None:
    pairs = {
        "train": [["000", "003"], ["010", "011"]],
        "val": [["100", "101"]],
        "test": [["200", "201"], ["202", "203"]],
    }
    root.mkdir(parents=True)
    for split, split_pairs in pairs.items():
        (root / f"{split}.json").write_text(json.dumps(split_pairs))
        for a, b in split_pairs:
            for c in ("c23", "c40"):
                _touch(root, f"original_sequences/youtube/{c}/videos/{a}.mp4")
                _touch(root, f"original_sequences/youtube/{c}/videos/{b}.mp4")
                for method in ("Deepfakes", "FaceSwap", "NeuralTextures"):
                    _touch(root, f"manipulated_sequences/{method}/{c}/videos/{a}_{b}.mp4")
                    _touch(root, f"manipulated_sequences/{method}/{c}/videos/{b}_{a}.mp4")
    _touch(root, "original_sequences/youtube/c23/videos/900.mp4")  # in no pair list


def test_ffpp_pairs_never_straddle_splits(tmp_path: Path) -> None:
    root = tmp_path / "ffpp"
    _ffpp_tree(root)
    entries = build_index(ffpp=root, warn=pytest.fail)
    assert len(entries) == 5 * (2 * 2 + 2 * 2 * 3) + 1
    expected = {
        "000": "train",
        "003": "train",
        "010": "train",
        "011": "train",
        "100": "val",
        "101": "val",
        "200": "test",
        "201": "test",
        "202": "test",
        "203": "test",
    }
    sides: dict[str, set[str]] = {}
    for entry in entries:
        for identity in entry.identities:
            sides.setdefault(identity, set()).add(entry.split)
        stem = Path(entry.path).stem
        if stem in expected:
            assert entry.label == "REAL" and entry.split == expected[stem]
        elif "_" in stem:
            a, b = stem.split("_")
            assert entry.label == "FAKE" and entry.split == expected[a] == expected[b]
    assert all(len(s) == 1 for s in sides.values()), sides
    assert _by_name(entries)["900.mp4"].split in ("train", "val", "test")


def test_ffpp_split_files_that_share_an_identity_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "ffpp"
    _touch(root, "original_sequences/youtube/c23/videos/001.mp4")
    (root / "train.json").write_text('[["001", "002"]]')
    (root / "test.json").write_text('[["002", "003"]]')
    with pytest.raises(UsageError, match="both sides"):
        build_index(ffpp=root, warn=pytest.fail)


def test_without_lists_a_fake_and_its_sources_share_one_side(tmp_path: Path) -> None:
    root = tmp_path / "ffpp"
    names = [f"{i:03d}" for i in range(40)]
    for a, b in zip(names[::2], names[1::2], strict=True):
        _touch(
            root,
            f"original_sequences/youtube/c23/videos/{a}.mp4",
            f"manipulated_sequences/Deepfakes/c23/videos/{a}_{b}.mp4",
        )
    entries = build_index(ffpp=root, val_fraction=0.3, test_fraction=0.3, warn=pytest.fail)
    split_of = {Path(e.path).stem: e.split for e in entries}
    assert {"train", "val", "test"} <= set(split_of.values())
    for a in names[::2]:
        b = names[names.index(a) + 1]
        assert split_of[a] == split_of[f"{a}_{b}"]


def test_dfdc_metadata_and_test_labels(tmp_path: Path) -> None:
    part = tmp_path / "dfdc" / "dfdc_train_part_3"
    _touch(part, "aaa.mp4", "bbb.mp4", "ccc.mp4")
    (part / "metadata.json").write_text(
        json.dumps(
            {
                "aaa.mp4": {"label": "REAL", "split": "train"},
                "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
                "ccc.mp4": {"label": "FAKE", "split": "train", "original": "zzz.mp4"},
                "gone.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
            }
        )
    )
    test = tmp_path / "dfdc" / "test"
    _touch(test, "t1.mp4", "t2.mp4")
    (test / "labels.csv").write_text("filename,label\nt1.mp4,1\nt2.mp4,0\nt3.mp4,1\n")
    warnings: list[str] = []
    entries = _by_name(build_index(dfdc=tmp_path / "dfdc", warn=warnings.append))
    assert sorted(entries) == ["aaa.mp4", "bbb.mp4", "ccc.mp4", "t1.mp4", "t2.mp4"]
    assert len(warnings) == 2 and "gone.mp4" in warnings[0] and "t3.mp4" in warnings[1]
    assert entries["bbb.mp4"].split == entries["aaa.mp4"].split  # fake with its original
    assert (entries["t1.mp4"].label, entries["t1.mp4"].split) == ("FAKE", "test")
    assert (entries["t2.mp4"].label, entries["t2.mp4"].split) == ("REAL", "test")


def test_plain_folders_and_manifest_round_trip(tmp_path: Path) -> None:
    _touch(tmp_path / "real", "a.mp4", "sub/b.mov", "notes.txt")
    _touch(tmp_path / "fake", "c.mkv")
    entries = build_index(real=tmp_path / "real", fake=tmp_path / "fake", warn=pytest.fail)
    assert sorted((Path(e.path).name, e.label) for e in entries) == [
        ("a.mp4", "REAL"),
        ("b.mov", "REAL"),
        ("c.mkv", "FAKE"),
    ]
    write_manifest(tmp_path / "m.csv", entries)
    assert read_manifest(tmp_path / "m.csv") == entries
    header = (tmp_path / "m.csv").read_text().splitlines()[0]
    assert header.startswith("path,label,dataset,split,group")


def test_assign_splits_is_stable_and_disjoint() -> None:
    entries = [Entry(f"v{i}.mp4", "REAL", "x", (f"x:{i % 7}",)) for i in range(50)]
    first, second = assign_splits(entries), assign_splits(list(reversed(entries)))
    assert {e.path: e.split for e in first} == {e.path: e.split for e in second}


def test_index_on_the_mini_corpus(shared_dir: Path, tmp_path: Path) -> None:
    mini = shared_dir / "data" / "mini"
    out = tmp_path / "mini.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "index",
            "--ffpp",
            str(mini / "ffpp"),
            "--dfdc",
            str(mini / "dfdc"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    labels = {Path(e.path).stem: e.label for e in read_manifest(out)}
    assert labels == {"519": "REAL", "519_515": "FAKE", "brtujopkby": "FAKE"}
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "awnfpubqmo.mp4" in warnings[0] and "missing" in warnings[0]


def test_index_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "index",
            "--ffpp",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "m.csv"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such folder" in done.stderr
