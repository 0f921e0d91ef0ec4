"""Training augmentations for windows of face crops (T, S, S, 3) uint8.

Every choice is drawn once per window and applied to all of its crops, so that the temporal head
sees consistent clips. Compression is real: JPEG through OpenCV, H.264 through PyAV's libx264
(encode the window as a short clip at a random CRF, decode it again) - the artefacts of
re-uploaded and streamed video that a detector meets in the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from dfstream.sources.ffmpeg import to_bgr


@dataclass(frozen=True)
class AugmentSettings:
    """Probabilities and ranges of each augmentation."""

    flip: float = 0.5
    colour: float = 0.8
    blur: float = 0.3
    resample: float = 0.3
    """Down- and up-scaling: lower effective resolution, as with small faces in the frame."""
    jpeg: float = 0.3
    h264: float = 0.2
    jpeg_quality: tuple[int, int] = (40, 95)
    h264_crf: tuple[int, int] = (18, 38)


def jpeg_roundtrip(crops: np.ndarray, quality: int) -> np.ndarray:
    """Each crop JPEG-encoded at ``quality`` and decoded again."""
    out: list[np.ndarray] = []
    for crop in crops:
        ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        out.append(crop if decoded is None else decoded)
    return np.stack(out)


def h264_roundtrip(crops: np.ndarray, crf: int) -> np.ndarray:
    """The window encoded as an H.264 clip (libx264, yuv420p, given CRF) and decoded again.

    Channel order passes through unchanged (the codec sees it as BGR either way, and the
    colour conversion is symmetric). Returns the input when the codec delivers fewer frames.
    """
    t, height, width = crops.shape[:3]
    even_w, even_h = width + width % 2, height + height % 2
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = even_w, even_h, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.framerate = Fraction(25, 1)
    encoder.options = {"crf": str(int(crf)), "preset": "ultrafast", "tune": "zerolatency"}
    decoder = av.CodecContext.create("h264", "r")
    packets = []
    for index, crop in enumerate(crops):
        padded = cv2.copyMakeBorder(
            crop, 0, even_h - height, 0, even_w - width, cv2.BORDER_REPLICATE
        )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="bgr24")
        frame.pts = index
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    decoded = []
    for packet in packets:
        decoded.extend(decoder.decode(packet))
    decoded.extend(decoder.decode(None))
    if len(decoded) < t:
        return crops
    return np.stack([to_bgr(f)[:height, :width] for f in decoded[:t]])


def augment_window(
    crops: np.ndarray, rng: np.random.Generator, settings: AugmentSettings | None = None
) -> np.ndarray:
    """A randomly augmented copy of a window (flip, colour, blur, resampling, JPEG or H.264)."""
    s = settings or AugmentSettings()
    out = np.array(crops, dtype=np.uint8, copy=True)
    if rng.random() < s.flip:
        out = np.ascontiguousarray(out[:, :, ::-1])
    if rng.random() < s.colour:
        contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        saturation = rng.uniform(0.7, 1.3)
        # a colour cast over the whole crop: absolute skin colour must not give the label away
        cast = rng.uniform(-25, 25, 3).astype(np.float32)
        image = out.astype(np.float32)
        grey = image.mean(axis=3, keepdims=True)
        image = (grey + (image - grey) * saturation) * contrast + brightness + cast
        out = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < s.blur:
        sigma = rng.uniform(0.3, 1.5)
        out = np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in out])
    if rng.random() < s.resample:
        side = out.shape[1]
        small = max(8, round(side * rng.uniform(0.35, 0.9)))
        out = np.stack(
            [
                cv2.resize(
                    cv2.resize(c, (small, small), interpolation=cv2.INTER_AREA),
                    (side, side),
                    interpolation=cv2.INTER_LINEAR,
                )
                for c in out
            ]
        )
    draw = rng.random()
    if draw < s.jpeg:
        out = jpeg_roundtrip(out, int(rng.integers(*s.jpeg_quality)))
    elif draw < s.jpeg + s.h264:
        out = h264_roundtrip(out, int(rng.integers(*s.h264_crf)))
    return out
