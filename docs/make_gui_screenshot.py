"""Regenerate the README's screenshot of the desktop app from a real run of ``dfstream gui``.

Run from the repository root (it needs Xvfb, tkinter and Pillow; ``../shared`` for the real
clips and YuNet):

    python docs/make_gui_screenshot.py                # the shipped default model
    python docs/make_gui_screenshot.py --untrained    # the random model (pipeline check)
    python docs/make_gui_screenshot.py --weights ckpt.pt

It starts Xvfb, opens the app's window on it, opens the FaceForensics++ original 519.mp4 and
its Deepfakes counterpart 519_515.mp4 (or the ``--source`` files; without ``../shared`` a
generated clip with whole-frame faces) through the same code path as the Open dialog, starts,
waits for the whole-video verdicts, selects the fake and writes a screenshot of the window
(menu bar included) to ``docs/gui.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
SHARED = REPO_ROOT.parent / "shared"
ORIGINAL = SHARED / "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
FAKE = SHARED / "data/mini/ffpp/manipulated_sequences/Deepfakes/c23/videos/519_515.mp4"
YUNET = SHARED / "models/face_detection_yunet_2026may.onnx"
MAX_BYTES = 400_000


def _pump(root: object, until: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"the run did not finish within {timeout:g} s")
        root.update()  # type: ignore[attr-defined]
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    """Run the app under Xvfb on real clips and write ``docs/gui.png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--weights", type=Path, help="a checkpoint instead of the shipped model")
    model.add_argument("--untrained", action="store_true", help="the random model")
    parser.add_argument("--source", type=Path, action="append", help="clip(s) to open")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "gui.png")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the run")
    args = parser.parse_args(argv)

    from PIL import ImageGrab

    from dfstream.gui import tk_root
    from dfstream.gui.session import Session
    from dfstream.gui.settings import GuiSettings, RecentSources
    from dfstream.gui.window import App
    from tests.xvfb import xvfb

    sources = args.source or ([ORIGINAL, FAKE] if ORIGINAL.is_file() and FAKE.is_file() else [])
    settings = GuiSettings(detector="auto", overlay=False)
    if args.weights is not None:
        settings = settings.with_model("checkpoint", args.weights)
    elif args.untrained:
        settings = settings.with_model("untrained")
    with tempfile.TemporaryDirectory(prefix="dfstream-gui-shot-") as tmp, xvfb() as display:
        work = Path(tmp)
        models = work / "models"
        models.mkdir()
        if YUNET.is_file():  # what ~/.cache/dfstream/models holds on a user's machine
            shutil.copy(YUNET, models / YUNET.name)
        if not sources:
            from tests.media import write_clip

            sources = [write_clip(work / "clip.mp4", frames=100, size=(320, 240), pattern="face")]
            settings = GuiSettings(model=settings.model, checkpoint=settings.checkpoint,
                                   detector="none", overlay=False)  # fmt: skip
        root = tk_root(display)
        session = Session(cache_dir=work / "cache", model_cache=models)
        app = App(root, session=session, settings=settings,
                  recent=RecentSources(work / "recent.json"), config_dir=work)  # fmt: skip
        root.geometry("1160x760+0+0")
        app.add_sources([str(s) for s in sources])
        app.start()
        _pump(root, lambda: not session.busy and not app.vm.running, args.timeout)
        if app.vm.message_is_error:
            raise SystemExit(f"the run failed: {app.vm.message}")
        rows = app.sources.tree.get_children()
        app._selection_changed(rows[-1])  # the last source (the fake) as a user would click it
        end = time.monotonic() + 1.5
        _pump(root, lambda: time.monotonic() > end, 10)
        top = root.winfo_rooty()  # the menu bar sits above the client area
        image = ImageGrab.grab(
            bbox=(0, 0, root.winfo_rootx() + root.winfo_width(), top + root.winfo_height()),
            xdisplay=display,
        )
        app.quit()
        _pump(root, lambda: app.closed, 60)
        session.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    if args.out.stat().st_size > MAX_BYTES:
        image.quantize(colors=256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1000:.0f} kB) with {settings.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
