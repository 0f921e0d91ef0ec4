"""Face detectors: find face boxes (and landmarks where available) in a full BGR frame.

Three implementations behind one small interface: YuNet (OpenCV's ONNX face detector, shipped
inside the package as ``models/face_detection_yunet_2026may.onnx`` with its MIT licence, so it is
the default on a fresh install), Haar cascades (shipped with OpenCV, no download) and
a whole-frame detector for videos that are already cropped to one face. ``make_detector`` picks
one from the ``--detector`` choice. A detector instance is not thread-safe: use one per thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from dfstream.errors import DfstreamError, ExitCode, UsageError
from dfstream.types import Detection

YUNET_PATTERN = "face_detection_yunet*.onnx"
"""File names the YuNet model is looked up under in the model cache."""

SHIPPED_YUNET = Path(__file__).resolve().parent / "models" / "face_detection_yunet_2026may.onnx"
"""The YuNet model that ships with dfstream (OpenCV model zoo, MIT; ``models/LICENCE``)."""

DetectorKind = Literal["auto", "yunet", "haar", "none"]


class DetectorError(DfstreamError):
    """A face detector cannot be built, e.g. its model file is corrupt (exit 5)."""

    exit_code = ExitCode.BACKEND


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk so that its long side is at most ``max_side``, and the scale used."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _clipped_detection(
    x: float,
    y: float,
    w: float,
    h: float,
    score: float,
    image_shape: tuple[int, ...],
    landmarks: np.ndarray | None = None,
) -> Detection | None:
    """A ``Detection`` for box ``(x, y, w, h)`` clipped to the image, or None if nothing is left."""
    height, width = image_shape[:2]
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(float(width), x + w), min(float(height), y + h)
    if x2 - x1 < 1.0 or y2 - y1 < 1.0:
        return None
    return Detection(box=(x1, y1, x2, y2), score=float(score), landmarks=landmarks)


class FaceDetector(ABC):
    """Finds faces in one BGR frame; boxes come back in full-frame pixel coordinates."""

    name: str

    @abstractmethod
    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """All faces in ``image_bgr`` (H, W, 3 uint8), best first where scores exist."""


class YuNetDetector(FaceDetector):
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``): accurate, ~10 ms at 640 px."""

    name = "yunet"

    def __init__(
        self, model_path: Path, *, score_threshold: float = 0.6, max_side: int = 640
    ) -> None:
        """Load the ONNX model; ``UsageError`` if it is missing, ``DetectorError`` if broken."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise UsageError(
                f"{model_path}: YuNet model not found; pass --detector-model PATH to an existing "
                "face_detection_yunet*.onnx file"
            )
        self.model_path = model_path
        self.max_side = max_side
        self._size = (max_side, max_side)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(model_path), "", self._size, score_threshold, 0.3, 5000
            )
        except cv2.error as error:
            reason = " ".join(str(error).split())[-200:]
            raise DetectorError(
                f"{model_path}: cannot load the YuNet model ({reason}); download "
                "face_detection_yunet*.onnx again from the OpenCV model zoo"
            ) from error

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces with boxes and five landmarks, mapped back to full-frame coordinates."""
        small, scale = _downscale(image_bgr, self.max_side)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        detections = []
        for row in faces[np.argsort(-faces[:, 14])]:
            x, y, w, h = (float(v) / scale for v in row[:4])
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            found = _clipped_detection(x, y, w, h, row[14], image_bgr.shape, landmarks)
            if found is not None:
                detections.append(found)
        return detections


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade: no download needed, slower and less reliable.

    Haar gives no confidence, so every detection has score 1.0 and no landmarks.
    """

    name = "haar"

    def __init__(self, *, max_side: int = 640) -> None:
        """Load the cascade that ships with OpenCV."""
        cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # not in OpenCV's stubs
        path = Path(cascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"{path}: cannot load OpenCV's Haar cascade; reinstall OpenCV")
        self.max_side = max_side

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Frontal faces, largest first."""
        small, scale = _downscale(image_bgr, self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_side = max(24, min(gray.shape) // 12)  # ignore specks far smaller than a real face
        boxes = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        detections = []
        for x, y, w, h in sorted(boxes, key=lambda b: -int(b[2]) * int(b[3])):
            found = _clipped_detection(
                x / scale, y / scale, w / scale, h / scale, 1.0, image_bgr.shape
            )
            if found is not None:
                detections.append(found)
        return detections


class WholeFrameDetector(FaceDetector):
    """The null detector: the whole frame is one face (for videos already cropped to a face)."""

    name = "none"

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """One detection covering the frame, score 1.0."""
        height, width = image_bgr.shape[:2]
        return [Detection(box=(0.0, 0.0, float(width), float(height)), score=1.0)]


def default_model_cache(*, home: Path | None = None, xdg_cache_home: str | None = None) -> Path:
    """Where dfstream keeps downloaded models: ``$XDG_CACHE_HOME/dfstream/models``, else
    ``~/.cache/dfstream/models``. The caller passes the environment values in."""
    if xdg_cache_home:
        return Path(xdg_cache_home) / "dfstream" / "models"
    return (home if home is not None else Path.home()) / ".cache" / "dfstream" / "models"


def find_yunet_model(cache_dir: Path | None) -> Path | None:
    """The YuNet model in ``cache_dir`` (the name sorting last wins), or None."""
    if cache_dir is None or not cache_dir.is_dir():
        return None
    found = sorted(p for p in cache_dir.glob(YUNET_PATTERN) if p.is_file())
    return found[-1] if found else None


def shipped_yunet_model() -> Path | None:
    """The packaged YuNet model, or None when it has been removed from the installation."""
    return SHIPPED_YUNET if SHIPPED_YUNET.is_file() else None


def make_detector(
    kind: DetectorKind,
    *,
    model_path: Path | None,
    cache_dir: Path | None,
    notice: Callable[[str], None],
    max_side: int = 640,
) -> FaceDetector:
    """The detector for a ``--detector`` choice.

    YuNet's model is ``model_path`` when given, else the newest in ``cache_dir``, else the one
    shipped with dfstream. ``auto`` falls back to Haar with a ``notice`` when there is none (the
    shipped file was removed); ``yunet`` without a model is a ``UsageError``; ``none`` treats
    every frame as one face. ``max_side``: the longest side of the frame YuNet and Haar see.
    """
    if kind == "haar":
        return HaarDetector(max_side=max_side)
    if kind == "none":
        return WholeFrameDetector()
    if kind not in ("auto", "yunet"):
        raise UsageError(f"unknown detector {kind!r}; choose auto, yunet, haar or none")
    path = model_path if model_path is not None else find_yunet_model(cache_dir)
    path = path if path is not None else shipped_yunet_model()
    if path is not None:
        return YuNetDetector(path, max_side=max_side)
    where = f" or put {YUNET_PATTERN} into {cache_dir}" if cache_dir is not None else ""
    if kind == "yunet":
        raise UsageError(
            f"--detector yunet: no YuNet model found; pass --detector-model PATH{where}"
        )
    notice(
        f"YuNet model not found (the one shipped with dfstream, {SHIPPED_YUNET}, is missing), "
        f"using the slower, less reliable Haar detector; pass --detector-model PATH{where}"
    )
    return HaarDetector(max_side=max_side)
