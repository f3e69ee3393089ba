"""WebSocket (RFC 6455) with permessage-deflate (RFC 7692).

``@app.websocket("/ws")`` registers a handler taking ``ws: WebSocket``::

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        async for message in ws:          # str for text, bytes for binary
            await ws.send_text(f"echo: {message}")

The HTTP connection is taken over after the 101 response: frames are parsed by
:class:`WebSocketProtocol` (our own framing: masking, fragmentation, control
frames, UTF-8 validation, size limits, close handshake), messages queue up for
``receive`` with read backpressure, sends wait for the transport to drain, and a
ping every ``ping_interval`` seconds closes a peer that stops answering.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import hashlib
import logging
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ember.exceptions import ClientDisconnect
from ember.http.flow_control import READ_BODY, READ_BUDGET, FlowControl
from ember.wsframes import COMPILED as _WSFRAMES_COMPILED
from ember.wsframes import scan_fragments as _scan_fragments

logger = logging.getLogger("ember.websocket")

# PERF: frames per scan and its share of FRAME_BUDGET: ~0.3 ms either way
_SCAN_FRAMES, _SCAN_COST = (65536, 16) if _WSFRAMES_COMPILED else (256, 128)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_QUEUE_HIGH = 32  # queued messages before reading pauses (also paused past max_size bytes)
CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer's close frame / EOF after ours
# frames parsed per read before yielding to the loop: a peer sending 1-byte fragments
# cannot hold the worker for a whole read (issue 23)
FRAME_BUDGET = 1024


class WebSocketDisconnect(Exception):
    """The peer closed the connection (``code``, ``reason``)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WebSocketError(Exception):
    """A protocol violation; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class InvalidMessage(ValueError):
    """A message that is not what the handler asked for: JSON that does not parse
    (``receive_json``, close code 1007) or text where binary was expected and back
    (``receive_text``/``receive_bytes``, 1003).  Uncaught, the connection closes with that
    code and the reason, instead of 1011 "internal error"; catch it to answer otherwise.
    (Also a ``TypeError`` for the wrong type, as before.)"""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _WrongType(InvalidMessage, TypeError):
    pass


def _close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the reason cut to 123 bytes on a UTF-8 boundary."""
    return struct.pack("!H", code) + reason.encode()[:123].decode("utf-8", "ignore").encode()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 §7.4)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                    1014) or 3000 <= code <= 4999


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking key (C speed via big integers)."""
    n = len(data)
    if not n:
        return data
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little")


def encode_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked)."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


class Deflate:
    """permessage-deflate state for one connection (RFC 7692)."""

    def __init__(self, server_no_context: bool, client_no_context: bool, server_bits: int,
                 client_bits: int, level: int = 6) -> None:
        self.server_no_context = server_no_context
        self.client_no_context = client_no_context
        self.server_bits = server_bits
        self.client_bits = client_bits
        self.level = level
        self._compress: Any = None
        self._decompress: Any = None

    @classmethod
    def negotiate(cls, offer_header: str | None) -> tuple[Deflate | None, str | None]:
        """Pick the first acceptable permessage-deflate offer; (state, response header)."""
        if not offer_header:
            return None, None
        for offer in offer_header.split(","):
            parts = [p.strip() for p in offer.split(";")]
            if parts[0].lower() != "permessage-deflate":
                continue
            params: dict[str, str | None] = {}
            ok = True
            for p in parts[1:]:
                if not p:
                    continue
                name, _, value = p.partition("=")
                name = name.strip().lower()
                value = value.strip().strip('"') if value else None
                if name in params:
                    ok = False
                    break
                params[name] = value
            if not ok:
                continue
            server_bits, client_bits = 15, 15
            response = ["permessage-deflate"]
            unknown = set(params) - {"server_no_context_takeover", "client_no_context_takeover",
                                     "server_max_window_bits", "client_max_window_bits"}
            if unknown:
                continue
            if params.get("server_no_context_takeover") is not None:
                continue  # NOTE: these two parameters take no value (RFC 7692 §7.1)
            if params.get("client_no_context_takeover") is not None:
                continue
            if "server_max_window_bits" in params:
                v = params["server_max_window_bits"]
                if v is None or not v.isdigit() or not 8 <= int(v) <= 15:
                    continue
                if int(v) == 8:
                    # NOTE: zlib cannot compress with an 8-bit raw window and answering
                    # more than offered is a protocol error (RFC 7692 §7.1.2.1): decline
                    # this offer (the next one, or no compression).
                    continue
                server_bits = int(v)
                response.append(f"server_max_window_bits={server_bits}")
            if "client_max_window_bits" in params:
                v = params["client_max_window_bits"]
                if v is not None:
                    if not v.isdigit() or not 8 <= int(v) <= 15:
                        continue
                    # NOTE: accepted as offered (answering more is a protocol error);
                    # client_bits, used to inflate, is at least 9: a larger window always
                    # inflates, and zlib deflates "8" with 9 bits.
                    client_bits = max(9, int(v))
                    response.append(f"client_max_window_bits={int(v)}")
            server_nc = "server_no_context_takeover" in params
            client_nc = "client_no_context_takeover" in params
            if server_nc:
                response.append("server_no_context_takeover")
            if client_nc:
                response.append("client_no_context_takeover")
            return cls(server_nc, client_nc, server_bits, client_bits), "; ".join(response)
        return None, None

    def compress(self, data: bytes) -> bytes:
        """One outgoing message, compressed."""
        if self._compress is None or self.server_no_context:
            self._compress = zlib.compressobj(self.level, zlib.DEFLATED, -self.server_bits)
        out = self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_DEFLATE_TAIL) else out

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """One incoming message; WebSocketError 1009 past ``max_size``, 1007 when corrupt."""
        if self._decompress is None or self.client_no_context:
            self._decompress = zlib.decompressobj(-self.client_bits)
        try:
            out = self._decompress.decompress(data + _DEFLATE_TAIL, max_size + 1)
        except zlib.error as exc:
            raise WebSocketError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > max_size or self._decompress.unconsumed_tail:
            raise WebSocketError(1009, "message too big")
        return out


class WebSocketProtocol(asyncio.Protocol):
    """Frames in, messages out: owns the transport after the handshake."""

    def __init__(self, ws: WebSocket, transport: Any, lost: Any) -> None:
        self.ws = ws
        self.transport = transport
        #: the connection's callback when this protocol's connection ends (Sink.upgrade)
        self.lost = lost
        self.buffer = bytearray()
        self.frag_opcode: int | None = None
        # NOTE: one growing buffer, not a list of parts: memory per message is max_size
        # plus a constant however finely the peer fragments it.
        self.frag_data = bytearray()
        self.frag_compressed = False
        self.utf8: Any = None
        self.closed = False
        # NOTE: the same flow control as HTTP/1.1 (ember.http.flow_control): reading pauses
        # while received messages wait unread, writes wait for the transport to drain.
        self.flow = FlowControl(transport)
        # RFC 6455 §5.5.3: while the peer does not read, only the latest ping is answered.
        self.pending_pong: bytes | None = None
        # After a failure close: read and discard until the peer's EOF, then close, so
        # the kernel never answers unread input with a RST that destroys our close frame.
        self.draining = False
        self._drain_timer: asyncio.TimerHandle | None = None
        # NOTE: bytes from the buffer's start to the next frame head (-1: unknown, the
        # failed frame head was broken); while draining, what is left of a frame to skip.
        self.resync = 0
        self.skip = 0
        self.parse_scheduled = False

    # -- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.draining:
            if self.skip >= 0:
                self.buffer += data
                self._drain_parse()
            return
        self.buffer += data
        try:
            self._parse()
        except WebSocketError as exc:
            self.ws._fail(exc.code, exc.reason)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self.buffer.clear()
        self.frag_data = bytearray()
        self.ws._lost()
        self.flow.connection_lost()
        self.lost(exc)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        pong, self.pending_pong = self.pending_pong, None
        if pong is not None and not self.closed:
            self.transport.write(encode_frame(OP_PONG, pong))
        self.flow.resume_writing()

    @property
    def write_paused(self) -> bool:
        """True while the transport's write buffer is over its high-water mark."""
        return self.flow.write_paused

    @property
    def paused(self) -> bool:
        """True while reading is paused for unread messages."""
        return bool(self.flow.read_paused & READ_BODY)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait while the transport's write buffer is full.

        Raises TimeoutError past ``timeout`` seconds and ClientDisconnect once the
        connection is gone.
        """
        if not self.flow.write_paused:
            return
        if timeout is None:
            await self.flow.drain()
        else:
            await asyncio.wait_for(self.flow.drain(), timeout)

    def close_after_drain(self) -> None:
        """Stop reading frames; close once the peer closes or after CLOSE_TIMEOUT."""
        if self.closed or self.draining:
            return
        self.draining = True
        self.skip = self.resync
        self.frag_data = bytearray()
        self.resume_reading()
        loop = asyncio.get_running_loop()
        self._drain_timer = loop.call_later(CLOSE_TIMEOUT, self.transport.close)
        self._drain_parse()

    def pause_reading(self) -> None:
        if not self.closed:
            self.flow.pause_reading(READ_BODY)

    def resume_reading(self) -> None:
        if not self.closed:
            self.flow.resume_reading(READ_BODY)

    # -- framing -------------------------------------------------------------

    def _parse(self) -> None:
        buf = self.buffer
        ws = self.ws
        budget = FRAME_BUDGET
        while not self.closed and not ws._close_received:
            if len(buf) < 2:
                return
            if budget <= 0:
                # NOTE: the budget of this read is spent: the rest a loop turn later
                if not self.parse_scheduled:
                    self.parse_scheduled = True
                    self.flow.pause_reading(READ_BUDGET)
                    asyncio.get_running_loop().call_soon(self._parse_more)
                return
            if buf[0] == 0 and self.frag_opcode is not None:
                # PERF (issue 23): a run of small continuation frames in one C call;
                # it takes only frames _frame would treat the same way.
                start = len(self.frag_data)
                taken = _scan_fragments(buf, self.frag_data, ws.max_size, _SCAN_FRAMES)
                if taken:
                    del buf[:taken]
                    budget -= _SCAN_COST
                    if self.utf8 is not None and self.frag_opcode == OP_TEXT \
                            and not self.frag_compressed:
                        try:
                            self.utf8.decode(self.frag_data[start:], final=False)
                        except UnicodeDecodeError:
                            raise WebSocketError(1007, "invalid UTF-8 in text message") \
                                from None
                    continue
            budget -= 1
            b0, b1 = buf[0], buf[1]
            fin = bool(b0 & 0x80)
            rsv1 = bool(b0 & 0x40)
            if b0 & 0x30 or (rsv1 and ws._deflate is None):
                raise self._unsynced(1002, "reserved bits set without an extension")
            opcode = b0 & 0x0F
            if not b1 & 0x80:
                raise self._unsynced(1002, "client frames must be masked")
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                if length >> 63:
                    raise self._unsynced(1002, "invalid frame length")
                pos = 10
            if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
                raise self._unsynced(1002, f"unknown opcode {opcode}")
            if opcode >= 8:
                if not fin:
                    raise self._unsynced(1002, "fragmented control frame")
                if length > 125:
                    raise self._unsynced(1002, "control frame too long")
                if rsv1:
                    raise self._unsynced(1002, "compressed control frame")
            if length > ws.max_size and opcode < 8:
                self.resync = pos + 4 + length  # NOTE: the frame's end is known: skip it
                raise WebSocketError(1009, "message too big")
            if len(buf) < pos + 4 + length:
                return
            key = bytes(buf[pos:pos + 4])
            payload = _mask(bytes(buf[pos + 4:pos + 4 + length]), key)
            del buf[:pos + 4 + length]
            self._frame(fin, rsv1, opcode, payload)

    def _parse_more(self) -> None:
        """Go on with the frames a budget-limited read left (see _parse)."""
        self.parse_scheduled = False
        if self.closed or self.draining:
            return
        self.flow.resume_reading(READ_BUDGET)
        try:
            self._parse()
        except WebSocketError as exc:
            self.ws._fail(exc.code, exc.reason)

    def _unsynced(self, code: int, reason: str) -> WebSocketError:
        """A refused frame head: skip the frame when its length is readable, else
        where the next frame starts is unknown (-1)."""
        buf = self.buffer
        resync = -1
        if len(buf) >= 2:
            length = buf[1] & 0x7F
            pos = 2
            if length == 126:
                length = struct.unpack_from("!H", buf, 2)[0] if len(buf) >= 4 else -1
                pos = 4
            elif length == 127:
                length = struct.unpack_from("!Q", buf, 2)[0] if len(buf) >= 10 else -1
                pos = 10
                if length >> 63:
                    length = -1
            if length >= 0:
                resync = pos + (4 if buf[1] & 0x80 else 0) + length
        self.resync = resync
        return WebSocketError(code, reason)

    def _drain_parse(self) -> None:
        """After a failure close: skip frames until the peer's Close, then close TCP.

        RFC 6455 §5.5.1 / §7.1.1: once the Close handshake is complete the server
        closes the TCP connection at once (it does not wait for CLOSE_TIMEOUT).
        """
        buf = self.buffer
        while not self.closed:
            skip = self.skip
            if skip < 0:
                buf.clear()  # NOTE: framing lost: read and discard until EOF or timeout
                return
            if skip:
                n = min(skip, len(buf))
                del buf[:n]
                self.skip = skip = skip - n
                if skip:
                    return
            if len(buf) < 2:
                return
            b1 = buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                pos = 10
            if length >> 63:
                self.skip = -1
                continue
            if buf[0] & 0x0F == OP_CLOSE:
                buf.clear()
                self.transport.close()  # the peer's Close reply: the handshake is done
                return
            self.skip = pos + (4 if b1 & 0x80 else 0) + length

    def _frame(self, fin: bool, rsv1: bool, opcode: int, payload: bytes) -> None:
        ws = self.ws
        if opcode == OP_PING:
            if self.write_paused:
                self.pending_pong = payload  # answered on resume_writing
            else:
                ws._send_frame(OP_PONG, payload)
            return
        if opcode == OP_PONG:
            ws._pong(payload)
            return
        if opcode == OP_CLOSE:
            ws._on_close_frame(payload)
            return
        if opcode == OP_CONT:
            if self.frag_opcode is None:
                raise WebSocketError(1002, "continuation frame without a message")
            if rsv1:
                raise WebSocketError(1002, "RSV1 on a continuation frame")
        else:
            if self.frag_opcode is not None:
                raise WebSocketError(1002, "new message before the previous one ended")
            self.frag_opcode = opcode
            self.frag_compressed = rsv1
            self.frag_data = bytearray()
            if opcode == OP_TEXT and not rsv1:
                self.utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        if len(self.frag_data) + len(payload) > ws.max_size:
            raise WebSocketError(1009, "message too big")
        if self.utf8 is not None and self.frag_opcode == OP_TEXT and not self.frag_compressed:
            try:
                self.utf8.decode(payload, final=fin)  # NOTE: fail fast on bad UTF-8
            except UnicodeDecodeError:
                raise WebSocketError(1007, "invalid UTF-8 in text message") from None
        if not fin:
            self.frag_data += payload
            return
        if self.frag_data:
            self.frag_data += payload
            data = bytes(self.frag_data)
        else:
            data = payload
        kind = self.frag_opcode
        compressed = self.frag_compressed
        self.frag_opcode = None
        self.frag_data = bytearray()
        self.utf8 = None
        if compressed:
            data = ws._deflate.decompress(data, ws.max_size)
        if kind == OP_TEXT:
            try:
                message: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                raise WebSocketError(1007, "invalid UTF-8 in text message") from None
        else:
            message = data
        ws._deliver(message)
        if len(ws._messages) >= _QUEUE_HIGH or ws._queued_bytes >= ws.max_size:
            self.pause_reading()


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


def handshake_error(request: Any) -> str | None:
    """Why an upgrade request is not a valid WebSocket opening handshake, or None."""
    headers = request.headers
    if request.http_minor == 0:  # RFC 9110 §7.8: Upgrade is ignored in HTTP/1.0
        return "WebSocket needs HTTP/1.1 (an HTTP/1.0 request cannot upgrade)"
    if request.method != "GET":
        return "WebSocket upgrades must use GET"
    if "websocket" not in headers.get("upgrade", "").lower():
        return "missing 'Upgrade: websocket'"
    if headers.get("sec-websocket-version", "") != "13":
        return "Sec-WebSocket-Version must be 13"
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes, base64-encoded"
    except ValueError:
        return "Sec-WebSocket-Key is not valid base64"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(authority: str, scheme: str) -> tuple[str, int] | None:
    """``("example.com", 443)`` for ``example.com`` under https; None when malformed."""
    authority = authority.strip().lower()
    if not authority or "@" in authority or "/" in authority:
        return None
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if port_text:
        if not port_text.isdigit():
            return None
        return host, int(port_text)
    default = _DEFAULT_PORTS.get(scheme)
    return (host, default) if default is not None else None


def origin_allowed(request: Any, allowed: Any) -> bool:
    """Whether the handshake's ``Origin`` may open this WebSocket (RFC 6455 §10.2).

    ``allowed`` is the route's ``allowed_origins``: ``["*"]`` allows any origin, a list
    allows those origins (``scheme://host[:port]``) and the app's own; ``None`` (the
    default) allows the app's own origin (Origin's host and port equal ``Host``), the
    origins a ``CORSMiddleware`` on the app allows, and clients that send no Origin
    (non-browser clients; browsers always send one). Anything else — another site's
    page using the victim's cookies (cross-site WebSocket hijacking), ``Origin: null``
    — is refused with 403 before the upgrade.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower()
    if allowed is not None and "*" in allowed:
        return True
    if allowed is not None and origin in allowed:
        return True
    scheme, sep, authority = origin.partition("://")
    if sep and scheme in _DEFAULT_PORTS:
        own = _host_port(request.headers.get("host", ""), request.scheme)
        theirs = _host_port(authority, scheme)
        if own is not None and own == theirs:
            return True
    if allowed is None:
        # NOTE: a middleware says which origins it lets in (CORSMiddleware.allows_origin),
        # asked by name: the wire layer does not import the middleware layer
        app = getattr(request, "app", None)
        for mw in getattr(app, "middleware", ()):
            allows = getattr(mw, "allows_origin", None)
            if callable(allows) and allows(origin) is True:
                return True
    return False


def websocket_call(route: Any, invoke: Any) -> Any:
    """The route call of ``@app.websocket``: handshake checks, run, close, clean up."""
    from ember.responses import JSONResponse, Response

    options = dict(route.websocket_options or {})
    allowed = options.pop("allowed_origins", None)
    if allowed is not None:
        allowed = frozenset(o.lower().rstrip("/") for o in allowed)

    async def call(request: Any) -> Any:
        problem = handshake_error(request)
        if problem is not None:
            if "Upgrade" in problem:
                return JSONResponse({"detail": f"this is a WebSocket endpoint: {problem}"}, 426,
                                    headers={"upgrade": "websocket", "connection": "Upgrade"})
            if "Version" in problem:  # RFC 6455 §4.4: say which version we speak
                return JSONResponse({"detail": problem}, 426,
                                    headers={"sec-websocket-version": "13"})
            return JSONResponse({"detail": problem}, 400)
        if not origin_allowed(request, allowed):
            return JSONResponse({"detail": "origin not allowed for this WebSocket endpoint"},
                                403)
        ws = WebSocket(request, **options)
        try:
            await invoke(request, ws)
        except WebSocketDisconnect:
            pass
        except InvalidMessage as exc:
            if ws.state == "connecting":
                raise
            logger.info("WebSocket %s: closing with %d: %s", request.path, exc.code, exc.reason)
            if ws.state == "open":
                ws._fail(exc.code, exc.reason)
        except Exception:
            if ws.state == "connecting":
                raise  # an ordinary HTTP error response
            logger.exception("error in WebSocket handler %s", request.path)
            if ws.state == "open":
                ws._fail(1011, "internal error")
        if ws.state == "connecting":
            return Response(None, 403)  # the handler declined the connection
        if ws.state == "open":
            await ws.close()
        if ws.upgraded is None:
            return Response(None, 403)  # NOTE: closed before accept(): declined
        return ws.upgraded  # NOTE: the 101 is logged; nothing more is written

    return call
