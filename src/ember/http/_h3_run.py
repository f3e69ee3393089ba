"""Run an HTTP/3 stream's exchange: start, fail, handler timeout.

NOTE(h3): a stand-in for the one exchange core (issue #24, ``ember.http.exchange``)
until it lands: the same transitions (QUEUED -> RUNNING -> SENDING -> DONE | ERROR),
written only through the stream's :class:`~ember.http.sink.Sink` methods, so swapping
in ``Exchange.start`` / ``.fail`` / ``.timeout`` leaves :mod:`ember.http.h3` unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ember.exceptions import ClientDisconnect
from ember.http import cycle as _cycles
from ember.http.writer import app_framing
from ember.status import body_allowed

logger = logging.getLogger("ember.server")
access_logger = logging.getLogger("ember.access")


def start(proto: Any, stream: Any) -> None:
    """QUEUED -> RUNNING: the handler's Task, and its ``request_timeout`` clock."""
    cycle = stream.cycle
    cycle.state = _cycles.RUNNING
    stream.task = task = proto._loop.create_task(_run(proto, stream))
    cycle.task = task
    route = cycle.request.route
    timeout = proto.limits.request_timeout
    if route is not None and route.timeout is not None:
        timeout = route.timeout
    if timeout is not None:
        stream.timer = proto._loop.call_later(timeout, timeout_expired, stream)


def timeout_expired(stream: Any) -> None:
    """The handler ran past its deadline: 504 (its Task is cancelled)."""
    stream.timer = None
    if stream.cycle.state == _cycles.RUNNING:
        fail(stream, 504, "the handler did not answer in time")


def fail(stream: Any, status: int, reason: str) -> None:
    """-> ERROR: the sink answers ``status`` if it still can, and stops the handler."""
    cycle = stream.cycle
    if cycle.state >= _cycles.DONE:
        return
    cycle.state = _cycles.ERROR
    cycle.fail_body(status or 0, reason or "client disconnected")
    request = cycle.request
    size = stream.send_error(cycle, status, reason)
    if size >= 0:
        _log(stream, request, status, size)


async def _run(proto: Any, stream: Any) -> None:
    cycle = stream.cycle
    request = cycle.request
    try:
        response = await proto.app._handle(request)
    except asyncio.CancelledError:
        if cycle.state == _cycles.RUNNING:
            fail(stream, 0, "")
        return
    except ClientDisconnect:
        _log(stream, request, 499, 0)
        fail(stream, 0, "")
        return
    if cycle.state != _cycles.RUNNING:
        return
    cycle.state = _cycles.SENDING
    if stream.timer is not None:
        stream.timer.cancel()
        stream.timer = None
    try:
        if response.streaming:
            await response.stream_to(_Writer(stream))
        else:
            body = response.body
            headers, length = response.raw_headers, len(body)
            framing = app_framing(response.status_code, headers, length, cycle.head_only,
                                  False)
            if framing is not None:
                headers, length = framing[0], framing[1]
            stream.send_response(cycle, response.status_code, headers, body, length)
    except (ClientDisconnect, asyncio.CancelledError):
        _log(stream, request, cycle.status or 499, cycle.sent)
        fail(stream, 0, "")
        return
    except Exception:
        logger.exception("error answering HTTP/3 stream %d (%s %s)", stream.id,
                         request.method, request.path)
        fail(stream, 500, "Internal Server Error")
        return
    cycle.state = _cycles.DONE
    _log(stream, request, cycle.status, cycle.sent)
    stream.exchange_done(cycle)
    background = getattr(response, "background", None)
    if background is not None:
        try:
            result = background()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            logger.exception("background task failed")


def _log(stream: Any, request: Any, status: int, size: int) -> None:
    state = stream.proto.state
    state.total_requests += 1
    if state.access_log:
        peer = stream.peer[0] if stream.peer else "-"
        access_logger.info('%s - "%s %s HTTP/3" %d %d', peer, request.method,
                           request.raw_path.decode("latin-1"), status, size)


class _Writer:
    """The BodyWriter a streaming response writes through (head, body, end)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    @property
    def request(self) -> Any:
        return self._stream.cycle.request

    @property
    def closed(self) -> bool:
        return bool(self._stream.closed)

    @property
    def started(self) -> bool:
        return bool(self._stream.cycle.head_sent)

    @property
    def status(self) -> int:
        return int(self._stream.cycle.status)

    @property
    def sent(self) -> int:
        return int(self._stream.cycle.sent)

    def start(self, status_code: int, raw_headers: list, content_length: int = -1) -> None:
        cycle = self._stream.cycle
        if cycle.head_sent:
            raise RuntimeError("response already started")
        framing = app_framing(status_code, raw_headers, content_length, cycle.head_only, True)
        if framing is not None:
            raw_headers, content_length = framing[0], framing[1]
        cycle.head_sent = True
        cycle.status = status_code
        if not body_allowed(status_code):
            cycle.head_only = True
        self._stream.send_head(cycle, status_code, raw_headers, content_length)

    async def write(self, data: bytes) -> None:
        cycle = self._stream.cycle
        if cycle.head_only or not data:
            return
        cycle.sent += len(data)
        await self._stream.send_body(cycle, data)

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
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
        self._stream.send_end(self._stream.cycle)
