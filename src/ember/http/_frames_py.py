# cython: annotation_typing=False
"""HTTP/2 frames (RFC 9113 §4, §6): reader and writers, the pure-Python reference.

The same file is compiled by Cython as ``_frames_c`` (``_frames_c.pxd`` types it);
``ember.http.frames`` picks the compiled twin unless ``EMBER_NO_EXTENSIONS`` is set.

:class:`FrameReader` turns bytes, split anywhere, into frames: ``(type, flags,
stream_id, payload, value)`` tuples, one shape for all ten types —

======================  ===========================  ==============================
type                    ``payload``                  ``value``
======================  ===========================  ==============================
DATA                    the data, padding removed    bytes counted by flow control
HEADERS / CONTINUATION  the header block fragment    0 (priority fields skipped)
PRIORITY                ``b""`` (RFC 9113: ignored)  0
RST_STREAM / GOAWAY     ``b""`` / debug data         error code / (last id, code)
SETTINGS                list of ``(id, value)``      0
PUSH_PROMISE            the header block fragment    the promised stream id
PING                    the 8 opaque bytes           0
WINDOW_UPDATE           ``b""``                      the increment
======================  ===========================  ==============================

A frame the RFC says is malformed becomes an ``ERROR`` tuple ``(ERROR, code,
stream_id, message, frame type)``: ``stream_id`` 0 is a connection error, after which the
reader stops; another id is a stream error (RST_STREAM that stream) and reading
goes on.  Unknown frame types are skipped (§4.1), the reserved bit is ignored.
Sequencing (CONTINUATION, stream states) belongs to the connection, not here.
"""

from __future__ import annotations

import struct

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

DATA = 0
HEADERS = 1
PRIORITY = 2
RST_STREAM = 3
SETTINGS = 4
PUSH_PROMISE = 5
PING = 6
GOAWAY = 7
WINDOW_UPDATE = 8
CONTINUATION = 9
ERROR = -1

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

NO_ERROR = 0
PROTOCOL_ERROR = 1
INTERNAL_ERROR = 2
FLOW_CONTROL_ERROR = 3
SETTINGS_TIMEOUT = 4
STREAM_CLOSED = 5
FRAME_SIZE_ERROR = 6
REFUSED_STREAM = 7
CANCEL = 8
COMPRESSION_ERROR = 9
CONNECT_ERROR = 10
ENHANCE_YOUR_CALM = 11
INADEQUATE_SECURITY = 12
HTTP_1_1_REQUIRED = 13

SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_ENABLE_PUSH = 2
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_FRAME_SIZE = 5
SETTINGS_MAX_HEADER_LIST_SIZE = 6

DEFAULT_MAX_FRAME_SIZE = 16384
MAX_WINDOW = 2**31 - 1
_MAX_FRAME_SIZE_LIMIT = 2**24 - 1


class FrameReader:
    """Frames out of a byte stream; ``max_frame_size`` is our SETTINGS_MAX_FRAME_SIZE."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = b""
        self.failed = False

    def feed(self, data: bytes) -> list:
        """Every complete frame in what was received so far (see the module docstring)."""
        if self.failed:
            return []
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= 9:
            length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
            ftype = buf[pos + 3]
            flags = buf[pos + 4]
            sid = ((buf[pos + 5] & 0x7F) << 24) | (buf[pos + 6] << 16) | (buf[pos + 7] << 8) \
                | buf[pos + 8]
            if length > self.max_frame_size:
                frames.append((ERROR, FRAME_SIZE_ERROR, 0,
                               f"frame of {length} bytes, above the maximum "
                               f"{self.max_frame_size}", 0))
                self.failed = True
                break
            if end - pos - 9 < length:
                break
            payload = buf[pos + 9:pos + 9 + length]
            pos += 9 + length
            frame = _parse(ftype, flags, sid, payload)
            if frame is not None:
                if frame[0] == ERROR:
                    frame = (ERROR, frame[1], frame[2], frame[3], ftype)
                frames.append(frame)
                if frame[0] == ERROR and frame[2] == 0:
                    self.failed = True
                    break
        self._buf = b"" if self.failed else buf[pos:]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buf)


def _error(code: int, sid: int, message: str) -> tuple:
    return (ERROR, code, sid, message, 0)


def _unpad(flags: int, sid: int, payload: bytes, name: str) -> object:
    """The payload without its padding, or an error tuple (§6.1)."""
    if not flags & FLAG_PADDED:
        return payload
    if not payload:
        return _error(FRAME_SIZE_ERROR, 0, f"padded {name} frame without a pad length")
    pad = payload[0]
    if pad >= len(payload):
        return _error(PROTOCOL_ERROR, 0, f"{name} padding longer than the payload")
    return payload[1:len(payload) - pad]


def _parse(ftype: int, flags: int, sid: int, payload: bytes) -> object:
    n = len(payload)
    if ftype == DATA:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "DATA on stream 0")
        body = _unpad(flags, sid, payload, "DATA")
        if isinstance(body, tuple):
            return body
        return (DATA, flags & FLAG_END_STREAM, sid, body, n)
    if ftype == HEADERS:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "HEADERS on stream 0")
        block = _unpad(flags, sid, payload, "HEADERS")
        if isinstance(block, tuple):
            return block
        if flags & FLAG_PRIORITY:
            if len(block) < 5:
                return _error(FRAME_SIZE_ERROR, 0, "HEADERS too short for its priority")
            if _u31(block, 0) == sid:
                # NOTE: a connection error (as h2), not the stream error of §5.3.1: the
                # header block is not decoded, so the HPACK state cannot be trusted.
                return _error(PROTOCOL_ERROR, 0, "stream depends on itself")
            block = block[5:]
        return (HEADERS, flags & (FLAG_END_STREAM | FLAG_END_HEADERS), sid, block, 0)
    if ftype == PRIORITY:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "PRIORITY on stream 0")
        if n != 5:
            return _error(FRAME_SIZE_ERROR, sid, "PRIORITY frame not 5 bytes")
        if _u31(payload, 0) == sid:
            return _error(PROTOCOL_ERROR, sid, "stream depends on itself")
        return (PRIORITY, 0, sid, b"", 0)
    if ftype == RST_STREAM:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "RST_STREAM on stream 0")
        if n != 4:
            return _error(FRAME_SIZE_ERROR, 0, "RST_STREAM frame not 4 bytes")
        return (RST_STREAM, 0, sid, b"", _u32(payload, 0))
    if ftype == SETTINGS:
        return _parse_settings(flags, sid, payload)
    if ftype == PUSH_PROMISE:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "PUSH_PROMISE on stream 0")
        block = _unpad(flags, sid, payload, "PUSH_PROMISE")
        if isinstance(block, tuple):
            return block
        if len(block) < 4:
            return _error(FRAME_SIZE_ERROR, 0, "PUSH_PROMISE too short")
        return (PUSH_PROMISE, flags & FLAG_END_HEADERS, sid, block[4:], _u31(block, 0))
    if ftype == PING:
        if sid != 0:
            return _error(PROTOCOL_ERROR, 0, "PING on a stream")
        if n != 8:
            return _error(FRAME_SIZE_ERROR, 0, "PING frame not 8 bytes")
        return (PING, flags & FLAG_ACK, 0, payload, 0)
    if ftype == GOAWAY:
        if sid != 0:
            return _error(PROTOCOL_ERROR, 0, "GOAWAY on a stream")
        if n < 8:
            return _error(FRAME_SIZE_ERROR, 0, "GOAWAY frame shorter than 8 bytes")
        return (GOAWAY, 0, 0, payload[8:], (_u31(payload, 0), _u32(payload, 4)))
    if ftype == WINDOW_UPDATE:
        if n != 4:
            return _error(FRAME_SIZE_ERROR, 0, "WINDOW_UPDATE frame not 4 bytes")
        increment = _u31(payload, 0)
        if increment == 0:
            return _error(PROTOCOL_ERROR, sid, "WINDOW_UPDATE of 0")
        return (WINDOW_UPDATE, 0, sid, b"", increment)
    if ftype == CONTINUATION:
        if sid == 0:
            return _error(PROTOCOL_ERROR, 0, "CONTINUATION on stream 0")
        return (CONTINUATION, flags & FLAG_END_HEADERS, sid, payload, 0)
    return None  # unknown type: ignored (RFC 9113 §4.1, §5.5)


def _parse_settings(flags: int, sid: int, payload: bytes) -> tuple:
    n = len(payload)
    if sid != 0:
        return _error(PROTOCOL_ERROR, 0, "SETTINGS on a stream")
    if flags & FLAG_ACK:
        if n:
            return _error(FRAME_SIZE_ERROR, 0, "SETTINGS ACK with a payload")
        return (SETTINGS, FLAG_ACK, 0, [], 0)
    if n % 6:
        return _error(FRAME_SIZE_ERROR, 0, "SETTINGS length not a multiple of 6")
    pairs = []
    for i in range(0, n, 6):
        ident = (payload[i] << 8) | payload[i + 1]
        value = _u32(payload, i + 2)
        if ident == SETTINGS_ENABLE_PUSH and value > 1:
            return _error(PROTOCOL_ERROR, 0, "SETTINGS_ENABLE_PUSH not 0 or 1")
        if ident == SETTINGS_INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            return _error(FLOW_CONTROL_ERROR, 0, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
        if ident == SETTINGS_MAX_FRAME_SIZE and not (
                DEFAULT_MAX_FRAME_SIZE <= value <= _MAX_FRAME_SIZE_LIMIT):
            return _error(PROTOCOL_ERROR, 0, "SETTINGS_MAX_FRAME_SIZE out of range")
        pairs.append((ident, value))
    return (SETTINGS, 0, 0, pairs, 0)


def _u32(data: bytes, i: int) -> int:
    high = data[i]  # NOTE: typed wide in the .pxd, so the shift cannot overflow a C int
    return (high << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]


def _u31(data: bytes, i: int) -> int:
    return ((data[i] & 0x7F) << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]


# -- writers ------------------------------------------------------------------------------

def frame_header(length: int, ftype: int, flags: int, sid: int) -> bytes:
    """The 9-byte frame header (§4.1)."""
    return bytes((length >> 16, (length >> 8) & 0xFF, length & 0xFF, ftype, flags,
                  (sid >> 24) & 0x7F, (sid >> 16) & 0xFF, (sid >> 8) & 0xFF, sid & 0xFF))


_HEAD = struct.Struct(">BHBBL")


def put_frame_header(out: bytearray, length: int, ftype: int, flags: int, sid: int) -> None:
    """Append the 9-byte frame header to ``out`` (the connection's send buffer)."""
    if cython.compiled:
        _c_put_head(out, length, ftype, flags, sid)  # noqa: F821 - defined in _frames_c.pxd
        return
    out += _HEAD.pack(length >> 16, length & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF)


def put_data(out: bytearray, sid: int, data: bytes, end_stream: bool) -> None:
    """Append one DATA frame to ``out``."""
    put_frame_header(out, len(data), DATA, FLAG_END_STREAM if end_stream else 0, sid)
    out += data


def put_headers(out: bytearray, sid: int, block: bytes, end_stream: bool,
                max_frame_size: int) -> None:
    """Append HEADERS (then CONTINUATIONs as needed) for one header block to ``out``."""
    flags = FLAG_END_STREAM if end_stream else 0
    size = len(block)
    if size <= max_frame_size:
        put_frame_header(out, size, HEADERS, flags | FLAG_END_HEADERS, sid)
        out += block
        return
    out += headers_frames(sid, block, end_stream, max_frame_size)


def data_frame(sid: int, data: bytes, end_stream: bool = False) -> bytes:
    """One DATA frame (the caller keeps it within the peer's frame size and window)."""
    return frame_header(len(data), DATA, FLAG_END_STREAM if end_stream else 0, sid) + data


def headers_frames(sid: int, block: bytes, end_stream: bool = False,
                   max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """HEADERS, then CONTINUATION frames as needed, for one header block."""
    flags = FLAG_END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return frame_header(len(block), HEADERS, flags | FLAG_END_HEADERS, sid) + block
    out = [frame_header(max_frame_size, HEADERS, flags, sid), block[:max_frame_size]]
    pos = max_frame_size
    while pos < len(block):
        piece = block[pos:pos + max_frame_size]
        pos += len(piece)
        out.append(frame_header(len(piece), CONTINUATION,
                                FLAG_END_HEADERS if pos >= len(block) else 0, sid))
        out.append(piece)
    return b"".join(out)


def settings_frame(pairs: list, ack: bool = False) -> bytes:
    """SETTINGS with ``(id, value)`` pairs, or an ACK."""
    if ack:
        return frame_header(0, SETTINGS, FLAG_ACK, 0)
    body = b"".join(ident.to_bytes(2, "big") + value.to_bytes(4, "big")
                    for ident, value in pairs)
    return frame_header(len(body), SETTINGS, 0, 0) + body


def ping_frame(opaque: bytes, ack: bool = False) -> bytes:
    """PING (or its ACK) with 8 opaque bytes."""
    return frame_header(8, PING, FLAG_ACK if ack else 0, 0) + opaque


def rst_stream_frame(sid: int, code: int) -> bytes:
    """RST_STREAM."""
    return frame_header(4, RST_STREAM, 0, sid) + code.to_bytes(4, "big")


def window_update_frame(sid: int, increment: int) -> bytes:
    """WINDOW_UPDATE (stream 0: the connection)."""
    return frame_header(4, WINDOW_UPDATE, 0, sid) + increment.to_bytes(4, "big")


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """GOAWAY."""
    return (frame_header(8 + len(debug), GOAWAY, 0, 0) + last_stream_id.to_bytes(4, "big")
            + code.to_bytes(4, "big") + debug)


def priority_frame(sid: int, depends_on: int, weight: int, exclusive: bool = False) -> bytes:
    """PRIORITY (deprecated by RFC 9113, written for tests and peers that want it)."""
    dep = depends_on | (0x80000000 if exclusive else 0)
    return frame_header(5, PRIORITY, 0, sid) + dep.to_bytes(4, "big") + bytes((weight,))


def push_promise_frame(sid: int, promised: int, block: bytes) -> bytes:
    """PUSH_PROMISE (a server never needs it; tests send it to check we refuse it)."""
    return (frame_header(4 + len(block), PUSH_PROMISE, FLAG_END_HEADERS, sid)
            + promised.to_bytes(4, "big") + block)
