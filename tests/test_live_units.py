"""Live-source building blocks without a server: specs, options, backoff, fair batching."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from dfstream.cli.analyze import build_parser, config_from_args
from dfstream.errors import SourceError, UsageError
from dfstream.pipeline.fair import FairGather
from dfstream.sources import (
    Backoff,
    LiveSettings,
    SourceKind,
    open_source,
    parse_reconnect,
    parse_source,
    read_source_list,
    redact,
    safe_message,
)
from dfstream.sources.ffmpeg import ffmpeg_input, webcam_input


@pytest.mark.parametrize(
    ("spec", "live"),
    [
        ("rtsp://cam/1", True),
        ("RTSPS://cam/1", True),
        ("http://h/a.mp4", True),
        ("https://h/live/index.m3u8", True),
        ("webcam", True),
        ("webcam:2", True),
        ("/dev/video0", True),
        ("/dev/videos.mp4", False),
        ("clip.mp4", False),
        ("file:///a.mp4", False),
    ],
)
def test_is_live_spec(spec: str, live: bool) -> None:
    assert parse_source(spec).live is live


def test_ftp_is_not_a_live_source() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme ftp://"):
        parse_source("ftp://h/a.mp4")


@pytest.mark.parametrize(
    ("spec", "platform", "expected"),
    [
        ("webcam", "linux", ("/dev/video0", "v4l2")),
        ("webcam:3", "linux", ("/dev/video3", "v4l2")),
        ("/dev/video7", "linux", ("/dev/video7", "v4l2")),
        ("webcam", "darwin", ("0", "avfoundation")),
        ("webcam:1", "darwin", ("1", "avfoundation")),
        ("webcam:Integrated Camera", "win32", ("video=Integrated Camera", "dshow")),
    ],
)
def test_webcam_input(spec: str, platform: str, expected: tuple[str, str]) -> None:
    assert webcam_input(spec, platform=platform) == expected


def test_webcam_name_on_linux_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="webcam:N"):
        webcam_input("webcam:front", platform="linux")


def test_missing_webcam_is_one_line_source_error() -> None:
    settings = LiveSettings(open_timeout=2.0)
    with pytest.raises(SourceError) as info:
        open_source("/dev/video63", live=settings)
    message = str(info.value)
    assert message.startswith("/dev/video63: ") and "\n" not in message


def test_rtsp_low_latency_options() -> None:
    inp = ffmpeg_input(parse_source("rtsp://u:p@h/s"), LiveSettings(open_timeout=3, read_timeout=7))
    assert inp.format == "rtsp" and inp.kind is SourceKind.RTSP and not inp.ends_normally
    assert inp.options["rtsp_transport"] == "tcp"
    assert inp.options["timeout"] == "7000000"  # microseconds
    # Issue 13: fflags=nobuffer drops the keyframe a session starts with (corrupt frames).
    assert "fflags" not in inp.options and inp.options["flags"] == "low_delay"
    assert int(inp.options["probesize"]) <= 1_000_000
    assert inp.display == "rtsp://***@h/s"


def test_http_and_hls_inputs() -> None:
    settings = LiveSettings(open_timeout=1, read_timeout=2)
    progressive = ffmpeg_input(parse_source("http://h/a.mp4"), settings)
    assert progressive.kind is SourceKind.HTTP and progressive.format is None
    assert progressive.options["rw_timeout"] == "2000000" and progressive.ends_normally
    hls = ffmpeg_input(parse_source("https://h/live.m3u8?token=1"), settings)
    assert hls.kind is SourceKind.HLS and hls.format == "hls"


def test_udp_input_reads_mpegts_with_a_timeout() -> None:
    inp = ffmpeg_input(parse_source("udp://0.0.0.0:5000"), LiveSettings(read_timeout=4))
    assert inp.kind is SourceKind.UDP and inp.format == "mpegts" and not inp.ends_normally
    assert inp.url == "udp://0.0.0.0:5000" and inp.options["timeout"] == "10000000"
    assert inp.options["overrun_nonfatal"] == "1"


def test_read_source_list(tmp_path: Path) -> None:
    listing = tmp_path / "cams.txt"
    listing.write_text(
        "# front door\nrtsp://cam/1\n\n  rtsp://cam/2   # garage\nhttp://h/v.mp4#t=3\n"
    )
    assert read_source_list(listing) == ["rtsp://cam/1", "rtsp://cam/2", "http://h/v.mp4#t=3"]
    with pytest.raises(UsageError, match="cannot read"):
        read_source_list(tmp_path / "missing.txt")


def test_cli_sources_file_and_live_flags(tmp_path: Path) -> None:
    listing = tmp_path / "cams.txt"
    listing.write_text("rtsp://cam/2\n")
    args = build_parser().parse_args(
        ["rtsp://cam/1", "--sources", str(listing), "--untrained", "--reconnect", "3",
         "--open-timeout", "2", "--stall-timeout", "4"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.sources == ("rtsp://cam/1", "rtsp://cam/2")
    assert (config.reconnect, config.open_timeout, config.stall_timeout) == (3, 2.0, 4.0)
    assert config_from_args(build_parser().parse_args(["x.mp4"])).reconnect is None
    with pytest.raises(UsageError, match="no sources"):
        config_from_args(build_parser().parse_args([]))


@pytest.mark.parametrize(("text", "value"), [("forever", None), ("0", 0), ("12", 12)])
def test_parse_reconnect(text: str, value: int | None) -> None:
    assert parse_reconnect(text) == value


def test_parse_reconnect_rejects_junk() -> None:
    with pytest.raises(ValueError, match="forever"):
        parse_reconnect("-1")


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    nominal = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, cap in zip(delays, nominal, strict=True):
        assert cap * 0.5 <= delay <= cap
    assert len(set(delays)) == len(delays)  # jitter: no two retries in step
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:s3cret@cam:554/s", "rtsp://***@cam:554/s"),
        ("rtsp://admin:p@ss@cam/s", "rtsp://***@cam/s"),
        ("error: rtsp://a:b@h/x failed; retry rtsp://a:b@h/y", "error: rtsp://***@h/x failed; "
         "retry rtsp://***@h/y"),
        ("/videos/a@b.mp4", "/videos/a@b.mp4"),
        ("http://host/path@v1", "http://host/path@v1"),
    ],
)  # fmt: skip
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert safe_message(text + "\n more") == shown + " more"


def test_fair_gather_does_not_let_a_busy_stream_starve_a_quiet_one() -> None:
    stop = threading.Event()
    fair: FairGather[tuple[str, int]] = FairGather(stop, is_data=lambda item: True)
    busy, quiet = fair.add_stream(100), fair.add_stream(100)
    for i in range(60):
        busy.put(("busy", i))
    quiet.put(("quiet", 0))
    quiet.put(("quiet", 1))
    batch = fair.gather(4, 0.0)
    assert sorted(batch) == [("busy", 0), ("busy", 1), ("quiet", 0), ("quiet", 1)]
    rest = fair.gather(100, 0.0)
    assert [i for _, i in rest] == list(range(2, 60))  # order within a stream is kept


def test_fair_gather_wakes_on_put_and_times_out_empty() -> None:
    stop = threading.Event()
    fair: FairGather[int] = FairGather(stop, is_data=lambda item: item >= 0)
    q = fair.add_stream(4)
    assert fair.gather(4, 0.0, idle_s=0.05) == []
    threading.Timer(0.05, q.put, args=(7,)).start()
    assert fair.gather(4, 0.01, idle_s=5.0) == [7]
    q.put_control(-1)  # control messages do not count towards the batch
    q.put(1)
    assert fair.gather(1, 0.0) == [-1, 1]


def test_second_interrupt_exits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from dfstream.cli import analyze as cli

    exits: list[int] = []
    stops: list[bool] = []
    monkeypatch.setattr(cli.os, "_exit", exits.append)
    interrupts = cli._Interrupts()
    interrupts.on_first = lambda: stops.append(True)
    interrupts(2, None)
    assert stops == [True] and exits == []  # first: stop the sources, finish normally
    interrupts(15, None)
    assert exits == [130]  # second: leave now (the real os._exit never returns)
