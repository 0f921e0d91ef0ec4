"""Video sources: a user's string parsed once into a ``SourceSpec``, opened as a ``Source``.

``parse_source`` decides what a string is (file, photo, folder, RTSP, HTTP, HLS, webcam) and
refuses unsupported forms with one line; ``expand_sources`` also turns folders into their videos
and photos;
``open_source`` opens a spec with the opener registered for its kind and returns a ``Source``
whose ``frames()`` yields decoded frames. Modules: ``spec`` (parsing, redaction, ``--sources``
and ``--reconnect`` values), ``base`` (``Source``, ``LiveSettings``, ``Opener``), ``registry``
(``register_source``, ``open_source``), ``file`` (files and folders), ``image`` (photos: one
frame each, decoded by OpenCV), ``live`` (reconnect, stall, backoff) and ``ffmpeg`` (FFmpeg
inputs and options per kind). Importing the package imports ``file``, ``image`` and ``live``,
which register the built-in kinds' openers.
"""

from dfstream.sources.base import LiveSettings, Opener, Source, StatusCallback
from dfstream.sources.file import VIDEO_EXTENSIONS, FileSource, expand_sources
from dfstream.sources.image import ImageSource, decode_image
from dfstream.sources.live import Backoff, LiveSource
from dfstream.sources.registry import open_source, register_source, registered_kinds
from dfstream.sources.spec import (
    IMAGE_EXTENSIONS,
    SUPPORTED_FORMS,
    SourceKind,
    SourceSpec,
    parse_reconnect,
    parse_source,
    read_source_list,
    redact,
    safe_message,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "SUPPORTED_FORMS",
    "VIDEO_EXTENSIONS",
    "Backoff",
    "FileSource",
    "ImageSource",
    "LiveSettings",
    "LiveSource",
    "Opener",
    "Source",
    "SourceKind",
    "SourceSpec",
    "StatusCallback",
    "decode_image",
    "expand_sources",
    "open_source",
    "parse_reconnect",
    "parse_source",
    "read_source_list",
    "redact",
    "register_source",
    "registered_kinds",
    "safe_message",
]
