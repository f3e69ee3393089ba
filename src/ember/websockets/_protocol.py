"""The WebSocket connection after the handshake: frames in, messages out.

:class:`WebSocketProtocol` owns the transport once the 101 is sent: it parses frames
(masking, fragmentation, control frames, UTF-8 validation, size limits), answers
pings, pauses reading while messages wait unread, and runs the close handshake —
including draining a peer after a failure close. It hands messages to its
:class:`~ember.websockets.WebSocket` and writes frames it is given.
"""

from __future__ import annotations

import asyncio
import codecs
import struct
from typing import TYPE_CHECKING, Any

from ember.http.flow_control import READ_BODY, READ_BUDGET, FlowControl
from ember.websockets._codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    _mask,
    encode_frame,
)
from ember.websockets._errors import WebSocketError
from ember.wsframes import COMPILED as _WSFRAMES_COMPILED
from ember.wsframes import scan_fragments as _scan_fragments

if TYPE_CHECKING:
    from ember.websockets._socket import WebSocket

# PERF: frames per scan and its share of FRAME_BUDGET: ~0.3 ms either way
_SCAN_FRAMES, _SCAN_COST = (65536, 16) if _WSFRAMES_COMPILED else (256, 128)
_QUEUE_HIGH = 32  # queued messages before reading pauses (also paused past max_size bytes)
CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer's close frame / EOF after ours
# frames parsed per read before yielding to the loop: a peer sending 1-byte fragments
# cannot hold the worker for a whole read (issue 23)
FRAME_BUDGET = 1024


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



__all__ = ["CLOSE_TIMEOUT", "FRAME_BUDGET", "WebSocketProtocol"]
