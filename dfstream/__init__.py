"""dfstream: streaming, real-time deepfake video analysis.

``import dfstream`` is cheap and works on any machine: torch, PyAV and OpenCV are imported by
the stages that need them, and optional accelerators (TensorRT, onnxruntime-gpu) only inside
their backend.
"""

__version__ = "0.1.0"
