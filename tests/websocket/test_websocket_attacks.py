"""WebSocket under attack: ping floods, fragment floods, slow readers, cross-site hijacking.

Real server, raw sockets speaking RFC 6455 frames (the attacks need frames that
polite client libraries never send), and the measurements that matter: the
server's write buffer, memory, whether the close frame reaches the peer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import tracemalloc
from typing import Any

import pytest

from ember import CORSMiddleware, Ember, WebSocket, WebSocketDisconnect
from tests._waits import HANG_GUARD, wait_for


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    head = (0x80 if fin else 0) | opcode
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        out = bytes((head, 0x80 | n))
    elif n < 65536:
        out = struct.pack("!BBH", head, 0x80 | 126, n)
    else:
        out = struct.pack("!BBQ", head, 0x80 | 127, n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return out + key + masked


def handshake(port: int, path: str, origin: str | None = None, host: str = "localhost",
              rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(HANG_GUARD)
    s.connect(("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head


def read_frames(s: socket.socket, until_opcode: int) -> list[tuple[int, bytes]]:
    """Read server frames until one with ``until_opcode`` (or EOF)."""
    buf = b""
    frames: list[tuple[int, bytes]] = []
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, pos = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, pos = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < pos + n:
                break
            frames.append((buf[0] & 0x0F, buf[pos:pos + n]))
            buf = buf[pos + n:]
            if frames[-1][0] == until_opcode:
                return frames
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return frames
        if not chunk:
            return frames
        buf += chunk


class Box:
    def __init__(self) -> None:
        self.ws: WebSocket | None = None
        self.events: list[Any] = []
        self.lock = threading.Lock()


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def app(box: Box) -> Ember:
    app = Ember()

    @app.websocket("/hold")
    async def hold(ws: WebSocket):
        await ws.accept()
        box.ws = ws
        try:
            await ws.receive()  # pings are not messages: this waits for the disconnect
        except WebSocketDisconnect:
            pass
        finally:
            box.events.append("finally")

    @app.websocket("/small", max_size=1024)
    async def small(ws: WebSocket):
        await ws.accept()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            box.events.append(exc.code)

    @app.websocket("/firehose", send_timeout=0.3)
    async def firehose(ws: WebSocket):
        await ws.accept()
        try:
            while True:
                await ws.send_bytes(b"x" * 65536)
        except WebSocketDisconnect as exc:
            box.events.append(exc.code)

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    @app.websocket("/partner", allowed_origins=["https://partner.example"])
    async def partner(ws: WebSocket):
        await ws.accept()
        await ws.close()

    @app.websocket("/public", allowed_origins=["*"])
    async def public(ws: WebSocket):
        await ws.accept()
        await ws.close()

    return app


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_ping_flood_from_a_peer_that_never_reads(serve, app, box):
    """Only the latest ping is answered while the peer does not read (RFC 6455 §5.5.3)."""
    url = serve(app)
    s, head = handshake(_port(url), "/hold", rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 101")
    wait_for(lambda: box.ws is not None, "handler running")
    ping = frame(0x9, b"p" * 125)
    for _ in range(400):  # 20,000 pings, 2.7 MB of pongs if each were answered
        s.sendall(ping * 50)
    ws = box.ws
    assert ws is not None and ws._proto is not None
    buffered = ws._proto.transport.get_write_buffer_size()
    s.close()
    # The pending replies stay bounded by one pong past the high-water mark.
    assert buffered <= 256 * 1024, f"{buffered} bytes of pongs queued for a non-reader"
    wait_for(lambda: "finally" in box.events, "handler cancelled on disconnect")


def test_latest_ping_is_answered_when_the_peer_reads_again(serve, app, box):
    url = serve(app)
    s, head = handshake(_port(url), "/hold")
    assert head.startswith(b"HTTP/1.1 101")
    s.sendall(frame(0x9, b"hi"))
    frames = read_frames(s, 0xA)
    s.close()
    assert frames[-1] == (0xA, b"hi")


@pytest.mark.parametrize("attempt", range(32))
def test_fragmented_oversized_message_always_gets_1009(serve, app, box, attempt):
    """3 fragments of 700 bytes (max 1024): the close frame must reach the peer every time."""
    url = serve(app)
    s, head = handshake(_port(url), "/small")
    assert head.startswith(b"HTTP/1.1 101")
    s.sendall(frame(0x2, b"a" * 700, fin=False) + frame(0x0, b"b" * 700, fin=False)
              + frame(0x0, b"c" * 700, fin=True))
    frames = read_frames(s, 0x8)
    s.close()
    assert frames and frames[-1][0] == 0x8, frames
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1009
    wait_for(lambda: box.events == [1009], "handler saw 1009")


def test_oversized_stream_of_tiny_fragments_uses_bounded_memory(serve, box):
    """Memory per message is max_size plus a constant, however fine the fragmentation."""
    app = Ember()
    max_size = 256 * 1024

    @app.websocket("/frag", max_size=max_size, compression=False)
    async def frag(ws: WebSocket):
        await ws.accept()
        message = await ws.receive()
        box.events.append(len(message))

    url = serve(app)
    s, head = handshake(_port(url), "/frag")
    assert head.startswith(b"HTTP/1.1 101")
    pieces = [frame(0x2, b"a", fin=False)] + [frame(0x0, b"a", fin=False)] * (max_size - 2)
    pieces.append(frame(0x0, b"a", fin=True))
    data = b"".join(pieces)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        s.sendall(data)
        wait_for(lambda: box.events == [max_size], "message delivered")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        s.close()
    # ~3 × max_size for the message and its copy; a list of 1-byte parts costs > 10 MiB.
    assert peak < 4 * max_size + 1024 * 1024, f"peak {peak} bytes for a {max_size}-byte message"


def test_slow_reader_is_closed_after_send_timeout(serve, app, box):
    url = serve(app)
    s, head = handshake(_port(url), "/firehose", rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 101")
    wait_for(lambda: box.events == [1008], "handler told the peer stopped reading")
    s.close()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, True])
def test_close_refuses_codes_forbidden_on_the_wire(code):
    ws = WebSocket(None)
    ws.state = "open"
    with pytest.raises(ValueError, match="RFC 6455"):
        asyncio.run(ws.close(code))


@pytest.mark.parametrize("path,origin,host,status", [
    ("/echo", "https://evil.example", "localhost", 403),        # cross-site hijacking
    ("/echo", "null", "localhost", 403),                        # sandboxed iframe / file://
    ("/echo", "http://localhost", "localhost", 101),            # same origin
    ("/echo", "http://localhost:80", "localhost", 101),         # default port spelled out
    ("/echo", "http://localhost:8080", "localhost", 403),       # another port is another origin
    ("/echo", None, "localhost", 101),                          # non-browser client
    ("/partner", "https://partner.example", "localhost", 101),
    ("/partner", "https://evil.example", "localhost", 403),
    ("/partner", "HTTPS://PARTNER.EXAMPLE", "localhost", 101),  # origins are case-insensitive
    ("/public", "https://anyone.example", "localhost", 101),
])
def test_origin_checked_before_the_upgrade(serve, app, path, origin, host, status):
    url = serve(app)
    s, head = handshake(_port(url), path, origin=origin, host=host)
    s.close()
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head[:100]


def test_origin_default_follows_cors_middleware(serve, app):
    app.add_middleware(CORSMiddleware(allow_origins=["https://myapp.example"],
                                      allow_credentials=True))
    url = serve(app)
    s, head = handshake(_port(url), "/echo", origin="https://myapp.example")
    s.close()
    assert head.startswith(b"HTTP/1.1 101")
    s, head = handshake(_port(url), "/echo", origin="https://evil.example")
    s.close()
    assert head.startswith(b"HTTP/1.1 403 ")


@pytest.mark.parametrize("bad", ["https://x.example", ["https://x.example/path"], ["x.example"]])
def test_allowed_origins_config_errors(bad):
    from ember.exceptions import ConfigError

    app = Ember()
    with pytest.raises(ConfigError, match="origin"):
        app.websocket("/ws", allowed_origins=bad)
