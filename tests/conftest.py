"""Shared pytest fixtures: synthetic clips written once per session, and ``../shared`` data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import write_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
REAL_VIDEO = "data/mini/ffpp/original_sequences/youtube/c23/videos/519.mp4"
YUNET_MODEL = "models/face_detection_yunet_2026may.onnx"


def pytest_configure(config: pytest.Config) -> None:
    """Register dfstream's markers so that ``-m`` selections and ``--strict-markers`` work."""
    for line in (
        "slow: takes more than a few seconds; deselect with -m 'not slow'",
        "gpu: needs an NVIDIA GPU with CUDA; skipped without one",
        "trt: needs TensorRT and a GPU; skipped without them",
        "network: starts local network servers (RTSP on 127.0.0.1)",
    ):
        config.addinivalue_line("markers", line)


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 160x120 H.264 MP4 at 25 fps with a moving square."""
    return write_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=30, size=(160, 120))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the repository: real videos and models, absent in user checkouts."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared is absent: {SHARED_DIR} holds the real test data and models")
    return SHARED_DIR


def _shared_file(shared_dir: Path, relative: str) -> Path:
    path = shared_dir / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent from ../shared")
    return path


@pytest.fixture(scope="session")
def yunet_model(shared_dir: Path) -> Path:
    """OpenCV's YuNet face detector model from ``../shared/models``."""
    return _shared_file(shared_dir, YUNET_MODEL)


@pytest.fixture(scope="session")
def real_video(shared_dir: Path) -> Path:
    """A real FaceForensics++ original (c23): 751 frames, 640x480, one face."""
    return _shared_file(shared_dir, REAL_VIDEO)
