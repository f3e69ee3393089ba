"""HTTP/3 (RFC 9114) connections: aioquic frames, the exchange core answers.

One :class:`H3Protocol` per QUIC connection (created by aioquic's ``QuicServer``,
see :mod:`ember.server.quic`); each request stream is an :class:`H3Stream`, the
:class:`~ember.http.sink.Sink` of its one exchange.  Handlers see what they see over
HTTP/1.1 and HTTP/2: ``request.http_version == "3"``, the same limits (``max_body_size``
413, header count/size 431, URL 414, ``body_timeout`` 408, ``request_timeout`` 504),
streaming and SSE, and a reset stream or a lost connection cancels the handler.

Defences on top of aioquic's (docs/http3.md): at most ``http2_max_concurrent_streams``
request streams open at once (QUIC ``MAX_STREAMS``: a client cannot open more); a
connection whose handshake does not finish within ``header_timeout`` is closed
(aioquic probes such a peer for ever: aioquic#637); an idle connection closes after
``keep_alive_timeout``; ``MAX_FIELD_SECTION_SIZE`` advertises ``max_header_size``;
nothing is written on a stream the peer reset or asked to stop (aioquic asserts:
hypercorn#352); a client that stops reading is cut after ``send_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, ErrorCode, FrameType, H3Connection, Setting
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    StopSendingReceived,
    StreamReset,
)

from ember.exceptions import ClientDisconnect
from ember.http.cycle import Cycle
from ember.http.errors import ERROR_CONTENT_TYPE, error_body
from ember.http.exchange import Exchange
from ember.http.h3stream import HIGH_WATER, H3Stream
from ember.http.pseudo import split_request
from ember.requests import Request
from ember.status import body_allowed

logger = logging.getLogger("ember.server")

#: while requests run, a PING this often keeps QUIC's idle timeout from firing
PING_INTERVAL = 10.0
MAX_UNI_STREAMS = 8
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                         b"transfer-encoding", b"upgrade", b"content-length"))
_SEND_ERRORS = (AssertionError, ValueError, RuntimeError)  # aioquic on a closed stream


class _H3(H3Connection):
    """aioquic's HTTP/3 connection, advertising our header-size limit (RFC 9114 §4.2.2)."""

    max_field_section_size = 16384

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self.max_field_section_size
        return settings


class H3Protocol(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3 (see the module docstring)."""

    def __init__(self, quic: Any, stream_handler: Any = None, *, app: Any, state: Any,
                 limits: Any, scheme: str = "https") -> None:
        super().__init__(quic, stream_handler)
        self.app = app
        self.state = state
        self.limits = limits
        self.scheme = scheme
        # NOTE: what the app hands every connection, decided once (issue #24): routing,
        # the dispatch and its plan of fast routes, and the one exchange core.
        self._resolve, dispatch, _ = app._connection_interface()
        kinds: dict = {}
        plan = getattr(getattr(dispatch, "__self__", None), "_answer_plan", None)
        if state.fast_path and not state.access_log and plan is not None:
            kinds = plan(dispatch)
        self.exchange = Exchange(app, dispatch, kinds, state)
        self.peer: tuple[str, int] | None = None
        self.h3: _H3 | None = None
        self.streams: dict[int, H3Stream] = {}
        self.closed = False
        self.going_away = False
        # NOTE: aioquic fixes MAX_STREAMS at 128 and raises it by one per closed stream,
        # so its initial value is the number of request streams open at once.
        bidi = quic._local_max_streams_bidi
        bidi.value = bidi.sent = limits.http2_max_concurrent_streams
        uni = quic._local_max_streams_uni
        uni.value = uni.sent = MAX_UNI_STREAMS
        loop = self._loop
        self._idle: asyncio.TimerHandle | None = None
        self._ping: asyncio.TimerHandle | None = None
        self._handshake = loop.call_later(limits.header_timeout, self._handshake_late)
        # NOTE: a connection while draining, or over ``max_connections`` (QUIC has no
        # backlog to wait in), is refused once its first packet is read (CONNECTION_CLOSE
        # needs the keys that packet brings)
        most = limits.max_connections
        self._refuse = state.shutting_down or (most is not None
                                               and len(state.connections) >= most)
        state.connections.add(self)

    # -- datagrams and events ---------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: Any) -> None:  # type: ignore[override]
        if self.peer is None and isinstance(addr, tuple):
            self.peer = (str(addr[0]), int(addr[1]))
        if self._refuse:
            self._refuse = False
            logger.info("HTTP/3: refusing a connection from %s (%s)",
                        self.peer[0] if self.peer else "-", "shutting down"
                        if self.state.shutting_down else "max_connections reached")
            # NOTE: read the Initial (its keys), then close before anything else is sent:
            # the client gets CONNECTION_CLOSE instead of a handshake
            self._quic.receive_datagram(data, addr, now=self._loop.time())  # type: ignore[arg-type]
            self.close(ErrorCode.H3_EXCESSIVE_LOAD, "server busy")
            self._process_events()
            self._terminated()
            return
        super().datagram_received(data, addr)
        self._wake_writers()

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, ProtocolNegotiated):
            if event.alpn_protocol in H3_ALPN and self.h3 is None:
                _H3.max_field_section_size = self.limits.max_header_size
                self.h3 = _H3(self._quic)
        elif isinstance(event, HandshakeCompleted):
            self._handshake.cancel()
            self._arm_idle()
        elif isinstance(event, ConnectionTerminated):
            self._terminated()
            return
        h3 = self.h3
        if h3 is None:
            return
        for h3_event in h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self._headers(h3_event)
            elif isinstance(h3_event, DataReceived):
                self._data(h3_event)
        if isinstance(event, StreamReset | StopSendingReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.closed = True  # NOTE: never write on it again (aioquic asserts)
                stream.cycle.lost()
                self.release(stream, stop_task=True)

    # -- requests ----------------------------------------------------------------------

    def _headers(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        if stream is not None:  # trailers: nothing reads them
            if event.stream_ended:
                self._body_end(stream)
            return
        if self.going_away:
            self._reject(sid)
            return
        limits = self.limits
        method, path, scheme, headers, size = split_request(event.headers, self.scheme)
        if len(headers) > limits.max_headers or size > limits.max_header_size:
            self._answer(sid, 431, "request headers too large")
            return
        if method == "CONNECT":
            self._answer(sid, 501, "CONNECT is not supported over HTTP/3")
            return
        if path is None or scheme is None or (not path.startswith(b"/") and path != b"*"):
            self._answer(sid, 400, "missing or invalid :path or :scheme")
            return
        if len(path) > limits.max_url_size:
            self._answer(sid, 414, "request target too long")
            return
        cycle = Cycle(None)
        request = Request(method or "GET", path, headers, 3, None, self.peer, scheme, cycle)
        cycle.request = request
        stream = H3Stream(self, sid, cycle)
        cycle.conn = stream
        cycle.head_only = request.method == "HEAD"
        route = self._resolve(request)  # NOTE: per-route limits apply before the body
        cycle.limit = limits.max_body_size
        if route is not None and route.max_body_size is not None:
            cycle.limit = route.max_body_size
        declared = request.headers.get("content-length")
        if cycle.limit is not None and declared and declared.isdigit() \
                and int(declared) > cycle.limit:
            self._answer(sid, 413, f"request body exceeds {cycle.limit} bytes")
            return
        self.streams[sid] = stream
        self._disarm_idle()
        if event.stream_ended:
            cycle.finish()
        else:
            self._body_progress(stream)
        self._start(stream, route)

    def _start(self, stream: H3Stream, route: Any) -> None:
        """Hand the request to the exchange core; the stream owns the handler's clock."""
        cycle = stream.cycle
        timeout = self.limits.request_timeout
        if route is not None and route.timeout is not None:
            timeout = route.timeout
        if timeout is not None:
            cycle.timeout = self._loop.call_later(timeout, self.exchange.timeout, cycle)
        stream.task = self.exchange.start(cycle)

    def _data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        cycle = stream.cycle
        stream.received += len(event.data)
        if cycle.limit is not None and stream.received > cycle.limit:
            self._stop_reading(stream.id)
            self.exchange.fail(cycle, 413, f"request body exceeds {cycle.limit} bytes")
            return
        if event.data:
            cycle.feed(event.data)
            self._body_progress(stream)
        if event.stream_ended:
            self._body_end(stream)

    def _body_end(self, stream: H3Stream) -> None:
        stream.cycle.finish()
        if stream.body_timer is not None:
            stream.body_timer.cancel()
            stream.body_timer = None

    def _body_progress(self, stream: H3Stream) -> None:
        """Body bytes arrived (or are awaited): push the body deadline back (lazily)."""
        timeout = self.limits.body_timeout
        if timeout is None:
            return
        stream.body_deadline = self._loop.time() + timeout
        if stream.body_timer is None:
            stream.body_timer = self._loop.call_at(stream.body_deadline, self._body_check,
                                                   stream)

    def _body_check(self, stream: H3Stream) -> None:
        stream.body_timer = None
        if stream.closed or stream.cycle.body_state != 0:  # not OPEN any more
            return
        if self._loop.time() < stream.body_deadline:
            stream.body_timer = self._loop.call_at(stream.body_deadline, self._body_check,
                                                   stream)
            return
        self._stop_reading(stream.id)
        self.exchange.fail(stream.cycle, 408, "request body not received in time")

    def _answer(self, sid: int, status: int, text: str) -> None:
        """Answer a request that never reached a handler, and stop reading it."""
        body = error_body(text)
        try:
            self.h3.send_headers(sid, [(b":status", b"%d" % status), (b"server", b"ember"),  # type: ignore[union-attr]
                                       (b"content-type", ERROR_CONTENT_TYPE),
                                       (b"content-length", b"%d" % len(body))])
            self.h3.send_data(sid, body, True)  # type: ignore[union-attr]
        except _SEND_ERRORS:
            return
        self._stop_reading(sid)
        self.state.total_requests += 1
        self.transmit()

    def _reject(self, sid: int) -> None:
        """After GOAWAY: the client may retry the request elsewhere (RFC 9114 §5.2)."""
        try:
            self._quic.reset_stream(sid, ErrorCode.H3_REQUEST_REJECTED)
        except _SEND_ERRORS:
            pass
        self._stop_reading(sid)
        self.transmit()

    def _stop_reading(self, sid: int) -> None:
        try:
            self._quic.stop_stream(sid, ErrorCode.H3_NO_ERROR)
        except _SEND_ERRORS:  # already finished or reset
            pass

    # -- sending -------------------------------------------------------------------

    def send_headers(self, stream: H3Stream, status: int, raw_headers: list,
                     content_length: int, end: bool) -> None:
        """The response head of ``stream``."""
        if stream.closed:
            raise ClientDisconnect("client disconnected")
        headers = [(b":status", b"%d" % status), (b"server", b"ember"),
                   (b"date", _date_value(self.state.date_header))]
        for name, value in raw_headers:
            if name.lower() not in _HOP_BY_HOP:
                headers.append((name.lower(), value))
        if content_length >= 0 and body_allowed(status) and (not end or not content_length):
            # NOTE: not on a head that ends the stream (HEAD, 304): RFC 9110 lets a server
            # omit it there, and clients that check it against the DATA received (aioquic:
            # RFC 9114 §4.1.2) take a HEAD's length for a malformed response
            headers.append((b"content-length", b"%d" % content_length))
        try:
            self.h3.send_headers(stream.id, headers, end_stream=end)  # type: ignore[union-attr]
        except _SEND_ERRORS as exc:
            stream.closed = True
            raise ClientDisconnect("the stream is closed") from exc
        self._transmit_soon()

    def send_data(self, stream: H3Stream, data: bytes, end: bool) -> None:
        """Queue body bytes (and the FIN with ``end``)."""
        if stream.closed:
            raise ClientDisconnect("client disconnected")
        try:
            self.h3.send_data(stream.id, data, end)  # type: ignore[union-attr]
        except _SEND_ERRORS as exc:
            stream.closed = True
            raise ClientDisconnect("the stream is closed") from exc
        if end:
            stream.closed = True
        self._transmit_soon()

    def reset(self, stream: H3Stream, code: int) -> None:
        """Abort the response of ``stream`` (the client sees it cut)."""
        stream.closed = True
        try:
            self._quic.reset_stream(stream.id, code)
        except _SEND_ERRORS:
            pass
        self._stop_reading(stream.id)
        self._transmit_soon()

    def unacked(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` and not yet acknowledged by the client."""
        quic_stream = self._quic._streams.get(stream_id)
        if quic_stream is None:
            return 0
        sender = quic_stream.sender
        return sender._buffer_stop - sender._buffer_start

    async def wait_acked(self, stream: H3Stream) -> None:
        """Wait until the client acknowledged enough of ``stream`` (``send_timeout``)."""
        stream.waiter = waiter = self._loop.create_future()
        self.transmit()
        try:
            timeout = self.limits.send_timeout
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            logger.info("HTTP/3 stream %d: the client did not acknowledge data for %ss; "
                        "reset", stream.id, self.limits.send_timeout)
            self.reset(stream, ErrorCode.H3_REQUEST_CANCELLED)
            raise ClientDisconnect("the client stopped reading") from None
        finally:
            stream.waiter = None
        if stream.closed or self.closed:
            raise ClientDisconnect("client disconnected")

    def _wake_writers(self) -> None:
        if self.going_away and not self.streams and not self.closed:
            self._close_when_acked()  # NOTE: acks arrive with datagrams
        for stream in self.streams.values():
            waiter = stream.waiter
            if waiter is not None and not waiter.done() and (
                    stream.closed or self.unacked(stream.id) < HIGH_WATER // 2):
                waiter.set_result(None)

    def _transmit_soon(self) -> None:
        """One transmit for everything the ready handlers queue (fewer datagrams)."""
        if self._transmit_task is None:
            self._transmit_task = self._loop.call_soon(self.transmit)

    # -- streams and connection life ------------------------------------------------

    def release(self, stream: H3Stream, stop_task: bool) -> None:
        """``stream`` is done (answered, failed or reset by the client)."""
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        cycle = stream.cycle
        for handle in (cycle.timeout, stream.body_timer):
            if handle is not None:
                handle.cancel()
        cycle.timeout = stream.body_timer = None
        if cycle.body_state == 0:  # the client still sends a body nobody will read
            cycle.lost()
            if not stream.closed or stop_task:
                self._stop_reading(stream.id)
        waiter = stream.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        task = stream.task
        if stop_task and task is not None and not task.done() \
                and task is not asyncio.current_task(self._loop):
            task.cancel()
        if not self.streams:
            if self.going_away:
                self._close_when_acked()
            else:
                self._arm_idle()

    def _close_when_acked(self) -> None:
        """Close once the client has every byte we sent (CONNECTION_CLOSE drops the rest)."""
        self.transmit()
        quic = self._quic
        if all(self.unacked(sid) == 0 for sid in list(quic._streams)):
            self.close(ErrorCode.H3_NO_ERROR, "server shutting down")

    def _terminated(self) -> None:
        """The QUIC connection is gone: every handler stops."""
        if self.closed:
            return
        self.closed = True
        self.state.connections.discard(self)
        self._handshake.cancel()
        self._disarm_idle()
        for stream in list(self.streams.values()):
            stream.closed = True
            stream.cycle.lost()
            self.release(stream, stop_task=True)

    def _handshake_late(self) -> None:
        if not self._connected and not self.closed:
            logger.info("HTTP/3: handshake with %s not finished within %ss; closing",
                        self.peer[0] if self.peer else "-", self.limits.header_timeout)
            self.close(ErrorCode.H3_NO_ERROR, "handshake timeout")
            self._terminated()  # NOTE: aioquic would probe this peer for ever

    def _arm_idle(self) -> None:
        """No request: close after ``keep_alive_timeout``; while requests run, ping."""
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None
        if self._idle is None and not self.closed:
            self._idle = self._loop.call_later(self.limits.keep_alive_timeout,
                                               self._idle_timeout)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._ping is None and not self.closed and self.streams:
            self._ping = self._loop.call_later(PING_INTERVAL, self._keep_alive)

    def _keep_alive(self) -> None:
        self._ping = None
        if self.streams and not self.closed:
            self._quic.send_ping(0)
            self.transmit()
            self._ping = self._loop.call_later(PING_INTERVAL, self._keep_alive)

    def _idle_timeout(self) -> None:
        self._idle = None
        if not self.streams:
            self.close(ErrorCode.H3_NO_ERROR, "idle")

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY (no new requests); an idle connection closes now."""
        if self.closed or self.going_away:
            return
        self.going_away = True
        h3 = self.h3
        if h3 is not None and h3._local_control_stream_id is not None:
            # RFC 9114 §5.2: the first request stream id we will not process
            last = max(self.streams, default=-4) + 4
            self._quic.send_stream_data(h3._local_control_stream_id,
                                        encode_uint_var(FrameType.GOAWAY)
                                        + encode_uint_var(len(encode_uint_var(last)))
                                        + encode_uint_var(last))
            self.transmit()
        if not self.streams:
            self.close(ErrorCode.H3_NO_ERROR, "server shutting down")

    def close(self, error_code: int = ErrorCode.H3_NO_ERROR,  # type: ignore[override]
              reason_phrase: str = "") -> None:
        """Close the QUIC connection (CONNECTION_CLOSE, then aioquic drains it)."""
        try:
            super().close(error_code=error_code, reason_phrase=reason_phrase)
        except _SEND_ERRORS:
            pass
        if self.closed is False and not self._connected:
            self._terminated()

    def abort(self) -> None:
        """Hard stop (the grace period is over)."""
        self.close(ErrorCode.H3_INTERNAL_ERROR, "server stopped")
        self._terminated()


def _date_value(line: bytes) -> bytes:
    """The value of the worker's ``date: ...\\r\\n`` line (other lines may follow it)."""
    end = line.find(b"\r\n")
    return line[6:end if end >= 0 else None]

