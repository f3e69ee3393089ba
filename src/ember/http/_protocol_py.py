# cython: annotation_typing=False
"""One asyncio Protocol per HTTP/1.1 connection (pure-Python reference).

Compiled by Cython as ``_protocol_c``.  This module keeps only the connection:
parsing, pipelining, flow control, timers.  A request's life is its
:class:`~ember.http.cycle.Cycle`, run by the exchange core (:mod:`ember.http.exchange`),
which answers through the connection's sink side, :class:`~ember.http.h1sink.Http1Sink`
(framing, output batching), that the connection derives from; the head rules are
:mod:`ember.http.heads` (``_heads_py``), leaving HTTP/1.1 (h2/h2c, WebSocket,
shutdown) is :mod:`ember.http.handover`, the worker's shared state
:mod:`ember.http.state`.

* the parser turns bytes into cycles that queue up (pipelining) and are answered
  strictly in order; each handler runs in one asyncio Task that also writes its answer;
* an error in any state has one transition (``Exchange.fail``): the body reader is
  woken with it, the client gets an error answer if nothing was sent, the connection
  closes;
* flow control (:mod:`ember.http.flow_control`): reading pauses while an unread body
  is over its byte or chunk limits, while too many requests are queued, and while the
  client does not read its responses; streaming writes wait for the transport to drain;
* one lazily re-armed timer follows the connection's state: waiting for a slot (none),
  reading a head (``header_timeout``), reading a body (``body_timeout`` between two
  reads, ``min_body_rate``), running (the handler's ``request_timeout``), idle
  (``keep_alive_timeout``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember import requests as _requests
from ember.http import cycle as _cycles
from ember.http import exchange as _exchanges
from ember.http import handover as _handover
from ember.http.cycle import BODY_COMPLETE, RUNNING
from ember.http.errors import HttpParserError
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

if not cython.compiled:
    # NOTE: compiled, Http1Sink and check_head are cimported by _protocol_c.pxd (a named
    # import would assign to them: Cython refuses)
    from ember.http._h1sink_py import *  # noqa: F403 - pure twins beside the pure twin
    from ember.http._heads_py import *  # noqa: F403

# NOTE: not imported as ``Cycle``/``Exchange``: the compiled twin cimports those names as
# C types (_protocol_c.pxd) so its cycles are read as struct fields and the core's cpdef
# methods are called directly.
_new_cycle = _cycles.Cycle
_new_exchange = _exchanges.Exchange
_new_request = _requests.new_request

HIGH_WATER = 256 * 1024  # unread body bytes before reading pauses
MAX_BODY_CHUNKS = 64  # unread body objects before reading pauses (fragments coalesce)
MAX_PIPELINE = 128  # queued requests before reading pauses


class HttpProtocol(Http1Sink):  # noqa: F405
    """An HTTP/1.1 connection; see the module docstring."""

    def __init__(self, app: Any, state: Any, limits: Any, scheme: str = "http") -> None:
        # -- configuration: the app's side of the interface is fixed here
        self._app = app
        self._resolve, self._dispatch, self._upgrade = app._connection_interface()
        # PERF: the app says whether its resolve is its own (not overridden): then requests
        # are built and routed in one compiled call (new_request) instead of Request() + a
        # Python _resolve frame.  NOTE: asked of the resolve's owner (an app object may
        # hand out another app's interface); the connection never inspects app classes.
        direct = getattr(getattr(self._resolve, "__self__", None), "_direct_routing", None)
        self._route_app, self._router = direct(self._resolve) if direct is not None \
            else (None, None)
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
        self.closed = False
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
                _handover.switch_to_h2(self, b"")
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
        self.closed = True
        state = self._state
        state.connections.discard(self)
        if self._admitted:
            while state.waiting:
                nxt = state.waiting.popleft()
                if not nxt.closed:
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
            _handover.release(current)
        receiving = self._receiving
        if receiving is not None and receiving is not current:
            _handover.release(receiving)
        for cycle in self._queue:
            _handover.release(cycle)
        self._queue.clear()
        self._receiving = None
        self._parser = None

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
        if self._current is None and self._queue and not self.closed:
            self._run_next()
            self._flush()

    def data_received(self, data: bytes) -> None:
        if self._http2 and self._current is None and not self._queue and \
                data[:3] == b"PRI" and self._parser is not None and not self._parser.upgraded \
                and _handover.h2_preface(self, data):
            return
        if not self._admitted:
            # NOTE: uvloop ignores pause_reading() inside connection_made; hold the
            # bytes until a slot frees up (max_connections).
            self._held += data
            self._transport.pause_reading()
            return
        parser = self._parser
        if parser is None or self.closed or self._flow.read_paused & READ_FAILED:
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
        if self.closed or self._parser is None:
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
        if self.closed or current is None:
            return
        if current is not cycle:
            self._loop.call_soon(self._eof_while_busy, current)  # progress: next one
        elif current.task is not None and not current.task.done():
            self._close()  # connection_lost cancels the handler

    # -- parser callbacks ------------------------------------------------

    def on_headers(
        self, method: str, target: bytes, minor: int, headers: list, keep_alive: bool,
        chunked: bool, content_length: int, upgrade: Any, expect: Any,
    ) -> bool:
        self._head_started = None
        check_head(method, minor, headers, chunked)  # noqa: F405 - Host, CONNECT, TE rules
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
            if self._http2 and _handover.upgrade_h2c(self, cycle, upgrade):
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
        while self._current is None and queue and not self.closed:
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

    # -- the sink (ember.http.sink): how the exchange core writes HTTP/1.1 -------------

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
        if self.closed or not self._admitted:
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
        if not self.closed:
            self._flush()
            self.closed = True
            self._flow.closed = True
            self._transport.close()
            self._cancel_timers()

    # -- leaving HTTP/1.1 (ember.http.handover) ----------------------------------

    def upgrade(self, cycle: _cycles.Cycle, upgrade: Any) -> Any:
        """The sink's switch to ``upgrade.protocol`` (see ``handover.upgrade``)."""
        return _handover.upgrade(self, cycle, upgrade)

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their response."""
        _handover.shutdown(self)

    def abort(self) -> None:
        """Hard stop after the grace period."""
        _handover.abort(self)
