"""The :class:`WebSocket` a handler is given: accept, receive, send, close, keepalive."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ember.exceptions import ClientDisconnect
from ember.websockets._codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    Deflate,
    _close_payload,
    accept_key,
    encode_frame,
    valid_close_code,
)
from ember.websockets._errors import InvalidMessage, WebSocketDisconnect, _WrongType
from ember.websockets._protocol import _QUEUE_HIGH, WebSocketProtocol

logger = logging.getLogger("ember.websocket")


class WebSocket:
    """One WebSocket connection as the handler sees it."""

    def __init__(self, request: Any, *, max_size: int = 1 << 20, ping_interval: float | None = 20,
                 ping_timeout: float = 20, compression: bool = True,
                 send_timeout: float | None = 60) -> None:
        self.request = request
        self.max_size = max_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.compression = compression
        self.send_timeout = send_timeout
        self._queued_bytes = 0
        self.state = "connecting"  # connecting | open | closing | closed
        self.close_code: int | None = None
        self.close_reason = ""
        self.subprotocol: str | None = None
        self._proto: WebSocketProtocol | None = None
        #: the explicit result the connection switched on (set by accept())
        self.upgraded: Any = None
        self._deflate: Deflate | None = None
        self._messages: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._close_received = False
        self._close_sent = False
        self._closed_event: asyncio.Event | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pong_waiter: asyncio.Future[None] | None = None

    # -- request data ------------------------------------------------------------

    @property
    def headers(self) -> Any:
        """The upgrade request's headers."""
        return self.request.headers

    @property
    def path_params(self) -> dict[str, Any]:
        """Path parameters of the route."""
        return self.request.path_params

    @property
    def query_params(self) -> Any:
        """Query parameters of the upgrade request."""
        return self.request.query_params

    # -- handshake -----------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        """Send the 101 response and take over the connection."""
        if self.state != "connecting":
            raise RuntimeError("accept() called twice")
        req = self.request
        key = req.headers.get("sec-websocket-key", "")
        lines = ["HTTP/1.1 101 Switching Protocols", "upgrade: websocket",
                 "connection: Upgrade", f"sec-websocket-accept: {accept_key(key)}"]
        if subprotocol is not None:
            offered = [p.strip() for p in req.headers.get("sec-websocket-protocol", "")
                       .split(",") if p.strip()]
            if subprotocol not in offered:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client "
                                 f"(offered: {offered})")
            self.subprotocol = subprotocol
            lines.append(f"sec-websocket-protocol: {subprotocol}")
        if self.compression:
            self._deflate, ext = Deflate.negotiate(req.headers.get("sec-websocket-extensions"))
            if ext:
                lines.append(f"sec-websocket-extensions: {ext}")
        from ember.datastructures import encode_header

        for name, value in (headers or {}).items():
            n, v = encode_header(name, value)
            lines.append(f"{n.decode('latin-1')}: {v.decode('latin-1')}")
        from ember.http.sink import Upgrade

        upgrade = Upgrade(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"),
                          self._protocol, self._server_shutdown)
        req._upgrade(upgrade)  # NOTE: the transport acts on it (Sink.upgrade)
        self.upgraded = upgrade
        self.state = "open"
        self._closed_event = asyncio.Event()
        if self.ping_interval:
            self._pinger = asyncio.get_running_loop().create_task(self._keepalive())

    def _protocol(self, transport: Any, lost: Any) -> WebSocketProtocol:
        """The frame protocol that owns ``transport`` after the 101 (Upgrade.protocol)."""
        self._proto = WebSocketProtocol(self, transport, lost)
        return self._proto

    # -- receiving -------------------------------------------------------------------

    def _deliver(self, message: str | bytes) -> None:
        self._messages.append(message)
        self._queued_bytes += len(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> str | bytes:
        """The next message (``str`` or ``bytes``); WebSocketDisconnect when closed."""
        if self.state == "connecting":
            raise RuntimeError("call await ws.accept() first")
        while not self._messages:
            if self.state == "closed" or self._close_received:
                raise WebSocketDisconnect(self.close_code or 1006, self.close_reason)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._messages.popleft()
        self._queued_bytes -= len(message)
        proto = self._proto
        if proto is not None and proto.paused and len(self._messages) < _QUEUE_HIGH // 2 \
                and self._queued_bytes < self.max_size // 2:
            proto.resume_reading()
        return message

    async def receive_text(self) -> str:
        """The next message, which must be text."""
        message = await self.receive()
        if not isinstance(message, str):
            raise _WrongType(1003, "expected a text message, got binary")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary."""
        message = await self.receive()
        if not isinstance(message, bytes):
            raise _WrongType(1003, "expected a binary message, got text")
        return message

    async def receive_json(self) -> Any:
        """The next message parsed as JSON; :class:`InvalidMessage` (1007) when it is not."""
        message = await self.receive()
        try:
            return orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(1007, f"invalid JSON: {exc}") from None

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.receive()
            except WebSocketDisconnect:
                return

    # -- sending -----------------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes, rsv1: bool = False) -> None:
        proto = self._proto
        if proto is None or proto.closed:
            return
        proto.transport.write(encode_frame(opcode, payload, rsv1=rsv1))

    async def _send_message(self, opcode: int, payload: bytes) -> None:
        if self.state != "open" or self._close_sent:
            raise WebSocketDisconnect(self.close_code or 1006, "the connection is closed")
        rsv1 = False
        if self._deflate is not None and len(payload) > 32:
            payload = self._deflate.compress(payload)
            rsv1 = True
        self._send_frame(opcode, payload, rsv1)
        if self._proto is not None:
            try:
                await self._proto.drain(self.send_timeout)
            except ClientDisconnect:
                raise WebSocketDisconnect(self.close_code or 1006,
                                          "the connection is closed") from None
            except TimeoutError:
                # NOTE: a peer that stops reading cannot hold our memory or this task.
                self._fail(1008, "the peer did not read for send_timeout")
                raise WebSocketDisconnect(1008, "the peer stopped reading") from None

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self._send_message(OP_TEXT, data.encode("utf-8"))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._send_message(OP_BINARY, bytes(data))

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as a JSON text message."""
        await self._send_message(OP_TEXT, orjson.dumps(data))

    async def send(self, data: str | bytes) -> None:
        """Send text for ``str``, binary for ``bytes``."""
        if isinstance(data, str):
            await self.send_text(data)
        else:
            await self.send_bytes(data)

    # -- closing -------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start (or finish) the close handshake and wait for the peer, briefly."""
        if self.state == "connecting":
            raise RuntimeError("close() before accept(); return an HTTP response instead")
        if isinstance(code, bool) or not isinstance(code, int) or not valid_close_code(code):
            raise ValueError(
                f"close code {code!r} may not be sent (RFC 6455 §7.4): use 1000-1003, "
                "1007-1014 or an application code 3000-4999")
        encoded = reason.encode("utf-8")
        if len(encoded) > 123:
            raise ValueError("close reason must be at most 123 bytes of UTF-8")
        if not self._close_sent:
            self._close_sent = True
            self.state = "closing"
            if self.close_code is None:
                self.close_code = code
                self.close_reason = reason
            self._send_frame(OP_CLOSE, struct.pack("!H", code) + encoded)
        if self._closed_event is not None and self.state != "closed":
            try:
                await asyncio.wait_for(self._closed_event.wait(), 5)
            except TimeoutError:
                pass
        self._abort()

    def _on_close_frame(self, payload: bytes) -> None:
        self._close_received = True
        code, reason = 1005, ""
        if len(payload) == 1:
            self._fail(1002, "invalid close frame")
            return
        if len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            if not valid_close_code(code):
                self._fail(1002, "invalid close code")
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8 in close reason")
                return
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self._close_sent:
            self._close_sent = True
            self._send_frame(OP_CLOSE, payload[:2] if len(payload) >= 2 else b"")
        self.state = "closing"
        proto = self._proto
        if proto is not None and not proto.closed:
            proto.transport.close()  # NOTE: the server closes TCP first (RFC 6455 §7.1.1)
        self._wake()

    def _fail(self, code: int, reason: str, drain: bool = True) -> None:
        """Protocol error: send a close frame, then close once the peer has seen it.

        NOTE: closing the socket at once while the peer is still sending (the rest of
        an oversized fragmented message, say) makes the kernel answer with a RST that
        can destroy our close frame before the peer reads it; so the rest of the input
        is read and discarded until the peer closes, for at most CLOSE_TIMEOUT.
        """
        logger.debug("closing WebSocket: %d %s", code, reason)
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if not self._close_sent:
            self._close_sent = True
            self._send_frame(OP_CLOSE, _close_payload(code, reason))
        self._close_received = True
        if not drain:  # a dead peer: nothing to wait for
            self._abort()
            return
        proto = self._proto
        if proto is not None and not proto.closed:
            proto.close_after_drain()
        self.state = "closing" if self.state == "open" else self.state
        self._wake()

    def _abort(self) -> None:
        proto = self._proto
        if proto is not None and not proto.closed:
            proto.transport.close()
        self._wake()

    def _lost(self) -> None:
        self.state = "closed"
        if self.close_code is None:
            self.close_code = 1006
        if self._pinger is not None:
            self._pinger.cancel()
        if self._pong_waiter is not None and not self._pong_waiter.done():
            self._pong_waiter.cancel()
        if self._closed_event is not None:
            self._closed_event.set()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _server_shutdown(self) -> None:
        """The server is stopping: close with 1001 (going away)."""
        if self.state == "open" and not self._close_sent:
            self._close_sent = True
            self.close_code = 1001
            self._send_frame(OP_CLOSE, struct.pack("!H", 1001))

    # -- keep-alive ------------------------------------------------------------------------

    def _pong(self, payload: bytes) -> None:
        waiter = self._pong_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _keepalive(self) -> None:
        assert self.ping_interval is not None
        loop = asyncio.get_running_loop()
        while self.state == "open":
            await asyncio.sleep(self.ping_interval)
            if self.state != "open":
                return
            self._pong_waiter = loop.create_future()
            self._send_frame(OP_PING, b"ember")
            try:
                await asyncio.wait_for(self._pong_waiter, self.ping_timeout)
            except TimeoutError:
                logger.info("WebSocket peer did not answer a ping in %ss; closing",
                            self.ping_timeout)
                self._fail(1011, "keepalive ping timeout", drain=False)
                return



__all__ = ["WebSocket"]
