# cython: annotation_typing=False
"""The exchange core: one request's execution, for every transport (pure reference).

Compiled by Cython as ``_exchange_c``.  A transport parses, builds a
:class:`~ember.http.cycle.Cycle` whose ``conn`` is its :class:`~ember.http.sink.Sink`,
and calls :meth:`Exchange.start`; from there this module runs the handler, answers,
finishes (access log, background task) or fails, writing only through the sink.
HTTP/1.1 (``_protocol_py``), HTTP/2 (``h2``) and HTTP/3 drive the same code: the
request cycle exists once (uvicorn's ``RequestResponseCycle`` lives in two protocol
modules; hypercorn's ``HTTPStream`` is the one-copy model followed here).

The cycle's states move only along this table (h11's ``_state.py`` idea: every
event is a transition, every error has one)::

    QUEUED ──start──> RUNNING ──handler returned──> SENDING ──finish──> DONE
       │  └─────────────────────finish (answered at once)────────────────> DONE
       │                 │                             │
       └──────fail───────┴────────────fail─────────────┴──────────────> ERROR
    (QUEUED ──finish──> DONE: answered without running, e.g. 417)

RUNNING is "the handler runs" (its ``request_timeout`` applies); SENDING is "the
response is being written" (a streaming body may take long: no handler timeout).
DONE and ERROR are final: :meth:`Exchange.finish` calls ``sink.exchange_done`` once,
:meth:`Exchange.fail` calls ``sink.send_error`` once.

Which code answers a route was decided once, when the app was prepared for serving
(``Ember._answer_plan``): ``kinds`` maps a route to how its handler is called on the
fast path (1 ``fn()``, 2 ``fn(request)``, 3 ``fn(**path_params)``; 4-6 the same for a
``def`` handler, in the thread pool); a route not in it goes through ``dispatch``
(middleware, injection, caches, hosts).  Nothing here inspects the app per request.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

from ember.exceptions import ClientDisconnect
from ember.http import cycle as _cycles
from ember.http.writer import app_framing
from ember.responses import Response, to_response
from ember.status import body_allowed

QUEUED = _cycles.QUEUED
RUNNING = _cycles.RUNNING
SENDING = _cycles.SENDING
DONE = _cycles.DONE
ERROR = _cycles.ERROR
BODY_COMPLETE = _cycles.BODY_COMPLETE
# The transition table: TRANSITIONS[state] is the bit set of the states it may move to.
TRANSITIONS = (
    (1 << RUNNING) | (1 << DONE) | (1 << ERROR),  # QUEUED (DONE: answered unrun, 417)
    (1 << SENDING) | (1 << DONE) | (1 << ERROR),  # RUNNING (DONE: a whole answer at once)
    (1 << DONE) | (1 << ERROR),  # SENDING
    0,  # DONE
    0,  # ERROR
)
# PERF: the same table as one bit set (5 bits per state), read in C when compiled
_TABLE = 0
for _state, _bits in enumerate(TRANSITIONS):
    _TABLE |= _bits << (5 * _state)

logger = logging.getLogger("ember.server")
access_logger = logging.getLogger("ember.access")

_EAGER = sys.version_info >= (3, 12)
_pool: Any = None


def allowed(old: int, new: int) -> bool:
    """True when the table lets a cycle move from ``old`` to ``new``."""
    return bool((_TABLE >> (5 * old + new)) & 1)


def decided_kinds(dispatch: Any, state: Any) -> dict:
    """The plan a connection answers with: the app's (``Ember._answer_plan``, decided
    once when it was prepared) unless this worker serves without the fast path
    (``state.fast_path`` off, or the access log on, which needs every body size)."""
    if not state.fast_path or state.access_log:
        return {}
    plan = getattr(getattr(dispatch, "__self__", None), "_answer_plan", None)
    if plan is None:
        return {}
    kinds = plan(dispatch)
    if not state.fast_routes:
        state.fast_routes.update(kinds)  # the plan in use (introspection)
    return kinds


def _closed(sink: Any) -> bool:
    """``sink.closed`` (a C field read for a compiled SinkBase)."""
    if cython.compiled:
        return _c_closed(sink)  # noqa: F821 - in _exchange_c.pxd
    return bool(sink.closed)


def _new_task(loop: Any, coro: Any) -> Any:
    if _EAGER:
        # PERF: an eager Task runs the handler at once, inside the Task (current_task,
        # contextvars, timeouts all work); one that never suspends completes here.
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return loop.create_task(coro)


def _sync_fast(route: Any, kind: int, req: Any) -> Any:
    """The awaitable of a plain ``def`` handler on the fast path (kinds 4, 5, 6): the
    same calls as ``Route._invoke`` (keyword arguments, in the default thread pool)."""
    global _pool
    pool = _pool
    if pool is None:
        # NOTE: imported on first use: ``import ember`` stays light (no pool before a call)
        from ember._threadpool import default_pool

        pool = _pool = default_pool()
    if kind == 4:
        return pool.submit(route.endpoint)
    if kind == 5:
        return pool.submit_kwargs(route.endpoint, {route.plan.params[0].name: req})
    return pool.submit_kwargs(route.endpoint, req.path_params)


class BodyWriter:
    """What a streaming response writes through, on any transport: head once, body
    with backpressure, a file (zero-copy where the transport can), end."""

    __slots__ = ("_cycle", "_sink")

    def __init__(self, cycle: _cycles.Cycle) -> None:
        self._cycle = cycle
        self._sink = cycle.conn

    @property
    def request(self) -> Any:
        """The request this body answers (Range, Last-Event-ID, conditional headers)."""
        return self._cycle.request

    @property
    def closed(self) -> bool:
        """True once the client has gone away."""
        return bool(self._sink.closed)

    @property
    def started(self) -> bool:
        """True once the head was sent."""
        return self._cycle.head_sent

    @property
    def status(self) -> int:
        return self._cycle.status

    @property
    def sent(self) -> int:
        return self._cycle.sent

    def start(self, status_code: int, raw_headers: list, content_length: int = -1) -> None:
        """Send the status line and headers (once)."""
        cycle = self._cycle
        if cycle.head_sent:
            raise RuntimeError("response already started")
        sink = self._sink
        if _closed(sink):
            raise ClientDisconnect("client disconnected")
        # NOTE (issue 23): the engine owns framing; a conflicting app value raises
        # ValueError here, before anything is sent (the stream answers 500).
        framing = app_framing(status_code, raw_headers, content_length, cycle.head_only, True)
        if framing is not None:
            raw_headers, content_length, close = framing
            if close:
                cycle.keep_alive = False
        cycle.head_sent = True
        cycle.state = SENDING
        cycle.status = status_code
        if not body_allowed(status_code) or cycle.head_only:
            content_length = content_length if body_allowed(status_code) else -1
            cycle.head_only = True
        if cython.compiled:
            _c_send_head(sink, cycle, status_code, raw_headers, content_length)  # noqa: F821
        else:
            sink.send_head(cycle, status_code, raw_headers, content_length)

    async def write(self, data: bytes) -> None:
        """Send one body chunk, waiting while the peer does not accept more."""
        cycle = self._cycle
        if cycle.head_only or not data:
            return
        sink = self._sink
        if sink.closed:
            raise ClientDisconnect("client disconnected")
        cycle.sent += len(data)
        await sink.send_body(cycle, data)

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        """Send ``count`` bytes of an open file, zero-copy where the transport can."""
        cycle = self._cycle
        if cycle.head_only or count <= 0:
            return
        sink = self._sink
        if sink.closed:
            raise ClientDisconnect("client disconnected")
        if await sink.send_file(cycle, file, offset, count):
            cycle.sent += count
            return
        loop = asyncio.get_running_loop()
        file.seek(offset)
        remaining = count
        while remaining > 0:
            data = await loop.run_in_executor(None, file.read, min(remaining, 256 * 1024))
            if not data:
                break
            remaining -= len(data)
            await self.write(data)

    async def end(self) -> None:
        """Finish the body (terminating chunk, END_STREAM)."""
        if cython.compiled:
            _c_send_end(self._sink, self._cycle)  # noqa: F821 - in _exchange_c.pxd
        else:
            self._sink.send_end(self._cycle)


class Exchange:
    """Runs the exchanges of one connection (see the module docstring)."""

    def __init__(self, app: Any, dispatch: Any, kinds: dict, state: Any) -> None:
        #: handler Tasks that took their first step (HTTP/1.1 pipelining reads it)
        self.entered = 0
        self._app = app
        self._dispatch = dispatch
        # NOTE: the app's decided plan (route -> fast kind), read per request, never
        # re-decided here; an app changed after it was prepared empties it.
        self._kinds = kinds
        self._state = state
        self._loop = asyncio.get_event_loop()

    # -- start and run ----------------------------------------------------------

    def start(self, cycle: _cycles.Cycle) -> Any:
        """QUEUED -> RUNNING: the handler's Task (None when it already finished)."""
        cycle.state = RUNNING
        if _EAGER:
            task = _new_task(self._loop, self.run(cycle))
        else:  # PERF: no wrapper call on 3.11
            task = self._loop.create_task(self.run(cycle))
        if task.done():
            return None  # PERF: an eager Task that never suspended already answered
        cycle.task = task
        return task

    async def run(self, cycle: _cycles.Cycle) -> None:
        """The handler's Task: run it, then write its response (one Task per request)."""
        self.entered += 1
        req = cycle.request
        response = None
        sent = False
        try:
            route = req.route
            kind = self._kinds.get(route, 0) if route is not None else 0
            if kind:
                # PERF: no middleware, no cache, a plain handler: call it here and let the
                # sink write a str/bytes/dict/list answer straight to its wire (HTTP/1.1:
                # in C) without Response/MutableHeaders; the same bytes as the general
                # path (tested).
                try:
                    if kind == 1:
                        result = await route.endpoint()
                    elif kind == 2:
                        result = await route.endpoint(req)
                    elif kind == 3:
                        result = await route.endpoint(**req.path_params)
                    else:  # a plain ``def`` handler: in the thread pool, as Route._invoke does
                        result = await _sync_fast(route, kind, req)
                    sent = self._send_result(cycle, result)
                    if not sent:
                        response = result if type(result) is Response else to_response(result)
                except Exception as exc:
                    response = await _error_response(self._app, req, exc)
                if not sent and req._leaving is not None:
                    await req._leaving(response)
            else:
                response = await self._dispatch(req)
        except asyncio.CancelledError:
            if cycle.state == RUNNING:
                self.fail(cycle, 0, "")  # cancelled by someone else: close
            return
        except ClientDisconnect:  # the client left mid-body: nobody to answer, not an error
            self.log(cycle, 499, 0, " client disconnected", req)
            if cycle.state == RUNNING:
                self.fail(cycle, 0, "")
            return
        except BaseException as exc:  # NOTE: SystemExit & co must not reach the loop
            if cycle.state == RUNNING:
                logger.error("unhandled %s in %s %s", type(exc).__name__, req.method,
                             req.path, exc_info=exc)
                self.fail(cycle, 500, "Internal Server Error")
            return
        if sent:
            self.finish(cycle, 200, 0, None)
        elif cycle.state == RUNNING and not _closed(cycle.conn):
            cycle.state = SENDING  # NOTE: the handler answered: its timeout is over
            if response.streaming:
                await self._stream(cycle, response)
            else:
                waiting = self._respond(cycle, response)
                if waiting is not None:
                    await self._wait_respond(cycle, waiting, response)

    def _send_result(self, cycle: _cycles.Cycle, result: Any) -> bool:
        """The sink writes a plain result itself (no cache may still see it), or not."""
        if cycle.request._leaving is not None or cycle.state != RUNNING:
            return False
        if cython.compiled:
            # PERF: a SinkBase (the HTTP/1.1 connection) is called through its C vtable
            sent = _c_send_result(cycle.conn, cycle, result)  # noqa: F821 - in the .pxd
        else:
            sent = cycle.conn.send_result(cycle, result)
        if not sent:  # NOTE: False when closed
            return False
        cycle.head_sent = True
        cycle.status = 200
        return True

    def timeout(self, cycle: _cycles.Cycle) -> None:
        """The transport's clock says the handler ran past its ``request_timeout``."""
        cycle.timeout = None
        if cycle.state == RUNNING:
            self.fail(cycle, 504, "the handler did not answer in time")

    # -- answering -------------------------------------------------------------

    def _respond(self, cycle: _cycles.Cycle, response: Any) -> Any:
        """A whole response: framing checked here, written by the sink."""
        req = cycle.request
        body = response.body
        status = response.status_code
        headers = response._headers._raw
        sink = cycle.conn
        try:
            # NOTE (issue 23): the engine owns framing (Content-Length,
            # Transfer-Encoding, Connection); a conflicting app value is a 500.
            framing = app_framing(status, headers, len(body), cycle.head_only, False)
            if framing is None:
                length = len(body) if body_allowed(status) else -1
            else:
                headers = framing[0]
                length = framing[1]
                if framing[2]:
                    cycle.keep_alive = False  # the app's Connection: close (RFC 9112 §9.6)
            if cython.compiled:
                waiting = _c_send_response(sink, cycle, status, headers, body,  # noqa: F821
                                           length)
            else:
                waiting = sink.send_response(cycle, status, headers, body, length)
        except ValueError as exc:
            logger.error("invalid response from %s %s: %s", req.method, req.path, exc)
            self.fail(cycle, 500, "Internal Server Error")
            return None
        cycle.head_sent = True
        cycle.status = status
        if waiting is None:
            self.finish(cycle, status, len(body), response)
        return waiting

    async def _wait_respond(self, cycle: _cycles.Cycle, waiting: Any, response: Any) -> None:
        """A whole response the sink sends as its windows allow."""
        try:
            await waiting
        except (ClientDisconnect, asyncio.CancelledError):
            self.log(cycle, cycle.status or 499, cycle.sent, " client disconnected")
            self.fail(cycle, 0, "")
            return
        if cycle.state < DONE:
            self.finish(cycle, cycle.status, len(response.body), response)

    async def _stream(self, cycle: _cycles.Cycle, response: Any) -> None:
        req = cycle.request
        sink = cycle.conn
        try:
            await response.stream_to(BodyWriter(cycle))
        except (ClientDisconnect, asyncio.CancelledError):
            self.log(cycle, cycle.status or 499, cycle.sent, " client disconnected", req)
            if not sink.closed:
                self.fail(cycle, 0, "")
            return
        except BaseException:  # NOTE: see run
            logger.exception("error while streaming the response to %s %s", req.method,
                             req.path)
            # NOTE: after the head, a cut body must look cut: no last chunk, and the
            # connection closes (a client must never take it for a complete body).
            self.fail(cycle, 500, "Internal Server Error")
            return
        if sink.closed or cycle.state >= DONE:
            if cycle.state < DONE:
                self.log(cycle, cycle.status or 499, cycle.sent, " client disconnected", req)
            return
        self.finish(cycle, cycle.status, cycle.sent, response)

    # -- the two final transitions ------------------------------------------------

    def finish(self, cycle: _cycles.Cycle, status: int, size: int, response: Any) -> None:
        """-> DONE: log, start the background task, hand the connection back."""
        if not (_TABLE >> (5 * cycle.state + DONE)) & 1:
            return  # NOTE: final already (failed meanwhile): the table forbids a 2nd end
        cycle.state = DONE
        self.log(cycle, status, size)
        cycle.request = None  # PERF: break request <-> cycle, freed by refcount
        background = getattr(response, "background", None) if response is not None else None
        if background is not None:
            task = self._loop.create_task(_run_background(background))
            state = self._state
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        if cython.compiled:
            _c_exchange_done(cycle.conn, cycle)  # noqa: F821 - in _exchange_c.pxd
        else:
            cycle.conn.exchange_done(cycle)

    def fail(self, cycle: _cycles.Cycle, status: int, reason: str) -> None:
        """-> ERROR from any live state: ``cycle`` can never end normally.

        The body reader is woken with the error, the sink answers ``status`` if nothing
        was sent (0: no answer is due: the client left, or was cancelled) and stops.
        """
        if not (_TABLE >> (5 * cycle.state + ERROR)) & 1:
            return  # final already: one transition per error
        cycle.state = ERROR
        cycle.keep_alive = False
        cycle.fail_body(status or 0, reason or "client disconnected")
        handle = cycle.timeout
        if handle is not None:
            handle.cancel()
            cycle.timeout = None
        if cython.compiled:
            size = _c_send_error(cycle.conn, cycle, status, reason)  # noqa: F821 - in .pxd
        else:
            size = cycle.conn.send_error(cycle, status, reason)
        if size >= 0:
            self.log(cycle, status, size)

    def log(self, cycle: _cycles.Cycle, status: int, size: int, note: str = "",
            req: Any = None) -> None:
        """Count the request; one access log line when the log is on."""
        state = self._state
        state.total_requests += 1
        if state.access_log:
            if req is None:
                req = cycle.request
            peer = cycle.conn.peer
            host = peer[0] if peer else "-"
            if req is None:
                access_logger.info('%s - "-" %d %d', host, status, size)
                return
            minor = req.http_minor
            version = f"1.{minor}" if minor < 2 else str(minor)
            access_logger.info(
                '%s - "%s %s HTTP/%s" %d %d%s', host, req.method,
                req.raw_path.decode("latin-1"), version, status, size, note,
            )


async def _error_response(app: Any, req: Any, exc: Exception) -> Any:
    """The app's answer to a handler's exception, as ``Ember._handle`` gives it."""
    try:
        return await app._error_response(req, exc)
    except Exception as again:
        return await app._error_response(req, again)


async def _run_background(background: Any) -> None:
    try:
        result = background()
        if asyncio.iscoroutine(result):
            await result
    except Exception:
        logger.exception("background task failed")
