"""One asyncio Protocol per HTTP/1.1 connection (pure-Python reference).

Compiled by Cython as ``_protocol_c``.  The life of a connection lives here:

* the parser turns bytes into :class:`~ember.requests.Request` objects that
  queue up (pipelining) and are answered strictly in order;
* a handler coroutine that finishes without suspending is completed inline,
  with no Task; one that suspends continues in a Task that a client disconnect
  or a route timeout cancels;
* reading pauses while unread body bytes or queued requests pile up, and
  streaming writes wait for the transport to drain;
* one lazily re-armed timer covers the keep-alive idle timeout and the header
  timeout, neither of which ever cuts a request that is in progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from email.utils import formatdate
from typing import Any

from ember.exceptions import ClientDisconnect
from ember.http._resume import resume as _resume
from ember.http.errors import HttpParserError
from ember.http.parser import HttpRequestParser
from ember.http.writer import LAST_CHUNK, encode_chunk, encode_head, encode_response
from ember.requests import Request
from ember.status import body_allowed

logger = logging.getLogger("ember.server")
access_logger = logging.getLogger("ember.access")

HIGH_WATER = 256 * 1024  # unread body bytes before reading pauses
MAX_PIPELINE = 128  # queued requests before reading pauses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def date_header() -> bytes:
    """``date: <IMF-fixdate>\\r\\n`` for now."""
    return b"date: " + formatdate(time.time(), usegmt=True).encode("ascii") + b"\r\n"


class ServerState:
    """What the connections of one worker share: registry, Date header, counters."""

    def __init__(self, access_log: bool = False) -> None:
        self.connections: set[Any] = set()
        self.waiting: deque[Any] = deque()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.date_header = date_header()
        self.total_requests = 0
        self.shutting_down = False
        self.access_log = access_log

    def refresh_date(self) -> None:
        """Called once a second by the server so no request formats a date."""
        self.date_header = date_header()


class BodyWriter:
    """What a streaming response writes through: framing, drain, disconnect."""

    __slots__ = ("_chunked", "_head_only", "_proto", "_request", "sent", "started", "status")

    def __init__(self, proto: HttpProtocol, request: Request) -> None:
        self._proto = proto
        self._request = request
        self._chunked = False
        self._head_only = request.method == "HEAD"
        self.started = False
        self.status = 0
        self.sent = 0

    @property
    def request(self) -> Request:
        """The request this body answers (Range, Last-Event-ID, conditional headers)."""
        return self._request

    @property
    def closed(self) -> bool:
        """True once the client has gone away."""
        return self._proto._closed

    def start(self, status_code: int, raw_headers: list, content_length: int = -1) -> None:
        """Send the status line and headers (once)."""
        if self.started:
            raise RuntimeError("response already started")
        proto = self._proto
        if proto._closed:
            raise ClientDisconnect("client disconnected")
        req = self._request
        self.started = True
        self.status = status_code
        if not body_allowed(status_code) or self._head_only:
            content_length = content_length if body_allowed(status_code) else -1
            self._head_only = True
        elif content_length < 0:
            if req.http_minor == 0:
                proto._keep_alive = False  # HTTP/1.0: the body ends when we close
            else:
                self._chunked = True
        head = encode_head(
            status_code, raw_headers, content_length, proto._keep_alive, req.http_minor,
            proto._state.date_header, self._chunked,
        )
        proto._write(b"".join(head))

    async def write(self, data: bytes) -> None:
        """Send one body chunk, waiting while the transport's buffer is full."""
        proto = self._proto
        if proto._closed:
            raise ClientDisconnect("client disconnected")
        if self._head_only or not data:
            return
        self.sent += len(data)
        proto._write(encode_chunk(data) if self._chunked else data)
        if proto._write_paused:
            await proto._drain()

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        """Send ``count`` bytes of an open file, zero-copy where the loop supports it."""
        proto = self._proto
        if self._head_only or count <= 0:
            return
        if proto._closed:
            raise ClientDisconnect("client disconnected")
        proto._flush()
        loop = proto._loop
        transport = proto._transport
        if not self._chunked and transport.get_extra_info("sslcontext") is None:
            try:
                await loop.sendfile(transport, file, offset, count)
                self.sent += count
                return
            except (NotImplementedError, RuntimeError, AttributeError):
                pass
        file.seek(offset)
        remaining = count
        while remaining > 0:
            data = await loop.run_in_executor(None, file.read, min(remaining, 256 * 1024))
            if not data:
                break
            remaining -= len(data)
            await self.write(data)

    async def end(self) -> None:
        """Finish the body (terminating chunk when chunked)."""
        proto = self._proto
        if self._chunked and not proto._closed:
            proto._write(LAST_CHUNK)
        proto._flush()


class HttpProtocol(asyncio.Protocol):
    """An HTTP/1.1 connection; see the module docstring."""

    def __init__(self, app: Any, state: ServerState, limits: Any, scheme: str = "http") -> None:
        # -- configuration
        self._app = app
        self._state = state
        self._limits = limits
        self._scheme = scheme
        self._max_body = limits.max_body_size
        self._loop = asyncio.get_event_loop()
        # -- connection
        self._transport: Any = None
        self._parser: Any = None
        self._peer: Any = None
        self._closed = False
        self._write_paused = False
        self._read_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] | None = None
        self._admitted = True
        self._held = b""
        self._running = False
        self._websocket: Any = None
        self._http2 = False  # set by the server when app.run(http2=True)
        self._h2: Any = None
        # -- timers
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._idle_since = 0.0
        self._head_started: float | None = None
        # -- requests
        self._queue: deque[Any] = deque()
        self._receiving: Request | None = None
        self._received = 0
        self._current: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._timed_out = False
        self._keep_alive = True
        self._failed = False

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._transport = transport
        limits = self._limits
        self._parser = HttpRequestParser(
            self, limits.max_header_size, limits.max_headers, limits.max_url_size
        )
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = (str(peer[0]), int(peer[1]))
        state = self._state
        max_conn = limits.max_connections
        if max_conn is not None and len(state.connections) >= max_conn:
            # NOTE: over the limit the connection waits unread, as if in the backlog.
            self._admitted = False
            transport.pause_reading()
            state.waiting.append(self)
        state.connections.add(self)
        if self._http2 and self._scheme == "https":
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._switch_to_h2(b"")
                return
        self._idle_since = self._loop.time()
        self._arm_timer(self._idle_since + limits.keep_alive_timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = True
        state = self._state
        state.connections.discard(self)
        if self._admitted:
            while state.waiting:
                nxt = state.waiting.popleft()
                if not nxt._closed:
                    nxt._admitted = True
                    nxt._transport.resume_reading()
                    if nxt._held:
                        held, nxt._held = nxt._held, b""
                        self._loop.call_soon(nxt.data_received, held)
                    break
        else:
            try:
                state.waiting.remove(self)
            except ValueError:
                pass
        current = self._current
        if isinstance(current, Request):
            current._lost()
        if self._receiving is not None:
            self._receiving._lost()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._cancel_timers()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._queue.clear()
        self._parser = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._http2 and self._current is None and not self._queue and \
                data[:3] == b"PRI" and self._parser is not None and not self._parser.upgraded:
            from ember.http.h2 import PREFACE

            head = self._held + data
            if PREFACE.startswith(head[:len(PREFACE)]):
                if len(head) < len(PREFACE):
                    self._held = head  # NOTE: wait for the rest of the preface
                    return
                self._held = b""
                self._switch_to_h2(head)
                return
        if not self._admitted:
            # NOTE: uvloop ignores pause_reading() inside connection_made; hold the
            # bytes until a slot frees up (max_connections).
            self._held += data
            self._transport.pause_reading()
            return
        if self._current is None and self._head_started is None and self._receiving is None:
            self._head_started = now = self._loop.time()
            self._arm_timer(now + self._limits.header_timeout)
        self._out = []  # PERF: batch every response produced by this read into one write
        try:
            self._parser.feed_data(data)
        except HttpParserError as exc:
            self._protocol_error(exc.status, exc.reason)
        except AttributeError:
            if self._parser is None:  # connection already gone
                return
            raise
        if self._current is None:
            self._run_next()
        self._flush()

    def eof_received(self) -> bool | None:
        if self._receiving is not None:
            self._receiving._lost()
        if (self._current is None and not self._queue) or self._task is not None:
            # NOTE: EOF while a handler or stream runs is a disconnect: returning None
            # closes the transport, and connection_lost cancels the task at once.
            return None
        # NOTE: a half-closed client still gets the responses it queued, then we close.
        self._keep_alive = False
        return True

    # -- parser callbacks ------------------------------------------------

    def on_headers(
        self, method: str, target: bytes, minor: int, headers: list, keep_alive: bool,
        chunked: bool, content_length: int, upgrade: Any, expect: Any,
    ) -> bool:
        self._head_started = None
        req = Request(method, target, headers, minor, self, self._peer, self._scheme)
        req._keep_alive = keep_alive
        if minor == 1:
            hosts = 0
            for name, _ in headers:
                if name == b"host":
                    hosts += 1
            if hosts != 1:
                raise HttpParserError(400, "missing Host header" if not hosts else "multiple Host headers")
        if method == "CONNECT":
            raise HttpParserError(501, "CONNECT is not supported")
        if chunked:
            for name, value in headers:
                if name == b"transfer-encoding" and value.lower().strip() != b"chunked":
                    raise HttpParserError(501, "unsupported transfer coding")
        app = self._app
        app._match(req)
        limit = self._max_body
        route = req.route
        if route is not None and route.max_body_size is not None:
            limit = route.max_body_size
        if limit is not None and content_length > limit:
            req._too_large = limit
        req._limit = limit
        if expect is not None:
            if expect.lower() == b"100-continue" and minor == 1:
                if content_length > 0 or chunked:
                    req._expect_continue = True
            else:
                req._expectation_failed = True
        if content_length <= 0 and not chunked:
            req._complete = True
        elif req._too_large is None:
            self._receiving = req
            self._received = 0
        self._queue.append(req)
        if req._too_large is not None:
            # NOTE: refuse before reading the body; the connection cannot be reused.
            raise HttpParserError(-413, "")
        if upgrade is not None and self._http2 and upgrade.strip().lower() == b"h2c" \
                and req._complete and len(self._queue) == 1 and self._current is None:
            from ember.http.h2 import h2c_settings

            settings = h2c_settings(req.headers, self._scheme)
            if settings is not None:  # NOTE: otherwise served as HTTP/1.1 (RFC 9113 §3.1)
                self._queue.pop()
                self._upgrade_h2c(req, settings)
                return True
        if upgrade is not None and hasattr(app, "_upgrade"):
            return bool(app._upgrade(self, req, upgrade))
        if len(self._queue) > MAX_PIPELINE and not self._read_paused:
            self._pause_reading()
        return False

    def on_body(self, chunk: bytes) -> None:
        req = self._receiving
        if req is None:
            return
        self._received += len(chunk)
        limit = req._limit
        if limit is not None and self._received > limit:
            req._too_large = limit
            req._lost()
            self._receiving = None
            self._keep_alive = False
            raise HttpParserError(-413, "")
        req._feed(chunk)
        if req._buffered > HIGH_WATER and not self._read_paused:
            self._pause_reading()

    def on_message_complete(self) -> None:
        req = self._receiving
        if req is not None:
            req._finish()
            self._receiving = None

    # -- flow control ------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._read_paused and not self._closed:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self._closed and not self._failed and self._admitted:
            self._read_paused = False
            self._transport.resume_reading()

    def body_consumed(self, buffered: int) -> None:
        """A handler read body bytes: resume reading once below the high-water mark."""
        if self._read_paused and buffered < HIGH_WATER // 2 and len(self._queue) <= MAX_PIPELINE:
            self._resume_reading()

    def send_continue(self, req: Request) -> None:
        """``Expect: 100-continue``: the handler started reading, invite the body."""
        if req is self._current and not self._closed:
            self._transport.write(_CONTINUE)

    async def _drain(self) -> None:
        if self._closed:
            raise ClientDisconnect("client disconnected")
        if not self._write_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None
        if self._closed:
            raise ClientDisconnect("client disconnected")

    def _write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
        elif not self._closed:
            self._transport.write(data)

    def _flush(self) -> None:
        out = self._out
        if out is not None:
            self._out = None
            if out and not self._closed:
                self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    # -- running requests -------------------------------------------------

    def _run_next(self) -> None:
        if self._running:
            return  # NOTE: the loop below picks the next request up; no recursion
        self._running = True
        try:
            self._run_queue()
        finally:
            self._running = False

    def _run_queue(self) -> None:
        queue = self._queue
        while self._current is None and queue and not self._closed:
            req = queue.popleft()
            self._current = req
            if isinstance(req, tuple):
                self._send_error(req[0], req[1])
                return
            self._keep_alive = req._keep_alive and not self._state.shutting_down
            too_large = req._too_large
            if too_large is not None:
                self._keep_alive = False
                self._send_simple(req, 413, f"request body exceeds {too_large} bytes")
                continue
            if req._expectation_failed:
                self._keep_alive = False
                self._send_simple(req, 417, "unsupported Expect header")
                continue
            self._start(req)
        if self._read_paused and len(queue) <= MAX_PIPELINE // 2:
            recv = self._receiving
            if recv is None or recv._buffered < HIGH_WATER // 2:
                self._resume_reading()

    def _start(self, req: Request) -> None:
        coro = self._app._handle(req)
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self._respond(req, stop.value)
            return
        task = self._loop.create_task(_resume(coro, yielded))
        self._task = task
        self._timed_out = False
        timeout = self._limits.request_timeout
        route = req.route
        if route is not None and route.timeout is not None:
            timeout = route.timeout
        if timeout is not None:
            self._timeout_handle = self._loop.call_later(timeout, self._on_handler_timeout, task)
        task.add_done_callback(self._on_handler_done)

    def _on_handler_timeout(self, task: asyncio.Task[Any]) -> None:
        self._timeout_handle = None
        if not task.done():
            self._timed_out = True
            task.cancel()

    def _on_handler_done(self, task: asyncio.Task[Any]) -> None:
        self._task = None
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None
        req = self._current
        if self._closed or not isinstance(req, Request):
            return
        if task.cancelled():
            if self._timed_out:
                self._keep_alive = False
                self._send_simple(req, 504, "the handler did not answer in time")
            else:
                self._close()
            return
        exc = task.exception()
        if exc is not None:  # _handle turns errors into responses; this is a bug guard
            logger.error("unhandled error in request pipeline", exc_info=exc)
            self._keep_alive = False
            self._send_simple(req, 500, "Internal Server Error")
            return
        self._respond(req, task.result())
        self._flush()

    def _respond(self, req: Request, response: Any) -> None:
        if response.streaming:
            self._task = self._loop.create_task(self._stream(req, response))
            return
        if not req._complete:
            self._keep_alive = False  # the unread rest of the body cannot be skipped safely
        body = response.body
        status = response.status_code
        try:
            data = encode_response(
                status, response._headers._raw, body, self._keep_alive, req.http_minor,
                self._state.date_header, req.method == "HEAD",
            )
        except ValueError as exc:
            logger.error("invalid response from %s %s: %s", req.method, req.path, exc)
            self._keep_alive = False
            self._send_simple(req, 500, "Internal Server Error")
            return
        self._write(data)
        self._finish(req, status, len(body), response)

    async def _stream(self, req: Request, response: Any) -> None:
        out = BodyWriter(self, req)
        try:
            await response.stream_to(out)
        except (ClientDisconnect, asyncio.CancelledError):
            self._log_cut_short(req, out)
            return
        except Exception:
            logger.exception("error while streaming the response to %s %s", req.method, req.path)
            if not out.started:
                self._keep_alive = False
                self._send_simple(req, 500, "Internal Server Error")
                return
            if out._chunked and not self._closed:
                self._write(LAST_CHUNK)
            else:
                # NOTE: a body cut short of its Content-Length cannot be framed: the
                # connection must end, or the next response would land inside it.
                self._keep_alive = False
        finally:
            self._task = None
        if self._closed:
            self._log_cut_short(req, out)
            return
        self._flush()
        self._finish(req, out.status, out.sent, response)
        self._flush()

    def _log_cut_short(self, req: Request, out: BodyWriter) -> None:
        """The access-log line of a stream the client left: status as sent, a marker."""
        if self._state.access_log:
            peer = self._peer[0] if self._peer else "-"
            access_logger.info(
                '%s - "%s %s HTTP/1.%d" %d %d client disconnected', peer, req.method,
                req.raw_path.decode("latin-1"), req.http_minor, out.status or 499, out.sent,
            )

    def _finish(self, req: Request, status: int, size: int, response: Any) -> None:
        state = self._state
        state.total_requests += 1
        if state.access_log:
            peer = self._peer[0] if self._peer else "-"
            access_logger.info(
                '%s - "%s %s HTTP/1.%d" %d %d', peer, req.method,
                req.raw_path.decode("latin-1"), req.http_minor, status, size,
            )
        background = getattr(response, "background", None) if response is not None else None
        if background is not None:
            task = self._loop.create_task(_run_background(background))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        self._current = None
        if not self._keep_alive or self._state.shutting_down:
            self._close()
            return
        if not self._queue:
            self._idle_since = self._loop.time()
            self._arm_timer(self._idle_since + self._limits.keep_alive_timeout)
        else:
            self._run_next()

    def _send_simple(self, req: Request, status: int, text: str) -> None:
        body = text.encode("utf-8")
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        self._write(
            encode_response(status, headers, body, self._keep_alive, req.http_minor,
                            self._state.date_header, req.method == "HEAD")
        )
        self._finish(req, status, len(body), None)

    def _send_error(self, status: int, reason: str) -> None:
        self._keep_alive = False
        body = reason.encode("utf-8")
        self._write(
            encode_response(status, [(b"content-type", b"text/plain; charset=utf-8")], body,
                            False, 1, self._state.date_header, False)
        )
        self._flush()
        self._current = None
        self._close()

    def _protocol_error(self, status: int, reason: str) -> None:
        """The byte stream is unusable: answer in order, then close."""
        self._failed = True
        self._receiving = None
        if not self._closed:
            self._read_paused = True
            self._transport.pause_reading()
        if status != -413:  # 413 rides on its request, already queued
            self._queue.append((status, reason or "Bad Request"))

    # -- timers and closing ----------------------------------------------

    def _arm_timer(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_when <= when:
                return  # PERF: an earlier timer re-checks and re-arms lazily
            timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed or self._current is not None or self._queue:
            return  # a request is in progress: no timeout applies
        now = self._loop.time()
        limits = self._limits
        if self._head_started is not None:
            deadline = self._head_started + limits.header_timeout
            if now >= deadline:
                self._out = None
                self._send_error(408, "request header timeout")
                return
        else:
            deadline = self._idle_since + limits.keep_alive_timeout
            if now >= deadline:
                self._close()
                return
        self._arm_timer(deadline)

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None

    def _close(self) -> None:
        if not self._closed:
            self._flush()
            self._closed = True
            self._transport.close()
            self._cancel_timers()

    # -- HTTP/2 -----------------------------------------------------------------

    def _switch_to_h2(self, data: bytes) -> Any:
        """Hand the transport to an HTTP/2 protocol (ALPN h2 or prior knowledge)."""
        from ember.http.h2 import H2Protocol

        self._cancel_timers()
        self._state.connections.discard(self)
        h2proto = H2Protocol(self._app, self._state, self._limits, self._scheme, self._peer)
        self._h2 = h2proto
        transport = self._transport
        transport.set_protocol(h2proto)
        h2proto.connection_made(transport)
        self._parser = None
        if data:
            h2proto.data_received(data)
        return h2proto

    def _upgrade_h2c(self, req: Request, settings: bytes) -> None:
        """``Upgrade: h2c``: 101, then HTTP/2 with this request as stream 1."""
        from ember.http.h2 import H2Protocol

        self._flush()
        self._transport.write(b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
                              b"upgrade: h2c\r\n\r\n")

        self._cancel_timers()
        self._state.connections.discard(self)
        h2proto = H2Protocol(self._app, self._state, self._limits, self._scheme, self._peer)
        self._h2 = h2proto
        transport = self._transport
        transport.set_protocol(h2proto)
        h2proto.transport = transport
        self._state.connections.add(h2proto)
        h2proto.start_upgraded(settings, req)
        rest = self._parser.take_buffer() if self._parser is not None else b""
        self._parser = None
        if rest:
            self._loop.call_soon(h2proto.data_received, rest)

    # -- WebSocket takeover ---------------------------------------------------

    def _websocket_takeover(self, ws: Any, head: bytes) -> None:
        """Send the 101 head and hand the transport to a WebSocket protocol."""
        from ember.websockets import WebSocketProtocol

        self._flush()
        self._keep_alive = False
        self._cancel_timers()
        transport = self._transport
        transport.write(head)
        wsproto = WebSocketProtocol(ws, transport, self)
        ws._attach(wsproto)
        self._websocket = ws
        transport.set_protocol(wsproto)
        rest = self._parser.take_buffer() if self._parser is not None else b""
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        if rest:
            self._loop.call_soon(wsproto.data_received, rest)

    def _websocket_lost(self, exc: Any) -> None:
        """The WebSocket's connection ended: release this connection's slot."""
        task = self._task
        self._task = None
        self.connection_lost(exc)
        if task is not None and not task.done():
            # NOTE: a grace second lets a handler blocked in receive() see
            # WebSocketDisconnect; one stuck elsewhere is cancelled.
            self._loop.call_later(1.0, task.cancel)

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response."""
        if self._websocket is not None:
            self._websocket._server_shutdown()
            return
        self._state.shutting_down = True
        if self._current is None and not self._queue and self._receiving is None:
            self._close()
        else:
            self._keep_alive = False

    def abort(self) -> None:
        """Hard stop after the grace period."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if not self._closed:
            self._closed = True
            self._transport.abort()


async def _run_background(background: Any) -> None:
    try:
        result = background()
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        logger.exception("background task failed")
