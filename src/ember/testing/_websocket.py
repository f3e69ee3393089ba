"""The client side of a WebSocket in tests: ``client.websocket_connect(path)``.

:func:`connect` sends the opening handshake through the test client (a refusal raises
:class:`WebSocketRejected` with the HTTP response); :class:`TestWebSocket` then speaks
RFC 6455 frames (masked, as a client must) over the same socket, sync or async.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ember.datastructures import Headers
from ember.testing._response import TestResponse

if TYPE_CHECKING:
    from ember.testing._client import TestClient


class WebSocketRejected(Exception):
    """The server answered a WebSocket handshake with an HTTP response."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"WebSocket handshake refused: HTTP {response.status_code}")
        self.response = response



async def connect(client: TestClient, url: str, subprotocols: list[str] | None,
                  headers: Mapping[str, str] | None) -> TestWebSocket:
    """The WebSocket handshake through ``client``; WebSocketRejected when refused."""
    import base64
    import os

    from ember.websockets import accept_key

    key = base64.b64encode(os.urandom(16)).decode()
    hdrs = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13",
            "sec-websocket-key": key}
    if subprotocols:
        hdrs["sec-websocket-protocol"] = ", ".join(subprotocols)
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    response = await client._send("GET", url, headers=hdrs)
    if response.status_code != 101:
        await response.aread()
        raise WebSocketRejected(response)
    if response.headers.get("sec-websocket-accept") != accept_key(key):
        raise WebSocketRejected(response)
    return TestWebSocket(client, response._reader, response._writer,
                         response.headers.get("sec-websocket-protocol"), response.headers)



class TestWebSocket:
    """The client side of a WebSocket opened by ``client.websocket_connect(path)``."""

    __test__ = False

    def __init__(self, client: TestClient, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, subprotocol: str | None,
                 headers: Headers) -> None:
        self._client = client
        self._reader = reader
        self._writer = writer
        self.subprotocol = subprotocol
        self.headers = headers
        self.close_code: int | None = None
        self.close_reason = ""

    # -- frames ------------------------------------------------------------------

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        import os
        import struct

        from ember.websockets import _mask

        key = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self._writer.write(head + key + _mask(payload, key))
        await self._writer.drain()

    async def _read_frame(self) -> tuple[int, bool, bytes]:
        import struct

        b0, b1 = await self._reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self._reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self._reader.readexactly(8))[0]
        return b0 & 0x0F, bool(b0 & 0x80), await self._reader.readexactly(n)

    async def areceive(self) -> str | bytes:
        """The next message; WebSocketDisconnect when the server closed."""
        import struct

        from ember.websockets import WebSocketDisconnect

        parts: list[bytes] = []
        kind = None
        while True:
            try:
                opcode, fin, payload = await self._read_frame()
            except (asyncio.IncompleteReadError, ConnectionError):
                raise WebSocketDisconnect(self.close_code or 1006) from None
            if opcode == 8:
                if len(payload) >= 2:
                    self.close_code = struct.unpack("!H", payload[:2])[0]
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                else:
                    self.close_code = 1005
                try:
                    await self._send_frame(8, payload[:2])
                except (ConnectionError, OSError):
                    pass
                raise WebSocketDisconnect(self.close_code, self.close_reason)
            if opcode == 9:
                await self._send_frame(10, payload)
                continue
            if opcode == 10:
                continue
            if opcode in (1, 2):
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if kind == 1 else data

    async def asend(self, data: str | bytes) -> None:
        """Send text (``str``) or binary (``bytes``)."""
        if isinstance(data, str):
            await self._send_frame(1, data.encode("utf-8"))
        else:
            await self._send_frame(2, bytes(data))

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (close frame, then the socket)."""
        import struct

        if not self._writer.is_closing():
            try:
                await self._send_frame(8, struct.pack("!H", code) + reason.encode())
            except (ConnectionError, OSError):
                pass
            self._writer.close()

    # -- sync / async surface -------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return coro if self._client._mode == "async" else self._client._run(coro)

    def send_text(self, data: str) -> Any:
        """Send a text message."""
        return self._call(self.asend(data))

    def send_bytes(self, data: bytes) -> Any:
        """Send a binary message."""
        return self._call(self.asend(bytes(data)))

    def send_json(self, data: Any) -> Any:
        """Send JSON as text."""
        return self._call(self.asend(orjson.dumps(data).decode()))

    def receive(self) -> Any:
        """The next message (str or bytes)."""
        return self._call(self.areceive())

    def receive_text(self) -> Any:
        """The next message as text."""
        return self._call(self.areceive())

    def receive_bytes(self) -> Any:
        """The next message as bytes."""
        return self._call(self.areceive())

    def receive_json(self) -> Any:
        """The next message parsed as JSON."""
        if self._client._mode == "async":
            async def parse() -> Any:
                return orjson.loads(await self.areceive())
            return parse()
        return orjson.loads(self._client._run(self.areceive()))

    def close(self, code: int = 1000, reason: str = "") -> Any:
        """Close the WebSocket."""
        return self._call(self.aclose(code, reason))

    def __enter__(self) -> TestWebSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> TestWebSocket:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()



class _WebSocketContext:
    def __init__(self, client: TestClient, url: str, subprotocols: list[str] | None,
                 headers: Mapping[str, str] | None) -> None:
        self._client = client
        self._args = (url, subprotocols, headers)
        self._ws: TestWebSocket | None = None

    def __enter__(self) -> TestWebSocket:
        self._ws = self._client._run(connect(self._client, *self._args))
        return self._ws

    def __exit__(self, *exc: Any) -> None:
        if self._ws is not None:
            self._ws.close()

    async def __aenter__(self) -> TestWebSocket:
        self._ws = await connect(self._client, *self._args)
        return self._ws

    async def __aexit__(self, *exc: Any) -> None:
        if self._ws is not None:
            await self._ws.aclose()



__all__ = ["TestWebSocket", "WebSocketRejected", "connect"]
