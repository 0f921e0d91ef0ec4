"""The default model's recipe (``training.recipe``): serving/training parity of crops and
tensors, the data roles of its splits, and one tiny run of every stage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dfstream.api import pipeline_settings
from dfstream.config import AnalysisConfig
from dfstream.errors import UsageError
from dfstream.faces import FaceAnalyzer, make_detector
from dfstream.model import DeepfakeNet, load_weights, preprocess, save_checkpoint
from dfstream.model.checkpoint import LoadedModel
from dfstream.sources.image import ImageSource
from training import recipe as R
from training.preprocess import extract


def _loaded(settings: R.RecipeSettings) -> LoadedModel:
    spec = R.recipe_spec(settings)
    return LoadedModel(DeepfakeNet(spec), spec, "dfstream", "test", {})


def _serving_analyzer(settings: R.RecipeSettings, stream: str) -> FaceAnalyzer:
    config = AnalysisConfig(detector="auto", detect_every=settings.detect_every)
    analyzer_settings = pipeline_settings(config, _loaded(settings)).analyzer
    analyzer_settings = replace(analyzer_settings, relink=None)
    detector = make_detector("auto", model_path=None, cache_dir=None, notice=lambda _m: None)
    return FaceAnalyzer(detector, analyzer_settings, stream_id=stream)


def test_photo_crops_and_tensors_match_serving(shared_dir: Path, tmp_path: Path) -> None:
    photos = sorted((shared_dir / "data" / "real" / "images").rglob("*.jpg"))[:3]
    if not photos:
        pytest.skip("no real photos in ../shared/data/real/images")
    settings = R.RecipeSettings()
    trained = R._photo_crops(photos, settings, tmp_path / "photos.npz", lambda _m: None)
    served: list[np.ndarray] = []
    for photo in photos:
        analyzer = _serving_analyzer(settings, str(photo))
        with ImageSource.open(photo, stream_id=str(photo)) as source:
            for frame in source.frames():
                served.extend(c.crop for c in analyzer.analyze(frame).crops)
    assert len(served) == len(trained["crops"]) > 0
    np.testing.assert_array_equal(np.stack(served), trained["crops"])
    spec = R.recipe_spec(settings)
    assert torch.equal(preprocess(np.stack(served), spec), preprocess(trained["crops"], spec))


def test_video_crops_match_serving(real_video: Path) -> None:
    settings = replace(R.RecipeSettings(), frames_per_video=8)
    trained = extract(real_video, make_detector("auto", model_path=None, cache_dir=None,
                                                notice=lambda _m: None),
                      R.crop_settings(settings))  # fmt: skip
    analyzer = _serving_analyzer(settings, str(real_video))
    from dfstream.sources import FileSource

    served: list[np.ndarray] = []
    with FileSource.open(real_video, stream_id="v") as source:
        for frame in source.frames():
            if frame.index == 8:
                break
            served.extend(c.crop for c in analyzer.analyze(frame).crops)
    # the sample plan's first run starts at frame 0: the first 8 crops are the same frames
    assert trained["frame_index"][:8].tolist() == list(range(8))
    np.testing.assert_array_equal(np.stack(served[:8]), trained["crops"][:8])


def _clip(name: str, label: str, group: str, generator: str, *, pair: str = "", n: int = 16,
          seed: int = 0, path: str | None = None, photo: bool = False) -> R.Clip:  # fmt: skip
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8)
    if label == "FAKE":
        crops[:, 40:70, 40:70] = 255  # something a model can learn in a few steps
    landmarks = np.tile(np.array([[40, 45], [72, 45], [56, 62], [44, 80], [68, 80]],
                                 np.float32), (n, 1, 1))  # fmt: skip
    return R.Clip(
        key=name,
        path=path or f"/data/dev/deepfacelive/{label.lower()}/{name}.mp4",
        label=label,
        generator=generator,
        group=group,
        pair=pair,
        crops=crops,
        frame_index=np.arange(n, dtype=np.int32) if not photo else np.zeros(n, np.int32),
        track=np.zeros(n, np.int32) if not photo else np.arange(n, dtype=np.int32),
        run=(np.arange(n) // 8).astype(np.int32),
        landmarks=landmarks,
        photo=photo,
    )


def _corpus() -> list[R.Clip]:
    clips = []
    for i, group in enumerate(("A", "B", "C", "D")):
        pair = f"{group}_0"
        clips.append(_clip(pair, "REAL", group, "original", pair=pair, seed=2 * i))
        clips.append(_clip(pair, "FAKE", group, "deepfacelive", pair=pair, seed=2 * i + 1))
    clips.append(_clip("x", "FAKE", "dfdc-x", "dfdc", path="/data/dev/dfdc/x.mp4"))
    clips.append(_clip("519", "REAL", "ffpp-519", "original", pair="519",
                       path="/data/mini/ffpp/519.mp4"))  # fmt: skip
    for k in range(8):
        clips.append(_clip(f"r{k}", "REAL", f"real:r{k}.mp4", "original", seed=50 + k,
                           path=f"/data/real/videos/r{k}.mp4"))  # fmt: skip
    clips.append(_clip("p", "REAL", "photo:p.jpg", "original", n=3, photo=True,
                       path="/data/real/images/p.jpg"))  # fmt: skip
    return clips


def test_splits_keep_measured_data_out_of_training() -> None:
    clips = _corpus()
    folds = R.fold_groups(R._deepfacelive_groups(clips), 2, seed=0)
    assert sorted(g for f in folds for g in f) == ["A", "B", "C", "D"]
    assert not set(folds[0]) & set(folds[1])
    split = R.make_split(clips, folds[0], val_group=folds[1][0])
    train_groups = {c.group for c in split.train}
    assert not train_groups & set(folds[0]), "held-out face models trained"
    assert folds[1][0] not in train_groups, "the validation face model trained"
    assert not {"dfdc-x", "ffpp-519"} & train_groups, "mini/ or dev/dfdc trained"
    assert {c.group for c in split.test} == {*folds[0], "dfdc-x", "ffpp-519"}
    real_val = [c for c in split.val if c.group.startswith("real:")]
    real_train = [c for c in split.train if c.group.startswith("real:")]
    expected = {c.group for c in clips if c.group.startswith("real:") and R._real_validation(c)}
    assert {c.group for c in real_val} == expected
    assert real_train and not {c.group for c in real_val} & {c.group for c in real_train}


def test_supervised_pairs_are_the_same_frames() -> None:
    clips = _corpus()[:2]
    ((real, fake, ri, fi),) = R.supervised_pairs(clips)
    assert real.label == "REAL" and fake.label == "FAKE"
    assert real.frame_index[ri].tolist() == fake.frame_index[fi].tolist() == list(range(16))


def test_aligned_patches_cut_both_members_of_a_pair_at_one_place() -> None:
    rng = np.random.default_rng(0)
    reals = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    fakes = reals.copy()
    fakes[..., 0] ^= 1  # a fake differs from its twin in every pixel, by a known amount
    crops = np.concatenate([reals, fakes])
    patches = R.aligned_patches(crops, 12, rng)
    assert patches.shape == (12, 12, 12, 3)
    assert np.array_equal(patches[:6, ..., 0] ^ 1, patches[6:, ..., 0])
    assert np.array_equal(patches[:6, ..., 1:], patches[6:, ..., 1:])
    # each patch is a real window of its own crop, and the places differ between pairs
    places = set()
    for i in range(6):
        hits = [
            (y, x)
            for y in range(21)
            for x in range(21)
            if np.array_equal(reals[i, y : y + 12, x : x + 12], patches[i])
        ]
        assert hits
        places.add(hits[0])
    assert len(places) > 1
    assert R.aligned_patches(crops, 32, rng) is crops


def test_head_starts_as_the_frame_classifier_and_centres_on_validation() -> None:
    torch.manual_seed(0)
    settings = R.RecipeSettings()
    model = DeepfakeNet(R.recipe_spec(settings)).eval()
    dim = model.spec.feature_dim
    rng = np.random.default_rng(0)
    # a frame classifier fitted on two clouds of features: it separates them
    windows = R._Windows()
    for k in range(40):
        label = k % 2
        centre = np.full(dim, 0.3 if label else -0.3, np.float32)
        windows.add(centre + rng.normal(0, 1, (8, dim)).astype(np.float32), label)
    head = R.fit_frame_classifier(windows)
    with torch.no_grad():
        z = head(torch.from_numpy(np.concatenate(windows.segments))).squeeze(1).numpy()
    y = np.repeat(windows.labels, 8)
    assert np.mean((z > 0) == (y == 1)) > 0.95
    # the LSTM head then ranks one-frame windows exactly as the frame logit does
    R.init_head_from_frame_classifier(model, head)
    frames = torch.from_numpy(rng.normal(0, 1, (64, 1, dim)).astype(np.float32))
    with torch.no_grad():
        scores = model.score(frames).numpy()
        logit = head(frames[:, 0]).squeeze(1).numpy()
        projected = model.score_projected(model.project(frames[:, 0])[:, None]).numpy()
    assert np.array_equal(np.argsort(scores), np.argsort(logit))
    assert np.allclose(projected, scores, atol=1e-5)  # the product's reuse path agrees
    # and a window of consistent evidence scores further from 0.5 than one of its frames
    fake_like = frames[int(np.argmax(logit))].repeat(8, 1)[None]
    with torch.no_grad():
        assert float(model.score(fake_like)[0]) > float(scores.max())
    # centring: the validation REAL windows' 95th percentile becomes 0.5, ranks unchanged
    R.centre_on_validation(model, scores, 0.05)
    with torch.no_grad():
        after = model.score(frames).numpy()
    assert np.quantile(after, 0.95) == pytest.approx(0.5, abs=0.02)
    assert np.array_equal(np.argsort(after), np.argsort(scores))
    assert R.calibrate(after, 0.05) == pytest.approx(0.5, abs=0.02)


def test_accumulator_gain_keeps_memorised_frame_logits_off_the_rails() -> None:
    """Training frames the trunk has memorised have frame logits far from 0; at a fixed gain
    their windows all tie at the score ceiling. The recipe's gain keeps them ranked."""
    torch.manual_seed(0)
    model = DeepfakeNet(R.recipe_spec(R.RecipeSettings())).eval()
    dim = model.spec.feature_dim
    rng = np.random.default_rng(1)
    windows = R._Windows()
    for k in range(40):
        label = k % 2
        centre = np.full(dim, 3.0 if label else -3.0, np.float32)  # far apart: |z| large
        windows.add(centre + rng.normal(0, 1, (8, dim)).astype(np.float32), label)
    head = R.fit_frame_classifier(windows)
    gain = R.frame_logit_gain(windows, head)
    x = torch.from_numpy(np.concatenate(windows.segments))
    with torch.no_grad():
        z = head(x).squeeze(1).numpy()
    assert np.quantile(np.abs(gain * z), 0.95) == pytest.approx(1.0, rel=1e-3)
    by_label = list(zip(windows.segments, windows.labels, strict=True))
    fakes = torch.from_numpy(np.stack([w for w, y in by_label if y]))

    def fake_scores(g: float) -> np.ndarray:
        """The fake windows' FAKE-minus-REAL logits (ties in them are ties in the scores)."""
        R.init_head_from_frame_classifier(model, head, gain=g)
        with torch.no_grad():
            logits = model.logits(fakes).double()
        fake = model.spec.fake_index
        return (logits[:, fake] - logits[:, 1 - fake]).numpy()

    # a gain far too large for these logits (as the fixed 0.3 was for the trunk's): every fake
    # window at the same ceiling, and centred on such windows the ceiling is the threshold
    pinned = fake_scores(300.0 / np.abs(z).mean())
    assert np.ptp(pinned) < 1e-3
    with torch.no_grad():
        R.centre_on_validation(model, model.score(fakes).numpy(), 0.05)
    assert R.score_ceiling(model) < 0.52
    # the data's gain: ranked apart, and the centred head can still score well above 0.5
    ranked = fake_scores(gain)
    assert np.ptp(ranked) > 100 * np.ptp(pinned)
    reals = torch.from_numpy(np.stack([w for w, y in by_label if not y]))
    with torch.no_grad():
        R.centre_on_validation(model, model.score(reals).numpy(), 0.05)
    assert R.score_ceiling(model) > 0.8
    assert R.frame_logit_gain(R._Windows(), head) == 0.3  # nothing paired: the fixed default


def test_threshold_rule() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    assert R.calibrate(scores, 0.05) == pytest.approx(0.9)  # clipped at 0.9
    assert R.calibrate(scores * 0.5, 0.05) == pytest.approx(0.475)
    assert R.calibrate(np.zeros(10), 0.05) == pytest.approx(0.1)  # never below 0.1
    assert R.calibrate(np.zeros(0), 0.05) == 0.5


@pytest.mark.parametrize("variant", R.VARIANTS)
def test_every_stage_runs_and_the_checkpoint_round_trips(variant: str, tmp_path: Path) -> None:
    clips = _corpus()
    settings = replace(R.RecipeSettings(), steps=2, pairs_per_step=4, head_steps=3, head_batch=8)
    split = R.make_split(clips, ["A"], val_group="B")
    model, record = R.fit(clips, split, variant, settings, lambda _m: None)
    assert 0.1 <= record["threshold"] <= 0.9
    assert record["head"]["windows_fake"] > 0 and record["head"]["windows_real"] > 0
    if variant == "sbi":  # no real deepfake may reach an SBI-only model
        assert record["frames"]["pairs_supervised_per_step"] == 0
    if variant == "supervised":
        assert record["frames"]["pairs_sbi_per_step"] == 0
    result = R.evaluate(model, split, record["threshold"])
    assert {v["group"] for v in result["videos"]} == {"A", "dfdc-x", "ffpp-519"}
    assert result["deepfacelive_video"]["n"] == 2
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, info={"threshold": record["threshold"]}, half=True)
    loaded = load_weights(path)
    assert loaded.threshold == pytest.approx(record["threshold"])
    window = torch.from_numpy(preprocess(clips[1].crops[:8], model.spec).numpy()[None])
    with torch.no_grad():
        assert float(loaded.model(window)[0]) == pytest.approx(float(model(window)[0]), abs=1e-2)
    # one crop is a window too (photos, short tracks)
    assert len(R.window_scores(model, clips[-1])) == 3


def test_frame_stage_on_patches_with_other_peoples_real_faces() -> None:
    clips = _corpus()
    settings = replace(R.RecipeSettings(), steps=3, pairs_per_step=4, patch=64, extra_reals=3)
    split = R.make_split(clips, ["A"], val_group="B")
    model = DeepfakeNet(R.recipe_spec(settings))
    record, head = R.train_frame_classifier(model, split.train, "supervised", settings, print)
    assert record["extra_reals_per_step"] == 3 and record["steps"] == 3
    # trained on 64 px patches, the trunk still serves whole 112 px crops
    with torch.no_grad():
        feats = model.embed(preprocess(clips[0].crops[:2], model.spec))
    assert head(feats).shape == (2, 1)
    # the extra reals come from real videos and photos, never the DeepFaceLive streamers
    only_pairs = [c for c in split.train if R._is_dfl(c)]
    with pytest.raises(UsageError, match="other people"):
        R.train_frame_classifier(model, only_pairs, "supervised", settings, print)


def test_partial_swap_pastes_a_blob_of_the_fake_around_a_landmark() -> None:
    real = np.full((112, 112, 3), 10, np.uint8)
    fake = np.full((112, 112, 3), 250, np.uint8)
    marks = np.array([[30, 40], [80, 40], [56, 60], [40, 85], [72, 85]], np.float32)
    for seed in range(20):
        out = R.partial_swap(real, fake, marks, np.random.default_rng(seed))
        pasted = out[..., 0] > 130
        assert 0.01 < pasted.mean() < 0.25  # a part of the face, never the whole crop
        ys, xs = np.nonzero(out[..., 0] == out[..., 0].max())
        centre = np.array([xs.mean(), ys.mean()])
        assert np.linalg.norm(marks - centre, axis=1).min() < 4  # on one of the landmarks
        assert (out[:3, :3] == 10).all() and (out[-3:, -3:] == 10).all()  # the rest is real
    # without landmarks (Haar): the crop's centre
    out = R.partial_swap(real, fake, np.full((5, 2), np.nan, np.float32), np.random.default_rng(0))
    assert out[56, 56, 0] > 200
    # in a batch, only fake members are swapped, and only at the given rate
    clips = _corpus()
    sup = R.supervised_pairs(clips)
    white = {}
    for rate in (0.0, 1.0):
        crops, labels = R._draw_batch(sup, None, 32, 0, np.random.default_rng(1), partial=rate)
        assert labels.tolist() == [0] * 32 + [1] * 32
        # the fixture's fakes carry a white square at 40:70: whole fakes show most of it, partial
        # swaps at most a blob of it
        square = (crops[32:, 40:70, 40:70] > 245).all(axis=-1).mean(axis=(1, 2))
        white[rate] = float(np.median(square))
        assert not (crops[:32, 40:70, 40:70] > 245).all(axis=-1).mean() > 0.05  # reals: none
    assert white[0.0] > 0.5 and white[1.0] < 0.2


def test_frame_probe_scores_held_out_face_models_and_tabulates(tmp_path: Path) -> None:
    from training.research import frame_probe

    clips = _corpus()
    settings = replace(R.RecipeSettings(), steps=3, pairs_per_step=4)
    groups = R._deepfacelive_groups(clips)
    fold = frame_probe.run_fold(clips, groups, ["A", "C"], 0, "supervised", settings, print)
    assert fold["test_groups"] == ["A", "C"] and fold["val_group"] in ("B", "D")
    assert {v["group"] for v in fold["videos"]} == {"A", "C", "dfdc-x", "ffpp-519"}
    assert 0.0 <= fold["dfl_video_auc"] <= 1.0 and 0.0 <= fold["fake_above_twin"] <= 1.0
    summary = frame_probe.summarise([fold], settings, "supervised", [], 0.0)
    path = tmp_path / "frame_probe_x.json"
    path.write_text(json.dumps(summary), encoding="utf-8")
    row = frame_probe.table([path]).splitlines()[-1]
    assert row.startswith("| x | 1 | supervised | 0 | 112 |")
    # two held-out face models with a real and a fake each: an interval over them, in the row
    interval = summary["pooled_dfl_video_auc_interval"]
    assert interval["groups"] == 2 and interval["low"] <= interval["high"]
    assert f"| [{interval['low']:.2f}, {interval['high']:.2f}] |" in row
    assert fold["train_groups"] == sorted({"B", "D"} - {fold["val_group"]})
    assert "| all |" in row


def test_frame_probe_learning_curve_trains_on_fewer_face_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.research import frame_probe

    clips = _corpus()
    settings = replace(R.RecipeSettings(), steps=2, pairs_per_step=4)
    groups = R._deepfacelive_groups(clips)
    seen: list[str] = []
    real = R.train_frame_classifier

    def spy(model, train, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(sorted({c.group for c in train if R._is_dfl(c)}))
        assert any(not R._is_dfl(c) for c in train)  # real footage still trains
        return real(model, train, *args, **kwargs)

    monkeypatch.setattr(R, "train_frame_classifier", spy)
    fold = frame_probe.run_fold(clips, groups, ["A"], 0, "supervised", settings, print, 1)
    # two face models could train (B, C, D less the validation one); one did
    assert len(fold["train_groups"]) == 1 and seen == fold["train_groups"]
    assert fold["train_groups"][0] not in ("A", fold["val_group"])
    # held-out and validation clips are untouched
    assert {v["group"] for v in fold["videos"]} == {"A", "dfdc-x", "ffpp-519"}
    summary = frame_probe.summarise([fold], settings, "supervised", [], 0.0, 1)
    assert summary["train_groups"] == 1


def test_a_corpus_without_real_footage_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "labels.csv").write_text("path,label,generator,face_model,pair,group\n")
    from rich.console import Console

    from dfstream.errors import UsageError

    with pytest.raises(UsageError, match="no real footage"):
        R.build_corpus(tmp_path, tmp_path / "work", R.RecipeSettings(), Console(quiet=True))


def test_cv_summary_pools_the_held_out_videos_of_every_fold() -> None:
    import argparse

    def record(fold: int, groups: list[str], scores: dict[str, tuple[float, float]]) -> dict:
        videos = [
            {"label": label, "group": g, "score": score, "path": f"{g}-{label}"}
            for g, (real, fake) in scores.items()
            for label, score in (("REAL", real), ("FAKE", fake))
        ]
        block = {"auc": 1.0}
        return {"variant": "mixed", "fold": fold, "test_groups": groups, "threshold": 0.5,
                "deepfacelive_video": block, "deepfacelive_window": block,
                "ffpp_dfdc_video": {"auc": 0.5}, "ffpp_dfdc_recall": 0.0,
                "real_false_fake_rate": 0.0, "videos": videos,
                "frames": {"seconds": 1.0}, "head": {"seconds": 1.0},
                "embed_seconds": 1.0}  # fmt: skip

    # each fold alone ranks perfectly, but fold 1's scores sit higher: pooled AUC is not 1
    results = [record(0, ["A"], {"A": (0.1, 0.2)}), record(1, ["B"], {"B": (0.6, 0.9)})]
    args = argparse.Namespace(data=Path("d"), folds=2, only_folds=None)
    summary = R.summarise_cv(results, R.RecipeSettings(), args)
    assert summary["folds_run"] == [0, 1]
    mixed = summary["variants"]["mixed"]
    assert mixed["pooled_dfl_auc"] == pytest.approx(0.75)
    # two face models, each with a real and a fake: resampling them gives AUC 1 (one model
    # drawn twice) or 0.75 (both), so the interval spans exactly that
    interval = mixed["pooled_dfl_auc_interval"]
    assert interval["groups"] == 2 and (interval["low"], interval["high"]) == (0.75, 1.0)
    assert [len(f["videos"]) for f in mixed["folds"]] == [2, 2]
    table = R.cv_markdown(summary)
    assert table.count("| mixed |") == 2 and "pooled DFL AUC 0.750 [0.75, 1.00]" in table
    assert summary["train_seed"] == 0 and "--train-seed" not in summary["command"]
    # another training draw on the same folds says so in the record
    again = R.summarise_cv(
        results, R.RecipeSettings(), argparse.Namespace(**vars(args), train_seed=1)
    )
    assert again["train_seed"] == 1 and again["command"].endswith("--train-seed 1")
    assert again["settings"]["seed"] == 0  # the folds' seed


def _tiny_data(shared_dir: Path, root: Path) -> Path:
    """A data folder shaped like ``../shared/data``: two DeepFaceLive face models (one pair each),
    one real video and four photos, all links to the shared files."""
    data = shared_dir / "data"
    pairs = {"Kim_Jarrey": "Kim_Jarrey_1", "Silwan_Stillwone": "Silwan_Stillwone_3"}
    rows = ["path,label,generator,face_model,pair,group"]
    for group, pair in pairs.items():
        for label, kind in (("REAL", "real"), ("FAKE", "fake")):
            source = data / "dev" / "deepfacelive" / kind / f"{pair}.mp4"
            if not source.is_file():
                pytest.skip(f"{source} is absent from ../shared")
            target = root / "dev" / "deepfacelive" / kind / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
            generator, face_model = ("original", "") if label == "REAL" else ("deepfacelive", group)
            rows.append(f"deepfacelive/{kind}/{source.name},{label},{generator},{face_model},"
                        f"{pair},{group}")  # fmt: skip
    (root / "dev" / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    video = root / "real" / "videos" / "misc" / "d10.mp4"
    video.parent.mkdir(parents=True)
    video.symlink_to(data / "real" / "videos" / "liveportrait" / "d10.mp4")
    photos = root / "real" / "images" / "driving"
    photos.mkdir(parents=True)
    for name in ("d8.jpg", "d9.jpg", "d12.jpg", "d19.jpg"):
        (photos / name).symlink_to(
            data / "real" / "images" / "LivePortrait" / "assets" / "examples" / "driving" / name
        )
    return root


def test_the_recipe_command_builds_a_model_that_dfstream_serves(
    shared_dir: Path, tmp_path: Path
) -> None:
    from dfstream.cli import main as dfstream_main
    from dfstream.model.checkpoint import file_sha256
    from training.cli import main as training_main

    data = _tiny_data(shared_dir, tmp_path / "data")
    out = tmp_path / "run"
    argv = ["recipe", "--data", str(data), "--out", str(out), "--steps", "2",
            "--val-group", "Silwan_Stillwone", "--name", "tiny-recipe-test"]  # fmt: skip
    assert training_main(argv) == 0
    record = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    assert record["name"] == "tiny-recipe-test" and record["settings"]["steps"] == 2
    # the log names what trained, what validated and the hash of the file to ship
    dfl = "dev/deepfacelive/{}/{}.mp4".format
    assert record["data"]["train"] == [
        dfl("fake", "Kim_Jarrey_1"),
        dfl("real", "Kim_Jarrey_1"),
        "real/videos/misc/d10.mp4",
    ]
    assert record["data"]["validation"] == [
        dfl("fake", "Silwan_Stillwone_3"),
        dfl("real", "Silwan_Stillwone_3"),
    ]
    assert record["data"]["train_photos"] + record["data"]["validation_photos"] == 4
    # every file that went in has its own hash: a fake and its real twin share a file name
    hashes = record["data"]["file_hashes"]
    assert len(hashes) == 4 + 1 + 4
    assert hashes[dfl("fake", "Kim_Jarrey_1")] != hashes[dfl("real", "Kim_Jarrey_1")]
    assert hashes["real/videos/misc/d10.mp4"] == file_sha256(data / "real/videos/misc/d10.mp4")[:16]
    assert record["default_sha256"] == file_sha256(out / "default.pt")[:16]
    assert 0.0 < record["score_ceiling"] <= 1.0
    assert "model ->" in (out / "recipe.log").read_text(encoding="utf-8")
    shipped = load_weights(out / "default.pt")
    assert shipped.threshold == pytest.approx(record["threshold"])
    assert shipped.info["name"] == "tiny-recipe-test"
    # a second run reuses the crop cache and rebuilds the same model from the same seed
    assert training_main(argv) == 0
    again = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    assert again["threshold"] == pytest.approx(record["threshold"], abs=1e-6)
    assert again["default_sha256"] == record["default_sha256"]
    # the product serves the file: a photo scored with the recipe's model, named in the JSONL
    jsonl = tmp_path / "photo.jsonl"
    photo = data / "real" / "images" / "driving" / "d8.jpg"
    args = [str(photo), "--weights", str(out / "default.pt"), "--no-dashboard",
            "--jsonl", str(jsonl), "--backend", "torch", "--precision", "fp32"]  # fmt: skip
    assert dfstream_main(args) == 0
    events = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert any(e["type"] == "score" for e in events)
    assert "tiny-recipe-test" in json.dumps([e for e in events if e["type"] == "summary"])
