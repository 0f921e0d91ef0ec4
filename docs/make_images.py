"""Regenerate the README's pictures from a real dfstream run: one overlay frame and a report plot.

Run from the repository root (it needs ``../shared``: the FaceForensics++ mini corpus and YuNet):

    python docs/make_images.py

It runs ``python -m dfstream`` on the original 519.mp4 and its Deepfakes counterpart 519_515.mp4
with the untrained model (no trained weights are shipped), writes the overlays and the report to
a temporary folder, and copies one overlay frame to ``docs/overlay_frame.png`` and the plot to
``docs/report_plot.png``. Both pictures say UNTRAINED: the scores in them are not meaningful.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
ORIGINAL = SHARED / "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
FAKE = SHARED / "data/mini/ffpp/manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
MAX_BYTES = 300_000


def _frame_at(video: Path, index: int) -> cv2.typing.MatLike:
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise SystemExit(f"{video}: has fewer than {index + 1} frames")


def _write_small_png(image: cv2.typing.MatLike, path: Path) -> None:
    """PNG under MAX_BYTES: scaled down step by step if needed."""
    scale = 1.0
    while True:
        out = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_AREA)  # fmt: skip
        ok, data = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise SystemExit(f"could not encode {path}")
        if len(data) <= MAX_BYTES or scale < 0.3:
            path.write_bytes(data.tobytes())
            return
        scale *= 0.85


def main(argv: list[str] | None = None) -> int:
    """Run dfstream and refresh ``docs/overlay_frame.png`` and ``docs/report_plot.png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", type=int, default=400, help="overlay frame to show")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    args = parser.parse_args(argv)
    for path in (ORIGINAL, FAKE, YUNET):
        if not path.is_file():
            raise SystemExit(f"{path} is absent: this script needs ../shared")
    with tempfile.TemporaryDirectory(prefix="dfstream-docs-") as tmp:
        work = Path(tmp)
        command = [
            sys.executable, "-m", "dfstream", str(ORIGINAL), str(FAKE), "--untrained",
            "--detector", "yunet", "--detector-model", str(YUNET), "--analysis-fps", "5",
            "--overlay", str(work / "overlay.mp4"), "--report", str(work / "report.json"),
            "--no-dashboard",
        ]  # fmt: skip
        subprocess.run(command, cwd=REPO_ROOT, check=True)
        frame = _frame_at(work / "overlay-519_515.mp4", args.frame)
        args.out.mkdir(parents=True, exist_ok=True)
        _write_small_png(frame, args.out / "overlay_frame.png")
        shutil.copyfile(work / "report.png", args.out / "report_plot.png")
    for name in ("overlay_frame.png", "report_plot.png"):
        size = (args.out / name).stat().st_size
        print(f"wrote {args.out / name} ({size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
