"""Photos as sources: ``ImageSource`` is a one-frame source decoded with OpenCV.

A photo (``SourceKind.IMAGE``: ``.jpg``, ``.jpeg``, ``.png``, ``.webp``) is decoded when it is
opened, so that a missing, empty or corrupt file is a one-line ``SourceError`` for that source
(exit 3, the other sources go on) before any analysis. ``cv2.imdecode`` with
``IMREAD_COLOR`` applies the EXIF orientation of a JPEG (a phone's portrait photo comes out
upright), drops an alpha channel, turns grey into three channels and 16-bit into 8-bit: the
frame is BGR uint8, as every other source delivers it. Reading the bytes with numpy first
(rather than ``cv2.imread``) keeps non-ASCII paths working on every platform.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dfstream.errors import SourceError
from dfstream.sources.base import LiveSettings, Source, StatusCallback
from dfstream.sources.registry import register_source
from dfstream.sources.spec import IMAGE_EXTENSIONS, SourceKind, SourceSpec
from dfstream.types import Frame


def decode_image(path: Path) -> np.ndarray:
    """The BGR uint8 pixels of the photo at ``path``, upright (EXIF orientation applied), or a
    ``SourceError`` that says what is wrong with the file."""
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied; make the file readable")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise SourceError(f"{path}: cannot read it ({error.strerror or error})") from error
    if data.size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes); was the upload or copy cut off?")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        accepted = " ".join(sorted(IMAGE_EXTENSIONS))
        raise SourceError(
            f"{path}: not a readable image (OpenCV cannot decode it); check that it is a "
            f"complete photo ({accepted})"
        )
    return np.ascontiguousarray(image)


class ImageSource(Source):
    """One photo: ``frames()`` yields its single frame (index 0, media time 0)."""

    live = False
    fps = None
    media_duration_s = None

    def __init__(self, image_bgr: np.ndarray, *, path: Path, stream_id: str) -> None:
        """Wrap decoded pixels; use ``ImageSource.open`` to decode and validate a path."""
        self._image: np.ndarray | None = image_bgr
        self._path = path
        self.stream_id = stream_id
        self.source = str(path)
        self.height, self.width = int(image_bgr.shape[0]), int(image_bgr.shape[1])

    @classmethod
    def open(cls, path: Path, *, stream_id: str) -> ImageSource:
        """Decode the photo at ``path``, or raise a one-line ``SourceError``."""
        return cls(decode_image(path), path=path, stream_id=stream_id)

    def frames(self) -> Iterator[Frame]:
        """The photo as one frame; nothing after ``close()``."""
        image, self._image = self._image, None
        if image is not None:
            yield Frame(
                stream_id=self.stream_id,
                index=0,
                pts_seconds=0.0,
                wall_time=time.time(),
                image_bgr=image,
            )

    def close(self) -> None:
        """Forget the pixels; safe to call more than once."""
        self._image = None


def open_image(
    spec: SourceSpec,
    *,
    stream_id: str,
    live: LiveSettings,
    on_status: StatusCallback | None,
    stop: threading.Event | None,
) -> ImageSource:
    """The opener of ``IMAGE`` specs."""
    return ImageSource.open(Path(spec.url), stream_id=stream_id)


register_source(SourceKind.IMAGE, open_image)
