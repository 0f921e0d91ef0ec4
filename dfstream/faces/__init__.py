"""Faces: detect them (YuNet, Haar, whole frame), track them with stable ids, crop them, and
``FaceAnalyzer``, which does all three for one stream; ``TrackLinker`` gives a face that
comes back moments after its track was lost its old id."""

from dfstream.faces.analyzer import (
    IOU_THRESHOLD,
    LIVE_ANALYSIS_FPS,
    MAX_MISSES,
    AnalyzerSettings,
    FaceAnalyzer,
    FrameAnalysis,
    margin_for_detector,
)
from dfstream.faces.crop import ColorOrder, crop_face, crop_landmarks, square_box
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
from dfstream.faces.relink import RelinkSettings, TrackLinker, appearance
from dfstream.faces.track import IouTracker, Track, iou

__all__ = [
    "IOU_THRESHOLD",
    "LIVE_ANALYSIS_FPS",
    "MAX_MISSES",
    "AnalyzerSettings",
    "ColorOrder",
    "DetectorError",
    "DetectorKind",
    "FaceAnalyzer",
    "FaceDetector",
    "FrameAnalysis",
    "HaarDetector",
    "IouTracker",
    "RelinkSettings",
    "Track",
    "TrackLinker",
    "WholeFrameDetector",
    "YuNetDetector",
    "appearance",
    "crop_face",
    "crop_landmarks",
    "default_model_cache",
    "find_yunet_model",
    "iou",
    "make_detector",
    "margin_for_detector",
    "square_box",
]
