"""Faces: detect them (YuNet, Haar, whole frame), track them with stable ids, crop them."""

from dfstream.faces.crop import ColorOrder, crop_face, square_box
from dfstream.faces.detect import (
    DetectorError,
    DetectorKind,
    FaceDetector,
    HaarDetector,
    WholeFrameDetector,
    YuNetDetector,
    default_model_cache,
    find_yunet_model,
    make_detector,
)
from dfstream.faces.track import IouTracker, Track, iou

__all__ = [
    "ColorOrder",
    "DetectorError",
    "DetectorKind",
    "FaceDetector",
    "HaarDetector",
    "IouTracker",
    "Track",
    "WholeFrameDetector",
    "YuNetDetector",
    "crop_face",
    "default_model_cache",
    "find_yunet_model",
    "iou",
    "make_detector",
    "square_box",
]
