"""WebSocket, issue 23: window bits 8, the close handshake after a failure, 1009
promptly, fragment floods in one C call (twins agree).  Real server, real sockets,
the ``websockets`` client where it can speak the case.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import zlib

import pytest

from ember import Ember, WebSocket
from ember import websockets as ember_ws
from tests._waits import HANG_GUARD
from tests.conftest import RunningServer

websockets = pytest.importorskip("websockets", reason="the websockets client library")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory,
)


@pytest.fixture(scope="module")
def server():
    app = Ember()

    @app.websocket("/echo", max_size=1024)
    async def echo(ws: WebSocket):
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    srv = RunningServer(app)
    yield srv
    srv.stop()


@pytest.fixture
def long_close_timeout(monkeypatch):
    """The server's own timer cannot be what closes within the test's hang guard."""
    monkeypatch.setattr(ember_ws._protocol, "CLOSE_TIMEOUT", 600.0)


def masked(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", head, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", head, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", head, 0x80 | 127, n)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def open_ws(server, extensions: str | None = None) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD)
    lines = ["GET /echo HTTP/1.1", "Host: localhost", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head


def read_frame(s: socket.socket, buffered: bytearray) -> tuple[int, bytes] | None:
    """One server frame (opcode, payload); None at EOF."""
    while True:
        if len(buffered) >= 4:
            n = buffered[1] & 0x7F
            pos = 2
            if n == 126:
                n = struct.unpack_from("!H", buffered, 2)[0]
                pos = 4
            if len(buffered) >= pos + n:
                opcode = buffered[0] & 0x0F
                payload = bytes(buffered[pos:pos + n])
                del buffered[:pos + n]
                return opcode, payload
        chunk = s.recv(65536)
        if not chunk:
            return None
        buffered += chunk


def extension_params(head: bytes) -> str | None:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-extensions":
            return value.strip()
    return None


# -- permessage-deflate window bits 8 (RFC 7692 §7.1.2) -----------------------------------


def test_client_max_window_bits_8_is_accepted_as_offered(server):
    s, head = open_ws(server, "permessage-deflate; client_max_window_bits=8")
    try:
        assert extension_params(head) == "permessage-deflate; client_max_window_bits=8"
        # a zlib client compresses "8" with a 9-bit window: the server must inflate it
        comp = zlib.compressobj(6, zlib.DEFLATED, -9)
        inflate = zlib.decompressobj(-15)  # the server's replies keep their context too
        buffered = bytearray()
        for text in ["hello " * 40, "abc" * 300, "hello " * 40]:  # context takeover
            data = comp.compress(text.encode()) + comp.flush(zlib.Z_SYNC_FLUSH)
            s.sendall(masked(0x1, data[:-4], rsv1=True))
            opcode, payload = read_frame(s, buffered)
            assert opcode == 0x1
            out = inflate.decompress(payload + b"\x00\x00\xff\xff")
            assert out == text.encode()
    finally:
        s.close()


@pytest.mark.parametrize("offer,answer", [
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
     "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
    ("permessage-deflate; client_max_window_bits=08",
     "permessage-deflate; client_max_window_bits=8"),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; client_max_window_bits=16", None),
    ("permessage-deflate; client_max_window_bits=x", None),
    ("permessage-deflate; server_max_window_bits=9",
     "permessage-deflate; server_max_window_bits=9"),
])
def test_window_bits_answers_never_exceed_the_offer(server, offer, answer):
    s, head = open_ws(server, offer)
    s.close()
    assert extension_params(head) == answer


def test_websockets_client_offering_server_window_bits_8_succeeds(server):
    async def main():
        factory = ClientPerMessageDeflateFactory(server_max_window_bits=8)
        async with asyncio.timeout(HANG_GUARD):
            async with connect(f"ws://127.0.0.1:{server.port}/echo",
                               extensions=[factory]) as ws:
                await ws.send("hello " * 50)
                assert await ws.recv() == "hello " * 50

    asyncio.run(main())


@pytest.mark.parametrize("compression", ["deflate", None])
def test_websockets_client_with_window_bits_9(server, compression):
    async def main():
        kwargs = {"compression": compression}
        if compression:
            kwargs = {"extensions": [ClientPerMessageDeflateFactory(client_max_window_bits=9,
                                                                    server_max_window_bits=9)]}
        async with asyncio.timeout(HANG_GUARD):
            async with connect(f"ws://127.0.0.1:{server.port}/echo", **kwargs) as ws:
                for text in ("x" * 1000, "y" * 10, "z" * 1000):
                    await ws.send(text)
                    assert await ws.recv() == text

    asyncio.run(main())


# -- failing a connection: 1009 promptly, the peer's Close reply closes TCP ---------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_one_message_over_max_size_gets_1009_and_a_clean_close(server, compression,
                                                                long_close_timeout):
    async def main():
        async with asyncio.timeout(HANG_GUARD):
            async with connect(f"ws://127.0.0.1:{server.port}/echo", compression=compression,
                               max_size=None, close_timeout=HANG_GUARD * 2) as ws:
                await ws.send(os.urandom(1000).hex()[:2000])
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            # NOTE: leaving the block waits for the server to close TCP: with the
            # server's timer at 600 s, only the Close reply can have done it.

    asyncio.run(main())


BAD = {
    "1009 one frame": (masked(0x2, b"x" * 2000), 1009),
    "1009 fragments": (masked(0x2, b"x" * 600, fin=False) + masked(0x0, b"x" * 600), 1009),
    "1007 bad utf-8": (masked(0x1, b"\xff\xfe"), 1007),
    "1002 unknown opcode": (masked(0x3, b"abc"), 1002),
    "1002 unmasked": (struct.pack("!BB", 0x82, 3) + b"abc", 1002),
    "1002 orphan continuation": (masked(0x0, b"abc"), 1002),
    "1002 long control frame": (masked(0x9, b"p" * 200), 1002),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("then", ["close", "data-then-close"])
def test_after_failing_the_peers_close_reply_closes_tcp_at_once(server, name, then,
                                                                long_close_timeout):
    data, code = BAD[name]
    s, _ = open_ws(server)
    try:
        s.sendall(data)
        buffered = bytearray()
        opcode, payload = read_frame(s, buffered)
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == code
        reply = masked(0x8, payload[:2])
        if then == "data-then-close":  # frames in flight before the peer saw our Close
            reply = masked(0x2, b"late" * 100) + masked(0x9, b"ping") + reply
        s.sendall(reply)
        assert read_frame(s, buffered) is None  # EOF: the server closed TCP
    finally:
        s.close()


def test_a_peer_that_never_replies_is_still_closed_by_the_timer(server, monkeypatch):
    monkeypatch.setattr(ember_ws._protocol, "CLOSE_TIMEOUT", 0.2)
    s, _ = open_ws(server)
    try:
        s.sendall(masked(0x3, b"abc"))
        buffered = bytearray()
        opcode, _ = read_frame(s, buffered)
        assert opcode == 0x8
        assert read_frame(s, buffered) is None
    finally:
        s.close()


# -- fragment floods: one C call per run, same result as frame by frame -------------------


def test_fragment_flood_is_delivered_whole_in_both_kinds(server):
    s, _ = open_ws(server)
    try:
        for opcode, unit in ((0x2, b"b"), (0x1, "é".encode())):
            n = 1000 // len(unit)
            payload = unit * n
            frames = [masked(opcode, unit, fin=False)]
            frames += [masked(0x0, unit, fin=False)] * (n - 2)
            frames.append(masked(0x0, unit))
            s.sendall(b"".join(frames))
            buffered = bytearray()
            got_opcode, got = read_frame(s, buffered) or (None, b"")
            assert got_opcode == opcode and got == payload
    finally:
        s.close()


def test_fragment_flood_with_a_utf8_sequence_split_across_frames(server):
    s, _ = open_ws(server)
    try:
        data = "héllo wörld €".encode()
        frames = [masked(0x1, data[:1], fin=False)]
        frames += [masked(0x0, data[i:i + 1], fin=False) for i in range(1, len(data) - 1)]
        frames.append(masked(0x0, data[-1:]))
        s.sendall(b"".join(frames))
        assert read_frame(s, bytearray()) == (0x1, data)
        s.sendall(masked(0x1, b"a", fin=False) + masked(0x0, b"\xff", fin=False)
                  + masked(0x0, b"b"))
        opcode, payload = read_frame(s, bytearray())
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1007
    finally:
        s.close()


def test_scan_fragments_twins_agree():
    import importlib

    from ember._compat import is_compiled

    pure = importlib.import_module("ember._wsframes_py")
    twins = [pure]
    try:
        compiled = importlib.import_module("ember._wsframes_c")
    except ImportError:
        compiled = None
    if compiled is not None and is_compiled(compiled):
        twins.append(compiled)
    rng = random.Random(23)
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(0, 8)):
            payload = rng.randbytes(rng.randint(0, 130))[:125]
            b0 = 0 if rng.random() < 0.8 else rng.choice([0x80, 0x01, 0x40, 0x09, 0x88])
            key = rng.randbytes(4)
            body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            if rng.random() < 0.95:
                parts.append(bytes([b0, 0x80 | len(payload)]) + key + body)
            else:
                parts.append(bytes([0, len(payload[:5])]) + payload[:5])  # unmasked
        data = b"".join(parts)
        cut = rng.randint(0, len(data))
        limit = rng.randint(0, 600)
        max_frames = rng.randint(0, 10)
        results = []
        for module in twins:
            buf, out = bytearray(data[:cut]), bytearray(b"pre")
            taken = module.scan_fragments(buf, out, limit, max_frames)
            results.append((taken, bytes(out)))
        assert all(r == results[0] for r in results)
        taken, out = results[0]
        assert len(out) - 3 <= max(limit - 3, 0) or taken == 0
