"""The shipped default model and the checkpoint's calibrated threshold: fp16 checkpoints load as
float32 with the same scores, a run without ``--weights`` uses the default model (the shipped
file, or ``$DFSTREAM_DEFAULT_MODEL``), a missing default is a one-line error with exit code 4,
the checkpoint's threshold is the default and ``--threshold`` overrides it, and the model's name
reaches the summary, the JSONL and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dfstream
from dfstream.api import load_model, scoring_settings
from dfstream.cli import main
from dfstream.errors import ExitCode, WeightsError
from dfstream.gui.settings import GuiSettings, analysis_config
from dfstream.model import (
    DEFAULT_MODEL_ENV,
    build_model,
    default_model_path,
    load_weights,
    native_spec,
    save_checkpoint,
)
from dfstream.pipeline.scoring import ScoringSettings
from dfstream.types import Verdict

NAME = "dfstream-tiny-test-v1"
RUN = ["--detector", "none", "--backend", "torch", "--device", "cpu", "--precision", "fp32",
       "--no-dashboard"]  # fmt: skip


def _tiny(tmp_path: Path, *, info: dict[str, object] | None = None, half: bool = True) -> Path:
    model = build_model(native_spec(backbone="tiny", window=4), seed=3).eval()
    path = tmp_path / ("tiny16.pt" if half else "tiny32.pt")
    save_checkpoint(path, model, info={"name": NAME, **(info or {})}, half=half)
    return path


def _events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fp16_checkpoint_is_half_the_size_loads_float32_and_scores_alike(tmp_path: Path) -> None:
    half, full = _tiny(tmp_path), _tiny(tmp_path, half=False)
    stored = torch.load(half, map_location="cpu", weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a, b = load_weights(half), load_weights(full)
    assert {v.dtype for v in a.model.state_dict().values() if v.is_floating_point()} == {
        torch.float32
    }
    crops = torch.rand(2 * 4, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sa, sb = (m.model(crops.view(2, 4, 3, 112, 112)) for m in (a, b))
    assert torch.allclose(sa, sb, atol=1e-2)
    assert not torch.equal(sa, torch.zeros_like(sa))  # the model does score something


def test_shipped_path_is_package_data_and_documented() -> None:
    path = default_model_path()
    assert path.parts[-4:] == ("dfstream", "model", "default", "default.pt")
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"dfstream.model" = ["default/*.pt"' in pyproject
    if path.is_file():  # once shipped, it must stay small and name itself
        assert path.stat().st_size < 15e6
        assert load_weights(path).info.get("name")


def test_the_shipped_model_is_the_file_its_recipe_log_names() -> None:
    """The model card's figures and the log's data hashes belong to the shipped weights only if
    the log beside them was written by the run that produced this very file."""
    from dfstream.model.checkpoint import file_sha256

    path = default_model_path()
    if not path.is_file():
        pytest.skip("no default model shipped in this checkout")
    log = json.loads((path.parent / "recipe.json").read_text(encoding="utf-8"))
    assert log["default_sha256"] == file_sha256(path)[:16]
    assert log["name"] == load_weights(path).info["name"]
    assert log["threshold"] == pytest.approx(load_weights(path).threshold)


def test_the_shipped_model_records_the_settings_the_recipe_writes_today() -> None:
    """A recipe option added after the file was built changes what the recipe writes, so the
    shipped file would no longer be its output: rebuild and ship it when this fails."""
    from dataclasses import asdict

    from training.recipe import RecipeSettings

    path = default_model_path()
    if not path.is_file():
        pytest.skip("no default model shipped in this checkout")
    log = json.loads((path.parent / "recipe.json").read_text(encoding="utf-8"))
    assert load_weights(path).info["recipe"] == asdict(RecipeSettings())
    assert log["settings"] == load_weights(path).info["recipe"]


def test_cli_without_weights_uses_the_default_model(
    tmp_path: Path,
    clip_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(_tiny(tmp_path, info={"threshold": 0.3})))
    out = tmp_path / "out.jsonl"
    assert (
        main([str(clip_path), *RUN, "--jsonl", str(out), "--report", str(tmp_path / "r.json")]) == 0
    )
    (summary,) = [e for e in _events(out) if e["type"] == "summary"]
    assert summary["model"] == NAME and summary["threshold"] == 0.3
    assert summary["untrained"] is False and summary["windows_scored"] > 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"]["name"] == NAME
    assert report["threshold"] == {"value": 0.3, "source": "checkpoint", "rule": None,
                                   "hysteresis": 0.05}  # fmt: skip
    captured = capfd.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert f"model {NAME}" in text and "FAKE threshold 0.300 (checkpoint)" in text


def test_missing_default_model_is_one_line_and_exit_4(
    tmp_path: Path,
    clip_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "gone.pt"))
    assert main([str(clip_path), *RUN]) == ExitCode.WEIGHTS == 4
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dfstream: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "no model given" in lines[0] and "gone.pt" in lines[0]
    assert "--weights PATH" in lines[0] and "--untrained" in lines[0]


def test_library_default_is_the_shipped_file(tmp_path: Path) -> None:
    config = dfstream.AnalysisConfig(sources=("x.mp4",))
    if default_model_path().is_file():
        assert load_model(config).origin == str(default_model_path())
    else:
        with pytest.raises(WeightsError, match="shipped default model is not installed"):
            load_model(config)
    chosen = dfstream.AnalysisConfig(sources=("x.mp4",), default_weights=_tiny(tmp_path))
    assert load_model(chosen).name == NAME


@pytest.mark.parametrize(
    ("info", "given", "expected"),
    [
        (
            {"threshold": 0.7, "threshold_rule": "EER on dev"},
            None,
            (0.7, "checkpoint", "EER on dev"),
        ),
        ({"threshold": 0.7}, 0.2, (0.2, "--threshold", None)),
        ({}, None, (0.5, "default", None)),
        ({}, 0.9, (0.9, "--threshold", None)),
    ],
)
def test_threshold_from_the_checkpoint_unless_given(
    tmp_path: Path, info: dict[str, object], given: float | None, expected: tuple[object, ...]
) -> None:
    loaded = load_weights(_tiny(tmp_path, info=info))
    scoring = scoring_settings(dfstream.AnalysisConfig(threshold=given), loaded)
    assert (scoring.threshold, scoring.threshold_source, scoring.threshold_rule) == expected


def test_uncertain_band_keeps_its_width_around_a_calibrated_threshold() -> None:
    scoring = ScoringSettings(threshold=0.7, hysteresis=0.05, threshold_source="checkpoint")
    assert scoring.classify(0.76, Verdict.UNCERTAIN) is Verdict.FAKE
    assert scoring.classify(0.7, Verdict.UNCERTAIN) is Verdict.UNCERTAIN
    assert scoring.classify(0.64, Verdict.UNCERTAIN) is Verdict.REAL
    assert scoring.classify(0.6, Verdict.UNCERTAIN) is Verdict.REAL  # REAL below 0.5 + 0.05 too


def test_threshold_override_changes_the_verdict_on_the_cli(
    tmp_path: Path, clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model and clip: its calibrated 0 makes everything FAKE, --threshold 1 REAL."""
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(_tiny(tmp_path, info={"threshold": 0.0})))
    verdicts = {}
    for name, extra in (("model", []), ("given", ["--threshold", "1"])):
        out = tmp_path / f"{name}.jsonl"
        assert main([str(clip_path), *RUN, "--jsonl", str(out), *extra]) == 0
        (summary,) = [e for e in _events(out) if e["type"] == "summary"]
        verdicts[name] = (summary["verdict"], summary["threshold"])
    assert verdicts == {"model": ("FAKE", 0.0), "given": ("REAL", 1.0)}


@pytest.mark.parametrize(
    ("info", "message"),
    [({"threshold": 1.5}, "expected 0..1"), ({"threshold": "high"}, "expected a number")],
)
def test_a_bad_stored_threshold_is_refused(
    tmp_path: Path, info: dict[str, object], message: str
) -> None:
    model = build_model(native_spec(backbone="tiny", window=4), seed=3)
    with pytest.raises(WeightsError, match=message):
        save_checkpoint(tmp_path / "bad.pt", model, info=info)


def test_gui_default_choice_loads_the_default_model(tmp_path: Path) -> None:
    weights = _tiny(tmp_path, info={"threshold": 0.4})
    config = analysis_config(GuiSettings(), ("x.mp4",), default_weights=weights)
    assert config.weights is None and not config.untrained and config.threshold is None
    loaded = load_model(config)
    assert loaded.name == NAME
    assert scoring_settings(config, loaded).threshold == 0.4
    assert GuiSettings(threshold=0.6).describe_threshold() == "0.60"
    assert GuiSettings().describe_threshold() == "the model's"


def test_doctor_reports_the_default_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from dfstream.cli.doctor import default_model_status

    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(_tiny(tmp_path, info={"threshold": 0.4})))
    status = default_model_status()
    assert (status["present"], status["name"], status["threshold"]) == (True, NAME, 0.4)
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "none.pt"))
    status = default_model_status()
    assert status["present"] is False and "--weights" in status["detail"]


def test_a_ray_driver_names_the_model_and_its_threshold_without_loading_it(tmp_path: Path) -> None:
    from dfstream.cluster.live import driver_model

    weights = _tiny(tmp_path, info={"threshold": 0.35, "threshold_rule": "EER"})
    model, scoring = driver_model(dfstream.AnalysisConfig(default_weights=weights))
    assert (model.name, model.untrained) == (NAME, False)
    assert (scoring.threshold, scoring.threshold_source, scoring.threshold_rule) == (
        0.35,
        "checkpoint",
        "EER",
    )
    _, given = driver_model(dfstream.AnalysisConfig(weights=weights, threshold=0.8))
    assert (given.threshold, given.threshold_source) == (0.8, "--threshold")


def test_the_shipped_model_can_score_a_window_fake() -> None:
    """A head whose highest score sits at its threshold can never give a FAKE verdict (v2's
    first build: ceiling 0.5008 at threshold 0.500). The shipped model must reach past the
    UNCERTAIN band with room to spare."""
    from training.recipe import score_ceiling

    loaded = load_weights(default_model_path())
    threshold = float(loaded.info["threshold"])
    band = ScoringSettings().hysteresis
    assert score_ceiling(loaded.model.float().eval()) > threshold + band + 0.1
