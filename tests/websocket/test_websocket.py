"""WebSocket over real sockets, with the ``websockets`` library as the client."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ember import Ember, WebSocket, WebSocketDisconnect

websockets = pytest.importorskip("websockets", reason="the websockets client library")
from websockets.asyncio.client import connect  # noqa: E402


def _app(events: list) -> Ember:
    app = Ember()

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        async for message in ws:
            if isinstance(message, str):
                await ws.send_text("echo: " + message)
            else:
                await ws.send_bytes(message[::-1])

    @app.websocket("/json/{room}")
    async def room(ws: WebSocket, room: str):
        await ws.accept(subprotocol="chat.v1")
        data = await ws.receive_json()
        await ws.send_json({"room": room, "got": data})
        await ws.close(4000, "done")

    @app.websocket("/refuse")
    async def refuse(ws: WebSocket):
        return None

    @app.websocket("/watch")
    async def watch(ws: WebSocket):
        await ws.accept()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            events.append(("disconnect", exc.code))
        finally:
            events.append("finally")

    @app.get("/plain")
    async def plain():
        return "http still works"

    return app


def _ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def test_echo_text_binary_and_compression(serve):
    url = serve(_app([]))

    async def main():
        async with connect(_ws_url(url, "/echo")) as ws:
            assert ws.response.headers.get("sec-websocket-extensions", "").startswith(
                "permessage-deflate")
            await ws.send("hi")
            assert await ws.recv() == "echo: hi"
            await ws.send(b"\x01\x02\x03")
            assert await ws.recv() == b"\x03\x02\x01"
            big = "x" * 100_000
            await ws.send(big)
            assert await ws.recv() == "echo: " + big
            await ws.send(["frag", "mented"])  # fragmented message
            assert await ws.recv() == "echo: fragmented"
        async with connect(_ws_url(url, "/echo"), compression=None) as ws:
            await ws.send("plain")
            assert await ws.recv() == "echo: plain"

    asyncio.run(main())


def test_subprotocol_json_path_params_and_close_code(serve):
    url = serve(_app([]))

    async def main():
        async with connect(_ws_url(url, "/json/lobby"), subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send('{"a": 1}')
            assert await ws.recv() == '{"room":"lobby","got":{"a":1}}'
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4000 and ws.close_reason == "done"

    asyncio.run(main())


def test_handler_that_does_not_accept_gets_403(serve):
    url = serve(_app([]))

    async def main():
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(_ws_url(url, "/refuse")):
                pass
        assert info.value.response.status_code == 403

    asyncio.run(main())


def test_client_disconnect_reaches_the_handler(serve):
    events: list = []
    url = serve(_app(events))

    async def main():
        ws = await connect(_ws_url(url, "/watch"))
        await ws.close()

    asyncio.run(main())
    deadline = time.monotonic() + 3
    while "finally" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == [("disconnect", 1000), "finally"]


def test_plain_get_on_websocket_route_is_426_and_bad_handshakes_400(serve):
    import httpx

    url = serve(_app([]))
    r = httpx.get(url + "/echo")
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
    r = httpx.get(url + "/echo", headers={"upgrade": "websocket", "connection": "upgrade",
                                          "sec-websocket-version": "8",
                                          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
    # RFC 6455 §4.4: an unsupported version gets the versions we speak
    assert r.status_code == 426 and r.headers["sec-websocket-version"] == "13"
    r = httpx.get(url + "/echo", headers={"upgrade": "websocket", "connection": "upgrade",
                                          "sec-websocket-version": "13",
                                          "sec-websocket-key": "not base64!"})
    assert r.status_code == 400
    assert httpx.get(url + "/plain").text == "http still works"


def _raw_ws(url: str, path: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455 §1.3 example
    return s


def _close_code(s: socket.socket) -> int:
    data = b""
    while len(data) < 4:
        chunk = s.recv(100)
        if not chunk:
            break
        data += chunk
    assert data[0] & 0x0F == 8, data
    return int.from_bytes(data[2:4], "big")


@pytest.mark.parametrize("frame,code", [
    (bytes([0x81, 0x02]) + b"hi", 1002),                      # unmasked client frame
    (bytes([0x83, 0x80]) + b"\x00\x00\x00\x00", 1002),        # unknown opcode
    (bytes([0x89 & 0x0F | 0x00, 0x80]) + b"\x00" * 4, 1002),  # fragmented ping (FIN=0)
    (bytes([0xC1, 0x80]) + b"\x00" * 4, 1002),                # RSV1 without deflate
    (bytes([0x81, 0x82]) + b"\x00" * 4 + b"\xff\xfe", 1007),  # invalid UTF-8
    (bytes([0x80, 0x80]) + b"\x00" * 4, 1002),                # continuation without start
    (bytes([0x88, 0x81]) + b"\x00" * 4 + b"\x03", 1002),      # 1-byte close payload
    (bytes([0x88, 0x82]) + b"\x00" * 4 + b"\x03\xed", 1002),  # close code 1005 is reserved
])
def test_protocol_violations_close_with_the_right_code(serve, frame, code):
    url = serve(_app([]))
    s = _raw_ws(url, "/echo")
    try:
        s.sendall(frame)
        assert _close_code(s) == code
    finally:
        s.close()


def test_message_too_big_is_1009(serve):
    app = Ember()

    @app.websocket("/small", max_size=10)
    async def small(ws: WebSocket):
        await ws.accept()
        await ws.receive()

    url = serve(app)
    s = _raw_ws(url, "/small")
    try:
        s.sendall(bytes([0x82, 0x80 | 20]) + b"\x00" * 4 + b"x" * 20)
        assert _close_code(s) == 1009
    finally:
        s.close()


def test_ping_is_answered_and_dead_peers_are_dropped(serve):
    app = Ember()
    closed: list[int] = []

    @app.websocket("/ka", ping_interval=0.1, ping_timeout=0.2)
    async def ka(ws: WebSocket):
        await ws.accept()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            closed.append(exc.code)

    url = serve(app)
    s = _raw_ws(url, "/ka")
    try:
        s.sendall(bytes([0x89, 0x82]) + b"\x00" * 4 + b"hi")  # our ping
        # The server's own pings (every 0.1 s) may come first: skip them, find our pong.
        data = b""
        while True:
            while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F):
                data += s.recv(100)
            opcode, size = data[0] & 0x0F, data[1] & 0x7F
            payload, data = data[2:2 + size], data[2 + size:]
            if opcode == 0x9:
                continue
            assert (opcode, payload) == (0xA, b"hi")
            break
        # never answer the server's pings: it must close on its own
        s.settimeout(3)
        got = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    deadline = time.monotonic() + 3
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed == [1011]


def test_server_shutdown_sends_going_away(server_factory):
    app = Ember()

    @app.websocket("/hold")
    async def hold(ws: WebSocket):
        await ws.accept()
        async for _ in ws:
            pass

    server = server_factory(app, limits=app.server_limits.replace(graceful_timeout=2))
    s = _raw_ws(server.url, "/hold")
    try:
        server.loop.call_soon_threadsafe(server.worker.stop)
        assert _close_code(s) == 1001
    finally:
        s.close()


def test_test_client_websocket_sync_and_async():
    from ember.testing import WebSocketRejected

    app = _app([])
    with app.test_client() as c:
        with c.websocket_connect("/echo") as ws:
            ws.send_text("hello")
            assert ws.receive_text() == "echo: hello"
            ws.send_bytes(b"abc")
            assert ws.receive_bytes() == b"cba"
        with c.websocket_connect("/json/r1", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            ws.send_json({"x": 1})
            assert ws.receive_json() == {"room": "r1", "got": {"x": 1}}
            with pytest.raises(WebSocketDisconnect):
                ws.receive()
            assert ws.close_code == 4000
        with pytest.raises(WebSocketRejected) as info, c.websocket_connect("/refuse"):
            pass
        assert info.value.response.status_code == 403

    async def main():
        async with app.test_client() as c, c.websocket_connect("/echo") as ws:
            await ws.send_text("async")
            assert await ws.receive_text() == "echo: async"

    asyncio.run(main())
