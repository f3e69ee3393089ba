# cython: annotation_typing=False
"""One asyncio Protocol per HTTP/1.1 connection (pure-Python reference).

Compiled by Cython as ``_protocol_c``.  The life of a connection lives here;
the life of one request lives in its :class:`~ember.http.cycle.Cycle`, and its
execution (run the handler, answer, finish, fail) in the exchange core
(:mod:`ember.http.exchange`), which writes through this connection as its
:class:`~ember.http.sink.Sink` (the ``send_*`` methods and ``exchange_done``):

* the parser turns bytes into cycles that queue up (pipelining) and are
  answered strictly in order;
* every handler runs inside an asyncio Task from its first line (eagerly
  started where Python has eager tasks, 3.12+), and the same Task writes the
  response, so a non-suspending handler costs one Task and no extra loop turn;
* any error in any state has exactly one transition (``Exchange.fail``): the body
  reader is woken with an exception, the client gets an error answer if nothing
  was sent yet (:meth:`HttpProtocol.send_error`), and the connection closes;
* flow control (:mod:`ember.http.flow_control`): reading pauses while an unread
  body is over its byte or chunk limits, while too many requests are queued, and
  while the client does not read its responses (the write buffer is over its
  high-water mark); streaming writes wait for the transport to drain;
* one lazily re-armed timer follows the connection's state: waiting for a slot
  (none), reading a head (``header_timeout``), reading a body (``body_timeout``
  between two reads), running (none but the handler's own ``request_timeout``),
  idle (``keep_alive_timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from email.utils import formatdate
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember import requests as _requests
from ember.http import cycle as _cycles
from ember.http import exchange as _exchanges
from ember.http.cycle import (
    BODY_COMPLETE,
    DONE,
    ERROR,
    RUNNING,
    SENDING,
)
from ember.http.errors import ERROR_CONTENT_TYPE, HttpParserError, error_body
from ember.http.flow_control import (
    READ_BODY,
    READ_BUDGET,
    READ_FAILED,
    READ_PIPELINE,
    READ_WAITING,
    READ_WRITE,
    FlowControl,
)
from ember.http.parser import HttpRequestParser
from ember.http.writer import (
    LAST_CHUNK,
    encode_chunk,
    encode_framed,
    encode_head,
    encode_response,
    encode_result,
)

# NOTE: not imported as ``Cycle``/``Exchange``: the compiled twin cimports those names as
# C types (_protocol_c.pxd) so its cycles are read as struct fields and the core's cpdef
# methods are called directly.
_new_cycle = _cycles.Cycle
_new_exchange = _exchanges.Exchange
_new_request = _requests.new_request
_EMBER_RESOLVE: Any = None

logger = logging.getLogger("ember.server")
access_logger = logging.getLogger("ember.access")

HIGH_WATER = 256 * 1024  # unread body bytes before reading pauses
MAX_BODY_CHUNKS = 64  # unread body objects before reading pauses (fragments coalesce)
MAX_PIPELINE = 128  # queued requests before reading pauses
OUT_BATCH = 64 * 1024  # bytes batched within one read before they are written
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

def _plain_resolve(resolve: Any) -> bool:
    """True when ``resolve`` is ``Ember._resolve`` itself (not a subclass override)."""
    global _EMBER_RESOLVE
    if _EMBER_RESOLVE is None:
        from ember.app import Ember

        _EMBER_RESOLVE = Ember._resolve
    return getattr(resolve, "__func__", None) is _EMBER_RESOLVE


# Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal or a
# reg-name (unreserved / pct-encoded / sub-delims), no userinfo; empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
_host_chars = bytearray(256)
for _c in bytearray(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;="):
    _host_chars[_c] = 1
_HOST_CHARS = bytes(_host_chars)


def _valid_host(value: bytes) -> bool:
    """True for a valid Host field value (see _HOST)."""
    if cython.compiled:
        # PERF: a table scan in C for the usual reg-name[:port]; the regex decides the rest
        r = _c_host_check(value, _HOST_CHARS)  # noqa: F821 - defined in _protocol_c.pxd
        if r >= 0:
            return r == 1
    return _HOST.fullmatch(value) is not None


def date_header() -> bytes:
    """``date: <IMF-fixdate>\\r\\n`` for now."""
    return b"date: " + formatdate(time.time(), usegmt=True).encode("ascii") + b"\r\n"


class ServerState:
    """What the connections of one worker share: registry, Date header, counters."""

    def __init__(self, access_log: bool = False) -> None:
        self.connections: set[Any] = set()
        self.waiting: deque[Any] = deque()
        self.tasks: set[asyncio.Task[Any]] = set()
        #: the ``Alt-Svc`` value every response carries (HTTP/3 on: ``h3=":PORT"...``),
        #: or b"": HTTP/1.1 gets it on the date line, HTTP/2 as its own field
        self.alt_svc = b""
        self.date_header = date_header()
        self.total_requests = 0
        self.shutting_down = False
        self.access_log = access_log
        # NOTE: the app's plan (route -> how its handler is called on the fast path, 0:
        # never; Ember._answer_plan) as the connections use it, for introspection.
        # fast_path False turns the fast path off (tests compare bytes).
        self.fast_routes: dict[Any, int] = {}
        self.fast_path = True

    def refresh_date(self) -> None:
        """Called once a second by the server so no request formats a date."""
        line = date_header()
        if self.alt_svc:
            line += b"alt-svc: " + self.alt_svc + b"\r\n"
        self.date_header = line


class HttpProtocol:
    """An HTTP/1.1 connection; see the module docstring."""

    def __init__(self, app: Any, state: ServerState, limits: Any, scheme: str = "http") -> None:
        # -- configuration: the app's side of the interface is fixed here
        self._app = app
        self._resolve, self._dispatch, self._upgrade = app._connection_interface()
        # PERF: the app's own resolve (not overridden): requests are built and routed in
        # one compiled call (new_request) instead of Request() + a Python _resolve frame.
        # NOTE: the router and app are the resolve's own (an app object may hand out
        # another app's interface).
        owner = getattr(self._resolve, "__self__", None) if _plain_resolve(self._resolve) \
            else None
        self._router = owner.router if owner is not None else None
        self._route_app = owner
        self._state = state
        # NOTE: dispatch decided once (issue 24): the app's plan of fast kinds per route,
        # asked for once per connection, never re-decided per request.
        self._exchange = _new_exchange(app, self._dispatch,
                                       _exchanges.decided_kinds(self._dispatch, state), state)
        self._limits = limits
        self._scheme = scheme
        self._max_body = limits.max_body_size
        self._body_timeout = getattr(limits, "body_timeout", None)
        rate = getattr(limits, "min_body_rate", None)
        self._min_rate = float(rate[0]) if rate is not None else 0.0
        self._rate_grace = float(rate[1]) if rate is not None else 0.0
        self._rate_since = 0.0
        self._rate_base = 0
        # PERF: read once (ServerLimits is frozen); typed in the compiled twin
        self._header_timeout = limits.header_timeout
        self._keep_alive_timeout = limits.keep_alive_timeout
        self._request_timeout = limits.request_timeout
        self._loop = asyncio.get_event_loop()
        # -- connection
        self._transport: Any = None
        self._flow: Any = None
        self._parser: Any = None
        self._peer: Any = None
        self._closed = False
        self._out: list[bytes] | None = None
        self._out_size = 0
        # PERF: a pipeline batch: responses of pipelined requests answered after
        # data_received returned (each in its own Task) are written together; see
        # _hold_pipeline.  _starts/exchange.entered count Tasks started/entered, so the flush
        # callback can tell "the next handler has not run yet" from "it is waiting".
        self._pipelining = False
        self._flush_scheduled = False
        self._starts = 0
        self._admitted = True
        self._held = b""
        self._running = False
        self._upgraded: Any = None  # NOTE: the Upgrade this connection switched to
        self._http2 = False  # set by the server when app.run(http2=True)
        self._h2: Any = None
        # -- timers
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._idle_since = 0.0
        self._last_read = 0.0
        self._head_started: float | None = None
        # PERF: request_timeout of the running request, checked by the connection timer
        # (0: none) instead of one TimerHandle per request
        self._run_deadline = 0.0
        # -- requests
        self._queue: deque[_cycles.Cycle] = deque()
        self._receiving: _cycles.Cycle | None = None
        self._current: _cycles.Cycle | None = None

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._transport = transport
        self._flow = FlowControl(transport)
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
            # NOTE: over the limit the connection waits unread, as if in the backlog;
            # no timer runs while it waits for a slot.
            self._admitted = False
            self._flow.pause_reading(READ_WAITING)
            state.waiting.append(self)
            state.connections.add(self)
            return
        state.connections.add(self)
        if self._http2 and self._scheme == "https":
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._switch_to_h2(b"")
                return
        self._idle_since = self._loop.time()
        self._arm_timer(self._idle_since + limits.keep_alive_timeout)

    def _admit(self) -> None:
        """A slot freed up (max_connections): start reading, timers from now."""
        self._admitted = True
        self._idle_since = self._loop.time()
        self._arm_timer(self._idle_since + self._keep_alive_timeout)
        self._flow.resume_reading(READ_WAITING)
        if self._held:
            held, self._held = self._held, b""
            self._loop.call_soon(self.data_received, held)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = True
        state = self._state
        state.connections.discard(self)
        if self._admitted:
            while state.waiting:
                nxt = state.waiting.popleft()
                if not nxt._closed:
                    nxt._admit()
                    break
        else:
            try:
                state.waiting.remove(self)
            except ValueError:
                pass
        self._cancel_timers()
        if self._flow is not None:
            self._flow.connection_lost()
        current = self._current
        if current is not None:
            self._release(current)
        receiving = self._receiving
        if receiving is not None and receiving is not current:
            self._release(receiving)
        for cycle in self._queue:
            self._release(cycle)
        self._queue.clear()
        self._receiving = None
        self._parser = None

    @staticmethod
    def _release(cycle: _cycles.Cycle) -> None:
        """The connection is gone: wake the body reader, stop the handler."""
        cycle.lost()
        cycle.request = None
        if cycle.state < DONE:
            cycle.state = ERROR
        handle = cycle.timeout
        if handle is not None:
            handle.cancel()
            cycle.timeout = None
        task = cycle.task
        if task is not None and not task.done():
            task.cancel()

    def pause_writing(self) -> None:
        self._flow.pause_writing()
        # NOTE: a client that does not read its responses gets no new ones: stop
        # reading (and running pipelined requests) until the buffer drains.
        self._flow.pause_reading(READ_WRITE)

    def resume_writing(self) -> None:
        flow = self._flow
        flow.resume_writing()
        if flow.resume_reading(READ_WRITE):
            self._restart_body_clock(self._loop.time())
        if self._current is None and self._queue and not self._closed:
            self._run_next()
            self._flush()

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
        parser = self._parser
        if parser is None or self._closed or self._flow.read_paused & READ_FAILED:
            return  # connection gone, or the byte stream is already unusable
        now = self._last_read = self._loop.time()
        if self._current is None and self._head_started is None and self._receiving is None \
                and not self._queue:
            self._head_started = now
            self._arm_timer(now + self._header_timeout)
        if self._out is None:  # NOTE: else a pipeline batch is open: it goes out first
            self._out = []  # PERF: batch every response produced by this read into one write
            self._out_size = 0
        try:
            parser.feed_data(data)
        except HttpParserError as exc:
            self._protocol_error(exc.status, exc.reason, exc.head_only)
        else:
            if parser.yielded:
                # NOTE (issue 23): this read's work budget is spent; the rest is parsed
                # one loop turn later, so other connections run in between.
                self._flow.pause_reading(READ_BUDGET)
                self._loop.call_soon(self._parse_more)
        if self._current is None:
            self._run_next()
        self._flush()

    def _parse_more(self) -> None:
        """Go on parsing what a budget-limited read left (see data_received)."""
        if self._closed or self._parser is None:
            return
        self._flow.resume_reading(READ_BUDGET)
        self.data_received(b"")

    def eof_received(self) -> bool | None:
        current = self._current
        receiving = self._receiving
        if receiving is not None:
            receiving.lost()  # NOTE: that body can never complete
            if receiving is current:
                return None  # the running request's client left: close now
        if current is None and not self._queue:
            return None  # idle: close
        # NOTE: a half-closed client still gets the responses it queued, then we close.
        last = self._queue[-1] if self._queue else current
        last.keep_alive = False  # type: ignore[union-attr]
        if current is not None:
            self._loop.call_soon(self._eof_while_busy, current)
        return True

    def _eof_while_busy(self, cycle: _cycles.Cycle) -> None:
        """EOF while a handler runs is a disconnect, so an awaited upstream call stops.

        NOTE: checked one loop turn later: a handler whose Task was only scheduled
        gets its first step, and one that answers without waiting still answers.
        """
        current = self._current
        if self._closed or current is None:
            return
        if current is not cycle:
            self._loop.call_soon(self._eof_while_busy, current)  # progress: next one
        elif self._busy():
            self._close()  # connection_lost cancels the handler

    def _busy(self) -> bool:
        current = self._current
        return current is not None and current.task is not None and not current.task.done()

    # -- parser callbacks ------------------------------------------------

    def on_headers(
        self, method: str, target: bytes, minor: int, headers: list, keep_alive: bool,
        chunked: bool, content_length: int, upgrade: Any, expect: Any,
    ) -> bool:
        self._head_started = None
        hosts = 0
        host = None
        for name, value in headers:
            if name == b"host":
                hosts += 1
                host = value
        if hosts > 1:  # RFC 9110 §7.2 / RFC 9112 §3.2: any version
            raise HttpParserError(400, "multiple Host headers")
        if hosts == 0 and minor == 1:  # NOTE: Host is optional in HTTP/1.0
            raise HttpParserError(400, "missing Host header")
        # RFC 9112 §3.2: a Host with an invalid value is a 400 (issue 23)
        if host is not None and not _valid_host(host):
            raise HttpParserError(400, "invalid Host header")
        if method == "CONNECT":
            raise HttpParserError(501, "CONNECT is not supported")
        if chunked:
            if minor == 0:
                # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
                raise HttpParserError(400, "Transfer-Encoding is not allowed in HTTP/1.0")
            for name, value in headers:
                if name == b"transfer-encoding" and value.lower().strip() != b"chunked":
                    raise HttpParserError(501, "unsupported transfer coding")
        cycle = _new_cycle(self)
        if self._router is not None:
            req = _new_request(method, target, headers, minor, self._peer, self._scheme, cycle,
                               self._route_app, self._router)
            route = req.route
        else:
            req = _requests.Request(method, target, headers, minor, self, self._peer,
                                    self._scheme, cycle)
            route = self._resolve(req)
        cycle.request = req
        cycle.keep_alive = keep_alive
        cycle.head_only = method == "HEAD"
        limit = self._max_body
        if route is not None and route.max_body_size is not None:
            limit = route.max_body_size
        cycle.limit = limit
        if expect is not None:
            if expect.lower() == b"100-continue":
                # RFC 9110 §10.1.1: a 1.0 client cannot take a 100; ignore it there.
                if minor == 1 and (content_length > 0 or chunked):
                    cycle.expect_continue = True
            else:
                cycle.expectation_failed = True
        self._queue.append(cycle)
        if content_length <= 0 and not chunked:
            cycle.finish()
        else:
            self._receiving = cycle
            self._arm_body_timer()
            if limit is not None and content_length > limit:
                # NOTE: refuse before reading the body; the connection cannot be reused.
                raise HttpParserError(413, f"request body exceeds {limit} bytes")
        if upgrade is not None and minor == 1:  # RFC 9110 §7.8: ignored in HTTP/1.0
            queue = self._queue
            if self._http2 and upgrade.strip().lower() == b"h2c" \
                    and cycle.body_state == BODY_COMPLETE and len(queue) == 1 \
                    and self._current is None:
                from ember.http.h2 import h2c_settings

                settings = h2c_settings(req.headers, self._scheme)
                if settings is not None:  # NOTE: otherwise served as HTTP/1.1 (RFC 9113 §3.1)
                    queue.pop()
                    self._upgrade_h2c(cycle, settings)
                    return True
            if self._upgrade(req, upgrade):
                return True
        if len(self._queue) > MAX_PIPELINE:
            self._flow.pause_reading(READ_PIPELINE)
        return False

    def on_body(self, chunk: bytes) -> None:
        cycle = self._receiving
        if cycle is None:
            return
        received = cycle.received = cycle.received + len(chunk)
        limit = cycle.limit
        if limit is not None and received > limit:
            raise HttpParserError(413, f"request body exceeds {limit} bytes")
        if cycle.feed(chunk) > MAX_BODY_CHUNKS or cycle.buffered > HIGH_WATER:
            self._flow.pause_reading(READ_BODY)

    def on_message_complete(self) -> None:
        cycle = self._receiving
        if cycle is not None:
            cycle.finish()
            self._receiving = None

    # -- flow control ------------------------------------------------------

    def body_consumed(self, buffered: int) -> None:
        """A handler read body bytes: resume reading once below the high-water mark."""
        flow = self._flow
        if flow.read_paused & READ_BODY and buffered < HIGH_WATER // 2:
            cycle = self._receiving
            if (cycle is None or cycle.chunk_count <= MAX_BODY_CHUNKS // 2) \
                    and flow.resume_reading(READ_BODY):
                self._restart_body_clock(self._loop.time())

    def send_continue(self, req: _requests.Request) -> None:
        """``Expect: 100-continue``: the handler started reading, invite the body."""
        current = self._current
        if current is not None and current.request is req and not self._closed \
                and not current.head_sent:
            self._flush()  # NOTE: after any earlier response still batched
            self._transport.write(_CONTINUE)

    def _write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
            self._out_size += len(data)
            if self._out_size > OUT_BATCH:
                pipelining = self._pipelining
                self._flush()  # NOTE: batch for speed, never hold much
                self._out = []
                self._pipelining = pipelining
        elif not self._closed:
            self._transport.write(data)

    def _flush(self) -> None:
        out = self._out
        if out is not None:
            self._out = None
            self._out_size = 0
            self._pipelining = False
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
        flow = self._flow
        while self._current is None and queue and not self._closed:
            if flow.write_paused:
                return  # NOTE: resume_writing picks the queue up again
            cycle = queue.popleft()
            self._current = cycle
            error = cycle.body_error
            if error is not None or cycle.request is None:
                # NOTE: its body failed (status 0: the client left): no handler runs
                status, reason = error if error is not None else (400, "Bad Request")
                self._exchange.fail(cycle, status, reason)
                return
            if self._state.shutting_down:
                cycle.keep_alive = False
            if cycle.expectation_failed:
                cycle.keep_alive = False
                self._answer_simple(cycle, 417, "unsupported Expect header")
                continue
            self._start(cycle)
        if flow.read_paused & READ_PIPELINE and len(queue) <= MAX_PIPELINE // 2 \
                and flow.resume_reading(READ_PIPELINE) and self._receiving is not None:
            self._restart_body_clock(self._loop.time())

    def _start(self, cycle: _cycles.Cycle) -> None:
        """Hand ``cycle`` to the exchange core; its ``request_timeout`` joins the timer."""
        timeout = self._request_timeout
        route = cycle.request.route
        if route is not None and route.timeout is not None:
            timeout = route.timeout
        self._starts += 1
        if self._exchange.start(cycle) is None:
            return  # PERF: an eager Task that never suspended already answered
        if timeout is not None and cycle.state == RUNNING and cycle is self._current:
            self._run_deadline = deadline = self._loop.time() + timeout
            self._arm_timer(deadline)  # NOTE: lazy: an earlier timer re-arms for it

    def _after_answer(self) -> None:
        """A pipeline batch goes out when drained, else one loop turn later (re-checked)."""
        if self._pipelining:
            if self._closed or (self._current is None and not self._running):
                # the pipeline is drained (or stalled on flow control).  NOTE: not while
                # _run_queue runs (an eager Task, 3.12+): it starts the next one now.
                self._flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._pipeline_flush)

    def _hold_pipeline(self) -> None:
        """More pipelined requests are queued: batch this response with theirs.

        PERF: without it, each response of a pipelined read is one ``send()``.  The
        batch is bounded by OUT_BATCH and written when the queue empties, when the
        connection closes, before a streaming response or a 100 Continue, and as soon
        as a handler waits (:meth:`_pipeline_flush`), so nothing is held behind a slow
        handler.
        """
        self._out = []
        self._out_size = 0
        self._pipelining = True

    def _pipeline_flush(self) -> None:
        """One loop turn later: write the batch unless the next handler has yet to run."""
        self._flush_scheduled = False
        if not self._pipelining or self._closed:
            return
        current = self._current
        if current is not None and self._starts != self._exchange.entered \
                and current.task is not None and not current.task.done():
            # NOTE: its Task was scheduled after this callback: wait for its first step
            self._flush_scheduled = True
            self._loop.call_soon(self._pipeline_flush)
            return
        self._flush()

    def _answer_simple(self, cycle: _cycles.Cycle, status: int, text: str) -> None:
        """Answer ``cycle`` without running its handler (``417``)."""
        body = error_body(text)
        req = cycle.request
        minor = req.http_minor if req is not None else 1
        cycle.head_sent = True
        cycle.status = status
        self._write(
            encode_response(status, [(b"content-type", ERROR_CONTENT_TYPE)], body,
                            cycle.keep_alive, minor, self._state.date_header, cycle.head_only)
        )
        self._exchange.finish(cycle, status, len(body), None)

    # -- the sink (ember.http.sink): how the exchange core writes HTTP/1.1 -------------

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed

    @property
    def peer(self) -> Any:
        """The client's ``(host, port)``."""
        return self._peer

    def send_result(self, cycle: _cycles.Cycle, result: Any) -> bool:
        """A plain result encoded in one C buffer (see ``encode_result``), or False
        (also when the connection is closed: nothing to answer)."""
        if self._closed:
            return False
        req = cycle.request
        if cycle.body_state != BODY_COMPLETE:
            cycle.keep_alive = False  # the unread rest of the body cannot be skipped safely
        data = encode_result(result, cycle.keep_alive, req.http_minor, self._state.date_header,
                             cycle.head_only)
        if data is None:
            return False
        if self._out is None and self._queue:
            self._hold_pipeline()
        self._write(data)
        return True

    def send_response(self, cycle: _cycles.Cycle, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> Any:
        """A whole response in one buffer (batched with a pipeline's others)."""
        req = cycle.request
        if cycle.body_state != BODY_COMPLETE:
            cycle.keep_alive = False  # the unread rest of the body cannot be skipped safely
        if content_length < 0 or (content_length == len(body) and status != 304):
            data = encode_response(status, raw_headers, body, cycle.keep_alive,
                                   req.http_minor, self._state.date_header, cycle.head_only)
        else:  # NOTE: an app's Content-Length on HEAD or 304 (it describes the GET)
            data = encode_framed(status, raw_headers, body, content_length, cycle.keep_alive,
                                 req.http_minor, self._state.date_header, cycle.head_only)
        if self._out is None and self._queue:
            self._hold_pipeline()
        self._write(data)
        return None

    def send_head(self, cycle: _cycles.Cycle, status: int, raw_headers: list,
                  content_length: int) -> None:
        """A streaming response's head: chunked when its length is unknown (1.1)."""
        if self._pipelining:
            self._flush()  # NOTE: the earlier responses go out before a stream
        req = cycle.request
        if not cycle.head_only and content_length < 0:
            if req.http_minor == 0:
                cycle.keep_alive = False  # HTTP/1.0: the body ends when we close
            else:
                cycle.chunked = True
        head = encode_head(status, raw_headers, content_length, cycle.keep_alive,
                           req.http_minor, self._state.date_header, cycle.chunked)
        self._write(b"".join(head))

    async def send_body(self, cycle: _cycles.Cycle, data: bytes) -> None:
        """One body chunk; waits while the transport's buffer is full."""
        self._write(encode_chunk(data) if cycle.chunked else data)
        if self._flow.write_paused:
            self._flush()
            await self._flow.drain()

    async def send_file(self, cycle: _cycles.Cycle, file: Any, offset: int, count: int) -> bool:
        """``loop.sendfile`` (zero-copy) unless chunked or over TLS: False, read it."""
        self._flush()
        transport = self._transport
        if cycle.chunked or transport.get_extra_info("sslcontext") is not None:
            return False
        try:
            await self._loop.sendfile(transport, file, offset, count)
        except (NotImplementedError, RuntimeError, AttributeError):
            return False
        return True

    def send_end(self, cycle: _cycles.Cycle) -> None:
        """The terminating chunk when chunked; write what is batched."""
        if cycle.chunked and not self._closed:
            self._write(LAST_CHUNK)
        self._flush()

    def send_error(self, cycle: _cycles.Cycle, status: int, reason: str) -> int:
        """The exchange failed: answer if nothing was sent, and close (or cancel a
        queued request's Task)."""
        if cycle is self._current:
            size = -1
            if status and not cycle.head_sent and not self._closed:
                body = error_body(reason)
                req = cycle.request
                cycle.head_sent = True
                cycle.status = status
                self._write(encode_response(
                    status, [(b"content-type", ERROR_CONTENT_TYPE)], body, False,
                    req.http_minor if req is not None else 1, self._state.date_header,
                    cycle.head_only))
                size = len(body)
            self._close()
            # NOTE: the cycle stays current, so connection_lost (one loop turn later)
            # cancels its Task: a reader woken with the error sees the error first.
            return size
        task = cycle.task
        if task is not None and not task.done():
            task.cancel()
        return -1

    def exchange_done(self, cycle: _cycles.Cycle) -> None:
        """The response is complete: keep-alive, the next pipelined request, or close."""
        self._current = None
        self._run_deadline = 0.0  # the handler answered: its request_timeout is over
        if not cycle.keep_alive or cycle.body_state != BODY_COMPLETE \
                or self._state.shutting_down:
            self._close()
        elif not self._queue:
            self._idle_since = self._loop.time()
            if self._receiving is None:
                self._arm_timer(self._idle_since + self._keep_alive_timeout)
        else:
            self._run_next()
        if self._pipelining:
            self._after_answer()

    # -- errors -------------------------------------------------------------------


    def _protocol_error(self, status: int, reason: str, head_only: bool = False) -> None:
        """The byte stream is unusable: the request it belongs to fails, in order."""
        self._flow.pause_reading(READ_FAILED)
        cycle = self._receiving
        self._receiving = None
        if cycle is None:
            cycle = _new_cycle(self)  # NOTE: a broken head: an answer-only cycle
            cycle.head_only = head_only
            self._queue.append(cycle)
        cycle.fail_body(status, reason or "Bad Request")
        if cycle is self._current:
            self._exchange.fail(cycle, status, reason or "Bad Request")
        # else: answered when its turn comes (the requests before it are answered first)

    # -- timers and closing ----------------------------------------------

    def _arm_body_timer(self) -> None:
        self._last_read = now = self._loop.time()
        self._rate_since = now
        self._rate_base = 0
        timeout = self._body_timeout
        if timeout is not None:
            self._arm_timer(now + timeout)
        if self._min_rate > 0.0:
            self._arm_timer(now + self._rate_grace)

    def _restart_body_clock(self, now: float) -> None:
        """Reading resumes after *we* paused it: the client was not late."""
        self._last_read = now
        self._rate_since = now
        receiving = self._receiving
        self._rate_base = receiving.received if receiving is not None else 0

    def _body_deadline(self, receiving: _cycles.Cycle, now: float) -> float:
        """When the body being read is next due a check; -1 when none is (or it failed).

        ``body_timeout`` bounds the gap between two reads; ``min_body_rate`` (issue 23,
        Kestrel's minimum data rate) the average since the body started: after the
        grace period a client more than a byte behind ``rate`` bytes/s gets 408.
        """
        timeout = self._body_timeout
        rate = self._min_rate
        if timeout is None and rate <= 0.0:
            return -1.0
        if self._flow.read_paused & (READ_BODY | READ_WRITE | READ_PIPELINE) \
                or receiving.expect_continue:
            # NOTE: we paused reading (or the client waits for our 100 Continue), the
            # client is not late: restart its clocks.
            self._restart_body_clock(now)
            return now + (timeout if timeout is not None else self._rate_grace)
        deadline = 1e300
        reason = None
        if timeout is not None:
            deadline = self._last_read + timeout
            if now >= deadline:
                reason = "request body timeout"
        if reason is None and rate > 0.0:
            due = self._rate_since + max(self._rate_grace,
                                         (receiving.received - self._rate_base + 1) / rate)
            if now >= due:
                reason = f"request body too slow (under {rate:.0f} bytes/s)"
            elif due < deadline:
                deadline = due
        if reason is None:
            return deadline
        self._receiving = None
        self._flow.pause_reading(READ_FAILED)
        receiving.fail_body(408, reason)
        if receiving is self._current:
            self._exchange.fail(receiving, 408, reason)
        elif self._current is None:
            self._run_next()
            self._flush()
        return -1.0

    def _arm_timer(self, when: float) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_when <= when:
                return  # PERF: an earlier timer re-checks and re-arms lazily
            timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        """The one connection timer: what it checks follows the connection's state."""
        self._timer = None
        if self._closed or not self._admitted:
            return  # waiting for a slot: no timer
        now = self._loop.time()
        limits = self._limits
        run_deadline = self._run_deadline
        if run_deadline:
            current = self._current
            if current is None or current.state != RUNNING:
                self._run_deadline = 0.0
            elif now >= run_deadline:
                self._run_deadline = 0.0
                self._exchange.timeout(current)
                return
            else:
                self._arm_timer(run_deadline)  # NOTE: and whatever the state needs below
        receiving = self._receiving
        if receiving is not None:
            # reading a body: body_timeout between two reads, min_body_rate on average,
            # unless *we* paused reading (or owe the client a 100 Continue)
            deadline = self._body_deadline(receiving, now)
            if deadline < 0:
                return
        elif self._current is not None or self._queue:
            return  # running: only the handler's own request_timeout applies
        elif self._head_started is not None:
            deadline = self._head_started + limits.header_timeout
            if now >= deadline:
                cycle = _new_cycle(self)
                cycle.finish()
                self._current = cycle
                self._exchange.fail(cycle, 408, "request header timeout")
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

    def _close(self) -> None:
        if not self._closed:
            self._flush()
            self._closed = True
            self._flow.closed = True
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

    def _upgrade_h2c(self, cycle: _cycles.Cycle, settings: bytes) -> None:
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
        h2proto.start_upgraded(settings, cycle)
        rest = self._parser.take_buffer() if self._parser is not None else b""
        self._parser = None
        if rest:
            self._loop.call_soon(h2proto.data_received, rest)

    # -- leaving HTTP (an explicit Upgrade: WebSocket) --------------------------

    def upgrade(self, cycle: _cycles.Cycle, upgrade: Any) -> Any:
        """Write the 101 head and hand the transport to ``upgrade.protocol``."""
        self._flush()
        cycle.keep_alive = False
        cycle.state = SENDING
        self._cancel_timers()
        transport = self._transport
        transport.write(upgrade.head)
        self._exchange.log(cycle, 101, 0)  # NOTE: the exchange ends here for HTTP
        protocol = upgrade.protocol(transport, self._upgraded_lost)
        self._upgraded = upgrade
        transport.set_protocol(protocol)
        rest = self._parser.take_buffer() if self._parser is not None else b""
        flow = self._flow
        if flow.read_paused:
            flow.read_paused = 0
            transport.resume_reading()
        if rest:
            self._loop.call_soon(protocol.data_received, rest)
        return protocol

    def _upgraded_lost(self, exc: Any) -> None:
        """The upgraded connection ended: release this connection's slot."""
        cycle = self._current
        task = None
        if cycle is not None:
            task, cycle.task = cycle.task, None
        self.connection_lost(exc)
        if task is not None and not task.done():
            # NOTE: a grace second lets a handler blocked in receive() see
            # WebSocketDisconnect; one stuck elsewhere is cancelled.
            self._loop.call_later(1.0, task.cancel)

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response."""
        if self._upgraded is not None:
            self._upgraded.shutdown()
            return
        self._state.shutting_down = True
        current = self._current
        if current is None and not self._queue and self._receiving is None:
            self._close()
            return
        if current is not None:
            current.keep_alive = False
        for cycle in self._queue:
            cycle.keep_alive = False

    def abort(self) -> None:
        """Hard stop after the grace period."""
        current = self._current
        if current is not None and current.task is not None and not current.task.done():
            current.task.cancel()
        if not self._closed:
            self._closed = True
            if self._flow is not None:
                self._flow.closed = True
            self._transport.abort()
