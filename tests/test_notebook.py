"""notebooks/train_on_colab.ipynb: stored without outputs, in sync with its py:percent script,
one parameters cell, and executed end to end on CPU with papermill (tiny parameters, generated
face clips, Drive and GPU off) producing a checkpoint, metrics JSON, ROC plot and overlay."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import av
import jupytext
import nbformat
import numpy as np
import papermill
import pytest

from dfstream.model import load_weights
from tests.media import write_clip
from training.manifest import read_manifest
from training.notebook import crop_grid

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "train_on_colab.ipynb"
SCRIPT = REPO / "notebooks" / "train_on_colab.py"

# Plain-folder videos are hashed to a split by their name (training.manifest): with these
# fractions person3 lands in test, person0 in val and the other three in train.
PEOPLE = [f"person{i}" for i in range(5)]
TINY = {
    "install": False,
    "repo_dir": str(REPO),
    "mount_drive": False,
    "val_fraction": 0.15,
    "test_fraction": 0.1,
    "detector": "none",  # the generated "faces" are whole frames
    "frames": 8,
    "run_length": 4,
    "crop_size": 32,
    "workers": 1,
    "backbone": "tiny",
    "pretrained": False,
    "epochs": 1,
    "batch": 4,
    "max_steps": 3,
    "device": "cpu",  # the GPU cells (mixed precision, TensorRT) switch off
    "demo_seconds": 1,
    "bench_seconds": 0.3,
    "download": False,
    "steps": ["index", "preprocess", "train", "evaluate", "quality", "export", "engine", "video"],
}


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    notebook = jupytext.read(path) if path.suffix == ".py" else nbformat.read(path, as_version=4)
    return list(notebook.cells)


def _assigned(source: str) -> set[str]:
    tree = ast.parse(source)
    return {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }


def test_stored_notebook_has_no_outputs() -> None:
    code = [c for c in _cells(NOTEBOOK) if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_script_and_notebook_are_in_sync() -> None:
    def key(cells: list[nbformat.NotebookNode]) -> list[tuple[str, str, list[str]]]:
        return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in cells]

    assert key(_cells(NOTEBOOK)) == key(_cells(SCRIPT)), (
        "notebooks/train_on_colab.py and .ipynb differ: edit the .py, then "
        "`jupytext --sync notebooks/train_on_colab.py`"
    )
    metadata = nbformat.read(NOTEBOOK, as_version=4).metadata
    assert metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert metadata["accelerator"] == "GPU"  # Colab opens it on a GPU runtime


def test_one_parameters_cell_holds_every_choice() -> None:
    cells = _cells(NOTEBOOK)
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = _assigned(tagged[0].source)
    assert set(TINY) <= names
    wanted = {"repo_url", "repo_ref", "recipe", "real_dir", "ffpp_dir", "labels_csv"}
    assert wanted <= names
    later = [c for c in cells[cells.index(tagged[0]) + 1 :] if c.cell_type == "code"]
    overwritten = set().union(*(_assigned(c.source) for c in later)) & names
    assert not overwritten, f"parameters reassigned by later cells: {sorted(overwritten)}"


def _execute(root: Path, name: str, **changes: object) -> nbformat.NotebookNode:
    out = root / f"{name}.ipynb"
    parameters = {**TINY, "work_dir": str(root / "work"), "real_dir": str(root / "real")}
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={**parameters, **changes},
        kernel_name="python3",
        cwd=str(root),
        progress_bar=False,
        execution_timeout=600,
    )
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nbformat.NotebookNode]:
    """The notebook run by papermill on five generated face clips (about 1-3 minutes)."""
    root = tmp_path_factory.mktemp("colab")
    (root / "real").mkdir()
    for name in PEOPLE:
        write_clip(root / "real" / f"{name}.mp4", frames=30, size=(96, 96), pattern="face")
    return root / "work", _execute(root, "executed")


def _outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]


def _text(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in _outputs(notebook) if o.output_type == "stream")


def test_notebook_runs_end_to_end_on_cpu(executed: tuple[Path, nbformat.NotebookNode]) -> None:
    work, notebook = executed
    splits = {Path(e.path).stem: e.split for e in read_manifest(work / "manifest.csv")}
    assert splits == {"person0": "val", "person3": "test"} | {
        p: "train" for p in ("person1", "person2", "person4")
    }
    run = work / "runs" / "run"
    loaded = load_weights(run / "best.pt")
    assert (loaded.spec.backbone, loaded.spec.input_size, loaded.spec.window) == ("tiny", 32, 4)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    text = _text(notebook)
    planned = int(re.search(r"(\d+) steps planned", text).group(1))  # type: ignore[union-attr]
    assert records[-1]["step"] == planned == 3
    assert "val_auc" in records[-1]  # person0 validated every epoch

    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["sbi"] is True  # real-only test split
    assert metrics["levels"]["window"]["n"] > 0
    for png in (work / "metrics_roc.png", work / "deploy" / "report.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with av.open(str(work / "deploy" / "annotated.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 25  # --max-seconds 1 at 25 fps
    assert (work / "deploy" / "onnx" / "cnn.onnx").is_file()

    assert "benchmarks.quality: no labels_csv given; skipped" in text
    assert "TensorRT: skipped, no CUDA GPU" in text
    assert re.search(r"onnx fp32 +[\d.]+ +\d\.\d\de[-+]\d\d", text)  # the backend table
    data = [o.get("data", {}) for o in _outputs(notebook)]
    assert sum("image/png" in d for d in data) >= 5  # crops, self-blends, curves, ROC, report
    assert any("<video" in d.get("text/html", "") for d in data)  # the overlay, inline


def test_crop_grid_shows_cached_crops_with_their_label(
    executed: tuple[Path, nbformat.NotebookNode],
) -> None:
    work, _ = executed
    grid = crop_grid(work / "crops-32px-none", count=8, per_row=4)
    assert grid.shape == (2 * 32, 4 * 32, 3) and grid.dtype == np.uint8
    assert (grid[0, :32] == (40, 180, 60)).all()  # green stripe: a REAL video's crop
    assert grid[4:].std() > 10  # below the stripe: a picture, not a fill


def test_rerun_after_a_disconnect_resumes(executed: tuple[Path, nbformat.NotebookNode]) -> None:
    """Run all again with one more epoch: crops come from the cache, training continues."""
    work, _ = executed
    again = _execute(work.parent, "rerun", epochs=2, max_steps=6, steps=["preprocess", "train"])
    text = _text(again)
    assert "0 videos cropped (0 crops), 5 already cached" in text
    assert "--resume" in text and "resuming after epoch 1, step 3" in text
    records = (work / "runs" / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in records] == [3, 6]
    assert "evaluate: not in steps" in text and "export: not in steps" in text
