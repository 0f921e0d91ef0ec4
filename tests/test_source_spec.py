"""The one source parser (``parse_source``) and the opener registry."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dfstream.cli import main
from dfstream.errors import SourceError
from dfstream.sources import (
    SUPPORTED_FORMS,
    FileSource,
    LiveSettings,
    LiveSource,
    Source,
    SourceKind,
    SourceSpec,
    StatusCallback,
    open_source,
    parse_source,
    register_source,
    registered_kinds,
)
from dfstream.sources.registry import _OPENERS

KINDS = [
    # text, kind, url, display, live, name, stem
    ("clip.mp4", SourceKind.FILE, "clip.mp4", "clip.mp4", False, "clip.mp4", "clip"),
    ("videos/a.b.mkv", SourceKind.FILE, "videos/a.b.mkv", "videos/a.b.mkv", False, "a.b.mkv",
     "a.b"),
    ("file:///tmp/x.mp4", SourceKind.FILE, "/tmp/x.mp4", "file:///tmp/x.mp4", False, "x.mp4",
     "x"),
    ("rtsp://admin:pw@cam:554/live", SourceKind.RTSP, "rtsp://admin:pw@cam:554/live",
     "rtsp://***@cam:554/live", True, "rtsp://***@cam:554/live", "live"),
    ("RTSPS://u:p@cam", SourceKind.RTSP, "RTSPS://u:p@cam", "RTSPS://***@cam", True,
     "RTSPS://***@cam", "cam"),
    ("http://h/a.mp4", SourceKind.HTTP, "http://h/a.mp4", "http://h/a.mp4", True,
     "http://h/a.mp4", "a"),
    ("https://h/live/index.M3U8?token=1", SourceKind.HLS, "https://h/live/index.M3U8?token=1",
     "https://h/live/index.M3U8?token=1", True, "https://h/live/index.M3U8?token=1", "index"),
    ("udp://127.0.0.1:5000", SourceKind.UDP, "udp://127.0.0.1:5000", "udp://127.0.0.1:5000",
     True, "udp://127.0.0.1:5000", "127.0.0.1-5000"),
    ("rtsp://u:p@10.0.0.5:554/", SourceKind.RTSP, "rtsp://u:p@10.0.0.5:554/",
     "rtsp://***@10.0.0.5:554/", True, "rtsp://***@10.0.0.5:554/", "10.0.0.5-554"),
    ("webcam", SourceKind.WEBCAM, "webcam", "webcam", True, "webcam", "webcam"),
    ("webcam:2", SourceKind.WEBCAM, "webcam:2", "webcam:2", True, "webcam:2", "webcam-2"),
    ("/dev/video0", SourceKind.WEBCAM, "/dev/video0", "/dev/video0", True, "video0", "video0"),
    ("/dev/videos.mp4", SourceKind.FILE, "/dev/videos.mp4", "/dev/videos.mp4", False,
     "videos.mp4", "videos"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "url", "display", "live", "name", "stem"), KINDS, ids=[k[0] for k in KINDS]
)
def test_parse_source(
    text: str, kind: SourceKind, url: str, display: str, live: bool, name: str, stem: str
) -> None:
    spec = parse_source(text)
    assert (spec.text, spec.kind, spec.url, spec.display) == (text, kind, url, display)
    assert (spec.live, spec.name, spec.stem) == (live, name, stem)


def test_a_folder_is_told_from_a_file(tmp_path: Path) -> None:
    spec = parse_source(str(tmp_path))
    assert spec.kind is SourceKind.FOLDER and not spec.live and spec.name == tmp_path.name
    assert parse_source(str(tmp_path / "missing")).kind is SourceKind.FILE


def test_empty_sources_are_one_line_errors() -> None:
    with pytest.raises(SourceError, match="empty source"):
        parse_source("")
    with pytest.raises(SourceError, match="no path after file://"):
        parse_source("file://")


def test_spec_never_shows_the_password() -> None:
    spec = parse_source("rtsp://admin:hunter2@cam/1")
    assert "hunter2" in spec.url  # the opener needs it ...
    for shown in (str(spec), repr(spec), f"{spec}", spec.display, spec.name, spec.stem):
        assert "hunter2" not in shown and "admin" not in shown  # ... nothing else shows it


def test_spec_is_frozen_and_validated() -> None:
    spec = parse_source("clip.mp4")
    with pytest.raises(AttributeError):
        spec.live = True  # type: ignore[misc]
    with pytest.raises(ValueError, match="credentials redacted"):
        SourceSpec(
            text="rtsp://a:b@h", kind=SourceKind.RTSP, url="rtsp://a:b@h",
            display="rtsp://a:b@h", live=True, name="h",
        )  # fmt: skip
    with pytest.raises(TypeError, match="SourceKind"):
        SourceSpec(text="x", kind="file", url="x", display="x", live=False, name="x")  # type: ignore[arg-type]


REFUSED = [
    "rtmp://user:s3cret@live.example/app/key",
    "srt://127.0.0.1:9000?mode=caller",
    "tcp://127.0.0.1:1234",
    "ftp://user:s3cret@10.0.0.2/live",
    "webcam://0",
]


@pytest.mark.parametrize("text", REFUSED)
def test_unsupported_schemes_are_refused_with_one_message(text: str) -> None:
    with pytest.raises(SourceError) as info:
        parse_source(text)
    message = str(info.value)
    scheme = text.split("://", 1)[0]
    assert message.endswith(f": unsupported URL scheme {scheme}://; use {SUPPORTED_FORMS}")
    assert "\n" not in message and "s3cret" not in message
    assert info.value.exit_code == 3
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        open_source(text)


@pytest.mark.parametrize("text", ["rtmp://user:s3cret@live.example/app/key", "srt://h:1"])
def test_cli_refuses_unsupported_schemes_before_any_work(
    text: str, clip_path: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    code = main([str(clip_path), text, "--untrained", "--no-dashboard", "--jsonl", str(out)])
    _, err = capfd.readouterr()
    assert code == 3
    assert "Traceback" not in err and "s3cret" not in err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert "unsupported URL scheme" in line and "rtsp://" in line  # says what is supported
    assert not out.exists()  # refused before any output was opened


def test_every_kind_has_an_opener() -> None:
    assert set(registered_kinds()) == set(SourceKind)


def test_openers_by_kind(clip_path: Path) -> None:
    assert _OPENERS[SourceKind.FILE] is _OPENERS[SourceKind.FOLDER]
    with open_source(parse_source(str(clip_path))) as source:
        assert isinstance(source, FileSource)
    live = {_OPENERS[k] for k in (SourceKind.RTSP, SourceKind.HTTP, SourceKind.HLS)}
    assert live == {_OPENERS[SourceKind.WEBCAM]}
    assert _OPENERS[SourceKind.RTSP].__module__ == LiveSource.__module__


def test_register_source_replaces_an_opener_only_when_asked(
    clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[SourceSpec, str, LiveSettings]] = []

    def opener(
        spec: SourceSpec,
        *,
        stream_id: str,
        live: LiveSettings,
        on_status: StatusCallback | None,
        stop: threading.Event | None,
    ) -> Source:
        calls.append((spec, stream_id, live))
        return FileSource.open(Path(spec.url), stream_id=stream_id)

    monkeypatch.setitem(_OPENERS, SourceKind.FILE, _OPENERS[SourceKind.FILE])
    with pytest.raises(ValueError, match="already registered"):
        register_source(SourceKind.FILE, opener)
    register_source(SourceKind.FILE, opener, replace=True)
    with open_source(str(clip_path), stream_id="cam-1") as source:
        assert source.stream_id == "cam-1"
    ((spec, stream_id, live),) = calls
    assert spec.kind is SourceKind.FILE and stream_id == "cam-1" and live == LiveSettings()
    with pytest.raises(TypeError, match="SourceKind"):
        register_source("file", opener)  # type: ignore[arg-type]
