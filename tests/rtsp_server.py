"""A small but real RTSP server for tests: ffmpeg streams a clip, this process serves it.

FFmpeg 5.1 (Debian 12) cannot act as an RTSP *server* for players: ``-rtsp_flags listen`` only
works for its RTSP demuxer (receiving a RECORD push), and the RTSP muxer always connects out. So
ffmpeg does the real-time part here (``-re -stream_loop -1 ... -f rtp``: paced H.264 RTP packets
to a local UDP port and an SDP file), and this process speaks RTSP 1.0 to any number of clients
(OPTIONS, DESCRIBE, SETUP with TCP interleaving, PLAY, GET_PARAMETER, TEARDOWN) and relays every
RTP packet to each playing client as ``$``-framed interleaved data.

Run it as a separate process (``python -m tests.rtsp_server --port P --clip C --path /x``) in its
own session, so that a test can kill the whole process group (server and ffmpeg) to simulate a
camera outage, or SIGSTOP it to simulate a stalled one. Optional ``--user``/``--password`` make
DESCRIBE demand HTTP Basic credentials (401 otherwise), so credential handling is exercised.
"""

from __future__ import annotations

import argparse
import base64
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SESSION_ID = "5eed2b1e"


class Relay:
    """Receives ffmpeg's RTP packets on UDP and copies them to every playing client."""

    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", 0))  # ffmpeg sends RTCP to some port; keep ICMP quiet
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        """Forward packets forever (daemon thread)."""
        while True:
            packet = self.rtp.recv(65536)
            frame = b"$\x00" + len(packet).to_bytes(2, "big") + packet
            with self.lock:
                clients = list(self.clients)
            for client in clients:
                try:
                    client.sendall(frame)
                except OSError:
                    self.remove(client)

    def add(self, client: socket.socket) -> None:
        """Start relaying to ``client``."""
        with self.lock:
            self.clients.append(client)

    def remove(self, client: socket.socket) -> None:
        """Stop relaying to ``client``."""
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)


def _read_request(conn: socket.socket, buffer: bytearray) -> tuple[str, dict[str, str]] | None:
    """One RTSP request (interleaved RTCP from the client is skipped), or None on EOF."""
    while True:
        if buffer[:1] == b"$":
            if len(buffer) >= 4:
                size = 4 + int.from_bytes(buffer[2:4], "big")
                if len(buffer) >= size:
                    del buffer[:size]
                    continue
        elif b"\r\n\r\n" in buffer:
            head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            body = int(headers.get("content-length", "0"))
            if len(rest) >= body:
                del buffer[: len(head) + 4 + body]
                return lines[0], headers
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)


def _reply(
    conn: socket.socket, cseq: str, status: str, headers: dict[str, str], body: str = ""
) -> None:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: dfstream-test"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body.encode())}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n" + body).encode())


class Server:
    """RTSP control connections; one thread per client."""

    def __init__(self, args: argparse.Namespace, relay: Relay, sdp: str) -> None:
        self.paths = set(args.path)
        self.relay = relay
        self.sdp = sdp
        self.auth = None
        if args.user is not None:
            token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
            self.auth = f"Basic {token}"

    def handle(self, conn: socket.socket) -> None:
        """Serve one client until it leaves."""
        buffer = bytearray()
        try:
            while (request := _read_request(conn, buffer)) is not None:
                line, headers = request
                method, url, _ = [*line.split(" "), "", ""][:3]
                cseq = headers.get("cseq", "0")
                path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
                base_path = path.split("/streamid=")[0].rstrip("/") or "/"
                if method == "OPTIONS":
                    methods = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
                    _reply(conn, cseq, "200 OK", {"Public": methods})
                elif method == "DESCRIBE":
                    if base_path not in self.paths:
                        _reply(conn, cseq, "404 Not Found", {})
                    elif self.auth and headers.get("authorization") != self.auth:
                        challenge = {"WWW-Authenticate": 'Basic realm="t"'}
                        _reply(conn, cseq, "401 Unauthorized", challenge)
                    else:
                        content = {"Content-Type": "application/sdp", "Content-Base": url + "/"}
                        _reply(conn, cseq, "200 OK", content, self.sdp)
                elif method == "SETUP":
                    if "TCP" not in headers.get("transport", ""):
                        _reply(conn, cseq, "461 Unsupported Transport", {})
                        continue
                    transport = "RTP/AVP/TCP;unicast;interleaved=0-1"
                    _reply(conn, cseq, "200 OK", {"Transport": transport, "Session": SESSION_ID})
                elif method == "PLAY":
                    _reply(conn, cseq, "200 OK", {"Session": SESSION_ID, "Range": "npt=0.000-"})
                    self.relay.add(conn)
                elif method == "TEARDOWN":
                    _reply(conn, cseq, "200 OK", {"Session": SESSION_ID})
                    break
                else:
                    _reply(conn, cseq, "200 OK", {"Session": SESSION_ID})
        except OSError:
            pass
        finally:
            self.relay.remove(conn)
            conn.close()


def _start_ffmpeg(clip: Path, relay: Relay, sdp_path: Path) -> subprocess.Popen[bytes]:
    port = relay.rtp.getsockname()[1]
    rtcp = relay.rtcp.getsockname()[1]
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
        "-map", "0:v:0", "-c", "copy", "-f", "rtp", "-sdp_file", str(sdp_path),
        f"rtp://127.0.0.1:{port}?rtcpport={rtcp}&pkt_size=1400",
    ]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def _wait_sdp(sdp_path: Path, ffmpeg: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ffmpeg.poll() is not None:
            sys.exit(f"rtsp_server: ffmpeg exited with {ffmpeg.returncode}")
        if sdp_path.is_file() and "a=rtpmap" in (text := sdp_path.read_text()):
            lines = [ln for ln in text.splitlines() if ln and not ln.startswith("SDP:")]
            out = []
            for ln in lines:
                if ln.startswith("m=video"):
                    parts = ln.split(" ")
                    parts[1] = "0"
                    out += [" ".join(parts), "a=control:streamid=0"]
                elif ln.startswith("c="):
                    out.append("c=IN IP4 0.0.0.0")
                else:
                    out.append(ln)
            return "\r\n".join(out) + "\r\n"
        time.sleep(0.05)
    sys.exit("rtsp_server: no SDP from ffmpeg within 10 s")


def main() -> None:
    """Parse arguments, start ffmpeg and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--path", action="append", required=True, help="served path, e.g. /x")
    parser.add_argument("--sdp", type=Path, required=True, help="where ffmpeg writes its SDP")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    relay = Relay()
    ffmpeg = _start_ffmpeg(args.clip, relay, args.sdp)
    try:
        server = Server(args, relay, _wait_sdp(args.sdp, ffmpeg))
        threading.Thread(target=relay.run, daemon=True).start()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", args.port))
        listener.listen(16)
        print("ready", flush=True)
        while ffmpeg.poll() is None:
            listener.settimeout(0.5)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=server.handle, args=(conn,), daemon=True).start()
    finally:
        ffmpeg.kill()


if __name__ == "__main__":
    main()
