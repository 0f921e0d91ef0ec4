"""A camera served by GStreamer's RTSP server (gst-rtsp-server), for the live-source tests.

Run it with Debian's ``/usr/bin/python3`` (GObject introspection is installed for that
interpreter, not for the one running dfstream)::

    /usr/bin/python3 tests/gst_rtsp_server.py --port 8554 --clip clip.mp4 [--user U --password P]

The RTSP protocol side (DESCRIBE/SETUP/PLAY, RTP over UDP or interleaved in TCP, Basic
authentication, RTCP) is gst-rtsp-server's own code. This script only plays the part of the
camera: one pipeline reads the H.264 of ``--clip`` in real time, looping, without re-encoding,
and pushes every access unit to each connected client's media. A client therefore joins
mid-stream, wherever the camera is, and sees its first keyframe only when the camera sends one
(every GOP of the clip), as with a real camera. ``--start S`` starts the camera at the first
keyframe after S seconds of the clip; ``--stop-after S`` makes it fall silent after S seconds
while the server keeps answering (a camera that accepts and never sends). ``--mode file``
instead serves each client the clip from its start, once (a recording).

Prints ``ready`` on standard output once it listens; exits on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402

_CAMERA = (
    "filesrc location={clip} ! qtdemux ! h264parse config-interval=-1 ! "
    "video/x-h264,stream-format=avc,alignment=au ! appsink name=out sync=true "
    "emit-signals=true max-buffers=4 drop=true"
)
_MEDIA = (
    "( appsrc name=src is-live=true format=time do-timestamp=true ! "
    "h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)
_FILE_MEDIA = "( filesrc location={clip} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"
_PROTOCOLS = {
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "any": GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP,
}


class Camera:
    """Plays the clip in real time, looping, and hands each H.264 access unit to the clients."""

    def __init__(self, clip: str, stop_after: float | None, start_at: float | None) -> None:
        self.pipeline = Gst.parse_launch(_CAMERA.format(clip=clip))
        self.sources: list[GstApp.AppSrc] = []
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.stop_after = stop_after
        self.start_at = start_at
        self.caps: Gst.Caps | None = None  # with the SPS/PPS (codec_data): SDP at once
        self.ready = threading.Event()
        sink = self.pipeline.get_by_name("out")
        sink.connect("new-sample", self._sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::eos", self._loop)
        bus.connect("message::error", self._error)

    def start(self) -> None:
        if self.start_at:  # begin at the first keyframe after start_at (snap after)
            self.pipeline.set_state(Gst.State.PAUSED)
            self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
            flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT | Gst.SeekFlags.SNAP_AFTER
            self.pipeline.seek_simple(Gst.Format.TIME, flags, int(self.start_at * Gst.SECOND))
        self.pipeline.set_state(Gst.State.PLAYING)

    def _loop(self, _bus: Gst.Bus, _message: Gst.Message) -> None:
        self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)

    def _error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        print(f"camera error: {error.message} {debug}", file=sys.stderr, flush=True)

    def _sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        silent = self.stop_after is not None and time.monotonic() - self.started > self.stop_after
        if sample is None or silent:
            return Gst.FlowReturn.OK
        if self.caps is None:
            self.caps = sample.get_caps()
            self.ready.set()
        data = sample.get_buffer().extract_dup(0, sample.get_buffer().get_size())
        with self.lock:
            sources = list(self.sources)
        for src in sources:
            src.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        return Gst.FlowReturn.OK

    def attach(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        self.ready.wait(10)
        src.set_property("caps", self.caps)
        with self.lock:
            self.sources.append(src)
        media.connect("unprepared", lambda _m: self._detach(src))

    def _detach(self, src: GstApp.AppSrc) -> None:
        with self.lock:
            if src in self.sources:
                self.sources.remove(src)


def _require_password(server: GstRtspServer.RTSPServer, factory: Any, user: str, pw: str) -> None:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, pw), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role("viewer", "media.factory.access", True)
    permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    factory.set_permissions(permissions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", required=True, help="an MP4 with an H.264 video track")
    parser.add_argument("--path", action="append", help="mount point(s), default /x")
    parser.add_argument("--protocols", choices=sorted(_PROTOCOLS), default="any")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--stop-after", type=float, help="camera silent after S seconds")
    parser.add_argument("--start", type=float, help="camera starts at the keyframe after S s")
    parser.add_argument(
        "--mode",
        choices=("camera", "file"),
        default="camera",
        help="camera: live, looping, clients join mid-stream; file: each client is served the "
        "clip from its start, once (qtdemux ! h264parse ! rtph264pay)",
    )
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(False)  # one media per client (its own appsrc, or its own file reader)
    factory.set_protocols(_PROTOCOLS[args.protocols])
    camera: Camera | None = None
    if args.mode == "camera":
        camera = Camera(args.clip, args.stop_after, args.start)
        factory.set_launch(_MEDIA)
        factory.connect("media-configure", camera.attach)
    else:
        factory.set_launch(_FILE_MEDIA.format(clip=args.clip))
    if args.user:
        _require_password(server, factory, args.user, args.password or "")
    mounts = server.get_mount_points()
    for path in args.path or ["/x"]:
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    if camera is not None:
        camera.start()
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print("ready", flush=True)
    loop.run()
    if camera is not None:
        camera.pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
