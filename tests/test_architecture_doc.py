"""docs/architecture.md's "how to add" recipes name things that exist in the code."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


# (recipe, name as the document writes it, module, attribute that must exist there)
NAMES = [
    ("How to add a source kind", "URL_SCHEMES", "dfstream.sources.spec", "URL_SCHEMES"),
    ("How to add a source kind", "LIVE_KINDS", "dfstream.sources.spec", "LIVE_KINDS"),
    ("How to add a source kind", "register_source", "dfstream.sources", "register_source"),
    ("How to add a source kind", "_INPUTS", "dfstream.sources.ffmpeg", "_INPUTS"),
    ("How to add a source kind", "sources/base.py", "dfstream.sources.base", "Source"),
    ("How to add a sink", "ThreadedSink", "dfstream.sinks.base", "ThreadedSink"),
    ("How to add a sink", "open_early_sinks", "dfstream.sinks.build", "open_early_sinks"),
    ("How to add a sink", "open_run_sinks", "dfstream.sinks.build", "open_run_sinks"),
    ("How to add a sink", "outputs_from_args", "dfstream.cli.analyze", "outputs_from_args"),
    ("How to add a sink", "OutputConfig", "dfstream.config", "OutputConfig"),
    ("How to add a backbone", "register_backbone", "dfstream.model.backbones", "register_backbone"),
    ("How to add a backbone", "native_spec", "dfstream.model.spec", "native_spec"),
]


@pytest.mark.parametrize(("recipe", "written", "module", "attribute"), NAMES)
def test_recipe_names_exist(recipe: str, written: str, module: str, attribute: str) -> None:
    assert written in _section(recipe)
    assert hasattr(importlib.import_module(module), attribute)


def test_recipe_files_exist() -> None:
    for title in ("How to add a source kind", "How to add a sink", "How to add a backbone"):
        for path in re.findall(r"`(dfstream/[^`\s]+)`", _section(title)):
            if "<" not in path:
                assert (REPO / path).exists(), f"{title}: {path} does not exist"


def test_backbone_fields_match_the_recipe() -> None:
    from dfstream.model.backbones import Backbone

    fields = {f.name for f in dataclasses.fields(Backbone)}
    recipe = _section("How to add a backbone")
    written = {w.split("=")[0] for w in recipe.replace("(", " ").split() if w.endswith("=...,")}
    assert written and written <= fields
    required = {f.name for f in dataclasses.fields(Backbone) if f.default is dataclasses.MISSING}
    assert required <= written | {"name"}


def test_opener_signature_matches_the_recipe() -> None:
    from dfstream.sources.file import open_file

    params = list(inspect.signature(open_file).parameters)
    assert params == ["spec", "stream_id", "live", "on_status", "stop"]
    assert "open_x(spec, *, stream_id, live, on_status, stop)" in _section(
        "How to add a source kind"
    )
