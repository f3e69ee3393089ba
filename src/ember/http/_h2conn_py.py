# cython: annotation_typing=False
"""The server side of an HTTP/2 connection (RFC 9113 §5, §6, §8): our replacement for
``h2.connection.H2Connection``, the pure-Python reference of ``_h2conn_c``.

It speaks the part of h2's interface that :mod:`ember.http.h2` uses — the same method
names, events with the same names and fields, :class:`ProtocolError` with an
``error_code`` — so the protocol can run on either (``EMBER_HTTP2_CODEC``).  Frames come
from :mod:`ember.http.frames`, header blocks from :mod:`ember.http.hpack`.

What it enforces: the preface and first SETTINGS; stream states (§5.1: idle, open,
half-closed, closed; new ids only ascending and odd); CONTINUATION sequencing and a
bound on a header block's size and on its number of frames; flow control both ways
(§5.2, §6.9: windows, overflow, WINDOW_UPDATE of 0); SETTINGS values and ACKs; PING
ACKs; GOAWAY; the request rules of §8.1-8.3 (pseudo-headers per method, lowercase
names, no connection-specific fields, TE only ``trailers``, field values without
CR/LF/NUL or edge whitespace, ``content-length`` against the DATA received).  A
malformed request is a stream error (RST_STREAM PROTOCOL_ERROR) reported as a
:class:`StreamReset` event with ``remote_reset = False`` so the caller's Rapid Reset
budget counts it; a connection error queues GOAWAY and raises :class:`ProtocolError`.
"""

from __future__ import annotations

import base64

from ember.http import frames as _frames_mod
from ember.http import hpack as _hpack

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

F = _frames_mod._impl

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
# NOTE: a header block (HEADERS + CONTINUATIONs) may be at most this many frames, and at
# most twice the header list limit in bytes: CONTINUATION floods (CVE-2024-27316 family)
# end there with ENHANCE_YOUR_CALM instead of buffering without end.
MAX_CONTINUATIONS = 64
_CONNECTION_FIELDS = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                                b"transfer-encoding", b"upgrade"))
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))
# RFC 9113 §8.2.1: never 0x00-0x20, 0x41-0x5A (uppercase) or 0x7F-0xFF; and no token
# separators (RFC 9110 §5.6.2) either.
_BAD_NAME_BYTES = bytes(range(0x21)) + b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" + bytes(range(0x7F, 0x100)) \
    + b':()<>@,;\\"/[]?={}'
# NOTE: byte -> 1 if allowed in a field name (the compiled check indexes it in C)
_NAME_OK = bytes(0 if c in _BAD_NAME_BYTES else 1 for c in range(256))
_HEAD = F._HEAD
_DATA = F.DATA
_HEADERS = F.HEADERS
_PRIORITY = F.PRIORITY
_RST_STREAM = F.RST_STREAM
_SETTINGS = F.SETTINGS
_PUSH_PROMISE = F.PUSH_PROMISE
_PING = F.PING
_GOAWAY = F.GOAWAY
_WINDOW_UPDATE = F.WINDOW_UPDATE
_CONTINUATION = F.CONTINUATION
_ERROR = F.ERROR
_FLAG_END_STREAM = F.FLAG_END_STREAM
_FLAG_ACK = F.FLAG_ACK
_FLAG_END_HEADERS = F.FLAG_END_HEADERS
_PROTOCOL_ERROR = F.PROTOCOL_ERROR
_FLOW_CONTROL_ERROR = F.FLOW_CONTROL_ERROR
_STREAM_CLOSED = F.STREAM_CLOSED
_COMPRESSION_ERROR = F.COMPRESSION_ERROR
_ENHANCE_YOUR_CALM = F.ENHANCE_YOUR_CALM
_SETTINGS_INITIAL_WINDOW_SIZE = F.SETTINGS_INITIAL_WINDOW_SIZE
_SETTINGS_MAX_FRAME_SIZE = F.SETTINGS_MAX_FRAME_SIZE
_SETTINGS_HEADER_TABLE_SIZE = F.SETTINGS_HEADER_TABLE_SIZE


class ProtocolError(Exception):
    """A connection error: GOAWAY with ``error_code`` was queued."""

    error_code = _PROTOCOL_ERROR

    def __init__(self, message: str, error_code: int = _PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.error_code = error_code


class StreamClosedError(ProtocolError):
    """An action on a stream that is closed (or unknown)."""

    def __init__(self, stream_id: int) -> None:
        super().__init__(f"stream {stream_id} is closed", _STREAM_CLOSED)
        self.stream_id = stream_id


class _Event:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"<{type(self).__name__} {fields}>"


class RequestReceived(_Event):
    __slots__ = ("headers", "priority_updated", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, headers: list) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended: StreamEnded | None = None
        self.priority_updated = None


class DataReceived(_Event):
    __slots__ = ("data", "flow_controlled_length", "stream_ended", "stream_id")

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.stream_ended: StreamEnded | None = None


class StreamEnded(_Event):
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(_Event):
    __slots__ = ("error_code", "remote_reset", "stream_id")

    def __init__(self, stream_id: int, error_code: int, remote_reset: bool = True) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote_reset = remote_reset


class WindowUpdated(_Event):
    __slots__ = ("delta", "stream_id")

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged(_Event):
    __slots__ = ("changed_settings",)

    def __init__(self, changed: dict) -> None:
        self.changed_settings = changed


class SettingsAcknowledged(_Event):
    __slots__ = ()


class PingReceived(_Event):
    __slots__ = ("ping_data",)

    def __init__(self, data: bytes) -> None:
        self.ping_data = data


class ConnectionTerminated(_Event):
    __slots__ = ("additional_data", "error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data


class Stream:
    """One stream's state (RFC 9113 §5.1) and windows."""

    __slots__ = ("content_length", "id", "inbound", "inbound_unacked", "local_closed",
                 "outbound", "received", "remote_closed", "trailers")

    def __init__(self, stream_id: int, inbound: int, outbound: int) -> None:
        self.id = stream_id
        self.local_closed = False
        self.remote_closed = False
        self.inbound = inbound
        self.inbound_unacked = 0
        self.outbound = outbound
        self.content_length = -1
        self.received = 0
        self.trailers = False

    @property
    def open(self) -> bool:
        """Open or half-closed: it counts against the concurrent-stream limit."""
        return not (self.local_closed and self.remote_closed)

    @property
    def closed(self) -> bool:
        return self.local_closed and self.remote_closed


class H2Connection:
    """The server side of one HTTP/2 connection (see the module docstring)."""

    def __init__(self, max_concurrent_streams: int = 100, max_header_list_size: int = 16384,
                 initial_window_size: int = DEFAULT_WINDOW,
                 max_frame_size: int = F.DEFAULT_MAX_FRAME_SIZE) -> None:
        self.local_max_concurrent_streams = max_concurrent_streams
        self.local_max_header_list_size = max_header_list_size
        self.local_initial_window = initial_window_size
        self.local_max_frame_size = max_frame_size
        self.reader = F.FrameReader(max_frame_size)
        # NOTE: decode up to a generous bound; the caller answers 431 against its own
        # limit, as for HTTP/1.1.  Past the bound the connection ends (HPACK bomb).
        self.decoder = _hpack.Decoder(max_header_list_size=max(65536,
                                                               2 * max_header_list_size))
        self.encoder = _hpack.Encoder()
        self.streams: dict = {}
        # NOTE: every frame queued until data_to_send is appended here: no per-frame bytes
        # objects, and one piece for the caller's one write per event-loop turn.
        self._out = bytearray()
        self._preface = b""
        self._preface_done = False
        self._settings_seen = False
        self.closed = False
        self.highest_inbound = 0
        self.outbound_window = DEFAULT_WINDOW
        self.inbound_window = DEFAULT_WINDOW
        self._inbound_unacked = 0
        self.remote_initial_window = DEFAULT_WINDOW
        self.max_outbound_frame_size = F.DEFAULT_MAX_FRAME_SIZE
        self._recently_reset: dict = {}
        self._block: list = []
        self._block_sid = 0
        self._block_flags = 0
        self._block_size = 0
        self._block_frames = 0

    # -- setup -------------------------------------------------------------------------

    def initiate_connection(self) -> None:
        """Queue our SETTINGS (the server preface)."""
        self._out += (F.settings_frame([
            (F.SETTINGS_MAX_CONCURRENT_STREAMS, self.local_max_concurrent_streams),
            (_SETTINGS_INITIAL_WINDOW_SIZE, self.local_initial_window),
            (F.SETTINGS_MAX_HEADER_LIST_SIZE, self.local_max_header_list_size),
            (F.SETTINGS_ENABLE_PUSH, 0),
        ]))
        # NOTE: the connection window starts at 64 KiB whatever SETTINGS say (§6.9.2):
        # open it to one stream's window, as h2 does, so one upload is not throttled.
        if self.local_initial_window > self.inbound_window:
            self._out += (F.window_update_frame(
                0, self.local_initial_window - self.inbound_window))
            self.inbound_window = self.local_initial_window

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        """``Upgrade: h2c``: apply the client's HTTP2-Settings; stream 1 is its request."""
        raw = settings_header.rstrip(b"=")
        payload = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        frame = F.FrameReader().feed(F.frame_header(len(payload), _SETTINGS, 0, 0) + payload)
        if frame and frame[0][0] == _SETTINGS:
            self._apply_settings(frame[0][3])
        self.initiate_connection()
        stream = Stream(1, self.local_initial_window, self.remote_initial_window)
        stream.remote_closed = True
        self.streams[1] = stream
        self.highest_inbound = 1

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list:
        """Events for the bytes received; a connection error raises ProtocolError."""
        if self.closed:
            return []
        if not self._preface_done:
            self._preface += bytes(data)
            if len(self._preface) < len(PREFACE):
                if not PREFACE.startswith(self._preface):
                    self._fail(_PROTOCOL_ERROR, "invalid connection preface")
                return []
            if not self._preface.startswith(PREFACE):
                self._fail(_PROTOCOL_ERROR, "invalid connection preface")
            data = self._preface[len(PREFACE):]
            self._preface = b""
            self._preface_done = True
        events: list = []
        for frame in self.reader.feed(data):
            if self.closed:
                break
            self._frame(frame, events)
        return events

    def _frame(self, frame: tuple, events: list) -> None:
        ftype = frame[0]
        if not self._settings_seen:
            if ftype != _SETTINGS or frame[1] & _FLAG_ACK:
                self._fail(_PROTOCOL_ERROR, "the client preface must end with SETTINGS")
            self._settings_seen = True
        if self._block_sid and ftype != _CONTINUATION:
            self._fail(_PROTOCOL_ERROR, "a header block was interrupted")
        if ftype == _ERROR:
            if frame[2] == 0:
                self._fail(frame[1], frame[3])
            if self._idle(frame[2]) and frame[4] not in (_HEADERS, _PRIORITY):
                # §5.1: on an idle stream only HEADERS and PRIORITY may arrive
                self._fail(_PROTOCOL_ERROR, f"{frame[3]} (on idle stream {frame[2]})")
            self._stream_error(frame[2], frame[1], events)
        elif ftype == _DATA:
            self._data(frame, events)
        elif ftype == _HEADERS:
            self._headers(frame, events)
        elif ftype == _CONTINUATION:
            self._continuation(frame, events)
        elif ftype == _RST_STREAM:
            self._rst(frame, events)
        elif ftype == _SETTINGS:
            if frame[1] & _FLAG_ACK:
                events.append(SettingsAcknowledged())
            else:
                changed = self._apply_settings(frame[3])
                self._out += F.settings_frame([], ack=True)
                events.append(RemoteSettingsChanged(changed))
        elif ftype == _PING:
            if not frame[1] & _FLAG_ACK:
                self._out += F.ping_frame(frame[3], ack=True)
                events.append(PingReceived(frame[3]))
        elif ftype == _GOAWAY:
            self.closed = True
            events.append(ConnectionTerminated(frame[4][1], frame[4][0], frame[3]))
        elif ftype == _WINDOW_UPDATE:
            self._window_update(frame, events)
        elif ftype == _PUSH_PROMISE:
            self._fail(_PROTOCOL_ERROR, "a client cannot push")
        # PRIORITY: parsed and checked, then ignored (RFC 9113 §5.3.2)

    def _apply_settings(self, pairs: list) -> dict:
        changed = {}
        for ident, value in pairs:
            if ident == _SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.remote_initial_window
                for stream in self.streams.values():
                    if stream.outbound + delta > MAX_WINDOW:
                        self._fail(_FLOW_CONTROL_ERROR, "window overflow from SETTINGS")
                    stream.outbound += delta
                self.remote_initial_window = value
            elif ident == _SETTINGS_MAX_FRAME_SIZE:
                self.max_outbound_frame_size = value
            elif ident == _SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.header_table_size = min(value, 4096)
            changed[ident] = value
        return changed

    def _headers(self, frame: tuple, events: list) -> None:
        sid = frame[2]
        if self._block_sid:
            self._fail(_PROTOCOL_ERROR, "HEADERS inside a header block")
        flags = frame[1]
        if flags & _FLAG_END_HEADERS:  # the whole block in one frame: the common case
            self._header_block(sid, flags, frame[3], events)
            return
        self._block = [frame[3]]
        self._block_sid = sid
        self._block_flags = flags
        self._block_size = len(frame[3])
        self._block_frames = 1
        self._check_block_size()

    def _continuation(self, frame: tuple, events: list) -> None:
        if not self._block_sid or frame[2] != self._block_sid:
            self._fail(_PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        self._block.append(frame[3])
        self._block_size += len(frame[3])
        self._block_frames += 1
        self._check_block_size()
        if frame[1] & _FLAG_END_HEADERS:
            block = b"".join(self._block)
            self._block = []
            self._block_sid = 0
            self._header_block(frame[2], self._block_flags, block, events)

    def _check_block_size(self) -> None:
        if (self._block_frames > MAX_CONTINUATIONS
                or self._block_size > 2 * self.decoder.max_header_list_size):
            self._fail(_ENHANCE_YOUR_CALM, "header block too large or in too many frames")

    def _header_block(self, sid: int, flags: int, block: bytes, events: list) -> None:
        try:
            headers = self.decoder.decode(block)
        except _hpack.HeaderListTooLarge as exc:
            self._fail(_ENHANCE_YOUR_CALM, str(exc))
        except _hpack.HPACKError as exc:
            self._fail(_COMPRESSION_ERROR, str(exc))
        end = flags & _FLAG_END_STREAM
        stream = self.streams.get(sid)
        if stream is not None:  # trailers (RFC 9113 §8.1)
            if stream.remote_closed:
                self._stream_error(sid, _STREAM_CLOSED, events)
                return
            if not end or any(name[:1] == b":" for name, _ in headers):
                self._stream_error(sid, _PROTOCOL_ERROR, events)
                return
            self._remote_end(stream, events)
            return
        if sid % 2 == 0 or sid <= self.highest_inbound:
            if self._recently_reset.get(sid, False):
                # NOTE: frames the client sent before it saw our reset of an OPEN stream;
                # a stream we only reset for stray frames (never opened, or already closed)
                # cannot be opened by HEADERS now (RFC 9113 §5.1.1)
                return
            self._fail(_PROTOCOL_ERROR if sid % 2 == 0 else _STREAM_CLOSED,
                       f"HEADERS on stream {sid}, which cannot open now")
        self.highest_inbound = sid
        stream = Stream(sid, self.local_initial_window, self.remote_initial_window)
        self.streams[sid] = stream
        length = _check_request(headers)
        if length == -2:
            self._stream_error(sid, _PROTOCOL_ERROR, events)
            return
        stream.content_length = length
        event = RequestReceived(sid, headers)
        events.append(event)
        if end:
            if length > 0:
                self._stream_error(sid, _PROTOCOL_ERROR, events)
                return
            stream.remote_closed = True
            ended = StreamEnded(sid)
            event.stream_ended = ended
            events.append(ended)

    def _data(self, frame: tuple, events: list) -> None:
        sid = frame[2]
        flow = frame[4]
        self.inbound_window -= flow
        if self.inbound_window < 0:
            self._fail(_FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed:
            self._give_back(flow)
            if stream is None and self._idle(sid):
                self._fail(_PROTOCOL_ERROR, f"DATA on idle stream {sid}")
            if stream is not None or sid not in self._recently_reset:
                self._stream_error(sid, _STREAM_CLOSED, events)
            return
        stream.inbound -= flow
        if stream.inbound < 0:
            self._give_back(flow)
            self._stream_error(sid, _FLOW_CONTROL_ERROR, events)
            return
        stream.received += len(frame[3])
        end = frame[1] & _FLAG_END_STREAM
        if stream.content_length >= 0 and (
                stream.received > stream.content_length
                or (end and stream.received != stream.content_length)):
            self._give_back(flow)
            self._stream_error(sid, _PROTOCOL_ERROR, events)  # RFC 9113 §8.1.1
            return
        event = DataReceived(sid, frame[3], flow)
        events.append(event)
        if end:
            event.stream_ended = self._remote_end(stream, events)

    def _remote_end(self, stream: Stream, events: list) -> StreamEnded:
        stream.remote_closed = True
        ended = StreamEnded(stream.id)
        events.append(ended)
        if stream.local_closed:
            self._forget(stream.id)
        return ended

    def _rst(self, frame: tuple, events: list) -> None:
        sid = frame[2]
        if self._idle(sid):
            self._fail(_PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
        if self.streams.pop(sid, None) is not None:
            events.append(StreamReset(sid, frame[4], True))

    def _window_update(self, frame: tuple, events: list) -> None:
        sid = frame[2]
        increment = frame[4]
        if sid == 0:
            if self.outbound_window + increment > MAX_WINDOW:
                self._fail(_FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self.outbound_window += increment
            events.append(WindowUpdated(0, increment))
            return
        stream = self.streams.get(sid)
        if stream is None:
            if self._idle(sid):
                self._fail(_PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return
        if stream.outbound + increment > MAX_WINDOW:
            self._stream_error(sid, _FLOW_CONTROL_ERROR, events)
            return
        stream.outbound += increment
        events.append(WindowUpdated(sid, increment))

    def _idle(self, sid: int) -> bool:
        """Never opened: beyond the highest client stream, or server-initiated (we never
        push, so every even stream is idle)."""
        return sid > self.highest_inbound or sid % 2 == 0

    def _stream_error(self, sid: int, code: int, events: list) -> None:
        """RST_STREAM(code); reported as a reset so that budgets count it."""
        self._out += F.rst_stream_frame(sid, code)
        self._remember_reset(sid, self.streams.pop(sid, None) is not None)
        events.append(StreamReset(sid, code, False))

    def _remember_reset(self, sid: int, opened: bool = True) -> None:
        """``opened``: the stream was open when reset (HEADERS in flight are ignored)."""
        recent = self._recently_reset
        recent[sid] = opened
        if len(recent) > 1000:
            del recent[next(iter(recent))]

    def _fail(self, code: int, message: str) -> None:
        self._out += F.goaway_frame(self.highest_inbound, code, message.encode()[:256])
        self.closed = True
        raise ProtocolError(message, code)

    def _give_back(self, amount: int) -> None:
        """Re-open connection window for bytes nobody will read."""
        if amount:
            self._inbound_unacked += amount
            self._ack_connection()

    def _ack_connection(self) -> None:
        if self._inbound_unacked >= max(DEFAULT_WINDOW, self.local_initial_window) // 2 \
                or self.inbound_window <= 0:
            self._out += F.window_update_frame(0, self._inbound_unacked)
            self.inbound_window += self._inbound_unacked
            self._inbound_unacked = 0

    # -- what the protocol calls -------------------------------------------------------------

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        """Bytes consumed: re-open the connection window and, if open, the stream's."""
        self._give_back(acknowledged_size)
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        stream.inbound_unacked += acknowledged_size
        if stream.inbound_unacked >= self.local_initial_window // 4 or stream.inbound <= 0:
            self._out += F.window_update_frame(stream_id, stream.inbound_unacked)
            stream.inbound += stream.inbound_unacked
            stream.inbound_unacked = 0

    def _sendable(self, stream_id: int) -> Stream:
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed or self.closed:
            raise StreamClosedError(stream_id)
        return stream

    def send_headers(self, stream_id: int, headers: list, end_stream: bool = False) -> None:
        """The response head (HEADERS + CONTINUATIONs as the peer's frame size needs)."""
        stream = self._sendable(stream_id)
        F.put_headers(self._out, stream_id, self.encoder.encode(headers), end_stream,
                      self.max_outbound_frame_size)
        if end_stream:
            self._local_end(stream)

    def send_headers_cached(self, stream_id: int, key: object, headers: list,
                            end_stream: bool = False) -> None:
        """:meth:`send_headers`, the block encoded once per ``key`` while the encoder's
        table stays the same (``key`` must stand for exactly ``headers``)."""
        stream = self._sendable(stream_id)
        F.put_headers(self._out, stream_id, self.encoder.encode_cached(key, headers),
                      end_stream, self.max_outbound_frame_size)
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Body bytes within both windows and the peer's frame size (the caller sizes them)."""
        stream = self._sendable(stream_id)
        size = len(data)
        if size > min(self.outbound_window, stream.outbound) or \
                size > self.max_outbound_frame_size:
            raise ProtocolError(f"{size} bytes exceed the flow-control window or frame size",
                                _FLOW_CONTROL_ERROR)
        self.outbound_window -= size
        stream.outbound -= size
        _put_head(self._out, size, _DATA, _FLAG_END_STREAM if end_stream else 0, stream_id)
        self._out += data
        if end_stream:
            self._local_end(stream)

    def end_stream(self, stream_id: int) -> None:
        """End our side with an empty DATA frame."""
        stream = self._sendable(stream_id)
        _put_head(self._out, 0, _DATA, _FLAG_END_STREAM, stream_id)
        self._local_end(stream)

    def _local_end(self, stream: Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._forget(stream.id)

    def _forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        """RST_STREAM on a stream that is not closed."""
        if self.closed:
            raise StreamClosedError(stream_id)
        # NOTE: a stream already closed on our books (e.g. refused before its handler
        # ran) may be reset again: harmless, and what the caller asked for.
        if self.streams.pop(stream_id, None) is None and (
                stream_id > self.highest_inbound or stream_id in self._recently_reset):
            raise StreamClosedError(stream_id)
        self._out += F.rst_stream_frame(stream_id, error_code)
        self._remember_reset(stream_id)

    def local_flow_control_window(self, stream_id: int) -> int:
        """Bytes we may send on ``stream_id`` now."""
        stream = self._sendable(stream_id)
        return min(self.outbound_window, stream.outbound)

    def close_connection(self, error_code: int = 0, additional_data: bytes | None = None,
                         last_stream_id: int | None = None) -> None:
        """GOAWAY: no new streams; those already open may finish."""
        if self.closed and error_code:
            raise ProtocolError("connection already closed")
        last = self.highest_inbound if last_stream_id is None else last_stream_id
        self._out += F.goaway_frame(last, int(error_code), additional_data or b"")
        if error_code:
            self.closed = True

    def data_to_send(self) -> bytes:
        """Everything queued since the last call."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out = bytearray()
        return data

    @property
    def open_inbound_streams(self) -> int:
        """Streams open or half-closed."""
        return len(self.streams)


def _put_head(out: bytearray, length: int, ftype: int, flags: int, sid: int) -> None:
    """Append a 9-byte frame header to ``out`` (see ``frames.put_frame_header``)."""
    if cython.compiled:
        _c_put_head(out, length, ftype, flags, sid)  # noqa: F821 - from _frames_c.pxd
        return
    out += _HEAD.pack(length >> 16, length & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF)


def split_request(fields: list[tuple[bytes, bytes]], scheme: str
                  ) -> tuple[str | None, bytes | None, str, list[tuple[bytes, bytes]], int]:
    """``(method, path, scheme, headers, size)`` of a decoded request head
    (:mod:`ember.http.pseudo`: HTTP/2 and HTTP/3 share it; compiled here).

    ``headers`` are the regular fields in order; ``:authority`` becomes a leading
    ``host`` field when the request carries none (RFC 9113 §8.3.1: a server treats them
    alike).  ``size`` is the header list size: each field's name + value + 32 (RFC 9113
    §6.5.2, RFC 9114 §4.2.2).  ``method`` / ``path`` are None when missing: the caller
    refuses the stream.
    """
    method = path = authority = None
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    has_host = False
    for field in fields:
        name = field[0]
        value = field[1]
        size += len(name) + len(value) + 32
        if name and name[0] == 58:  # ":"
            if name == b":method":
                method = value.decode("ascii", "replace")
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value.decode("ascii", "replace")
        else:
            if name == b"host":
                has_host = True
            # PERF: the decoder's own pair when it is a plain tuple (no copy)
            headers.append(field if type(field) is tuple else (name, value))
    if authority is not None and not has_host:
        headers.insert(0, (b"host", authority))
    return method, path, scheme, headers, size


def _check_request(headers: list) -> int:
    """RFC 9113 §8.1-8.3 on a request head: its content-length (-1 none), -2 malformed."""
    method = scheme = path = authority = None
    regular = False
    length = -1
    for header in headers:
        name = header[0]
        value = header[1]
        if not name:
            return -2
        if _bad_value(value):
            return -2
        if name[0] == 58:  # ":"
            if regular:
                return -2
            if name == b":method":
                if method is not None:
                    return -2
                method = value
            elif name == b":path":
                if path is not None:
                    return -2
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    return -2
                scheme = value
            elif name == b":authority":
                if authority is not None:
                    return -2
                authority = value
            else:
                return -2
            continue
        regular = True
        if _bad_name(name):
            return -2
        if name in _CONNECTION_FIELDS:
            return -2
        if name == b"te" and value.lower() != b"trailers":
            return -2
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18 or (length >= 0 and int(value) != length):
                return -2
            length = int(value)
    if not method:
        return -2
    if method == b"CONNECT":
        if scheme is not None or path is not None or not authority:
            return -2
    elif not scheme or not path:
        return -2
    return length


def _bad_value(value: bytes) -> bool:
    """CR, LF or NUL inside, or whitespace at either edge (RFC 9113 §8.2.1)."""
    n = len(value)
    if not n:
        return False
    if value[0] in (32, 9) or value[n - 1] in (32, 9):
        return True
    if cython.compiled:
        return _c_bad_value(value)  # noqa: F821 - defined in _h2conn_c.pxd
    return 13 in value or 10 in value or 0 in value


def _bad_name(name: bytes) -> bool:
    """A byte not allowed in a regular field name (uppercase, separators, controls)."""
    if cython.compiled:
        return _c_bad_name(name, _NAME_OK)  # noqa: F821 - defined in _h2conn_c.pxd
    return len(name.translate(None, _BAD_NAME_BYTES)) != len(name)
