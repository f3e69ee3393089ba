"""One HTTP/2 stream as the exchange core's sink (:mod:`ember.http.sink`).

:class:`H2Stream` is what :mod:`ember.http.h2` hands the exchange core for each request:
it turns the core's calls into its connection's HEADERS and DATA frames, keeps the
stream's flow-control bookkeeping, and writes a plain result itself on the fast path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ember.responses import json_dumps
from ember.status import body_allowed

# NOTE: a stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE); re-opened only
# while its handler has less than half of it unread (read backpressure)
HIGH_WATER = 256 * 1024
_CT_TEXT = b"text/plain; charset=utf-8"
_CT_OCTET = b"application/octet-stream"
_CT_JSON = b"application/json"


class H2Stream:
    """One stream: the :class:`~ember.http.sink.Sink` of its one exchange, and its
    flow-control bookkeeping.

    ``ended``: we sent END_STREAM (or reset it); ``gone``: the stream was reset,
    refused or lost, nobody reads an answer (the sink's ``closed``).
    """

    __slots__ = (
        "body_deadline",
        "body_timer",
        "cycle",
        "ended",
        "gone",
        "id",
        "proto",
        "rate_base",
        "rate_conn_base",
        "rate_start",
        "rate_timer",
        "responded",
        "unacked",
        "window_waiter",
    )

    def __init__(self, proto: Any, stream_id: int, cycle: Any) -> None:
        self.proto = proto
        self.id = stream_id
        self.cycle = cycle
        cycle.conn = self
        self.unacked = 0
        self.window_waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.gone = False
        self.responded = False
        self.body_deadline = 0.0
        self.body_timer: asyncio.TimerHandle | None = None
        self.rate_start = 0.0
        self.rate_base = 0
        self.rate_conn_base = 0
        self.rate_timer: asyncio.TimerHandle | None = None

    # -- what the Cycle expects of its connection (the body being read) ---------------

    def body_consumed(self, buffered: int) -> None:
        """Re-open the receive window once the handler has read enough."""
        if self.unacked and buffered < HIGH_WATER // 2:
            self.proto.ack(self, self.unacked)

    def send_continue(self, req: Any) -> None:
        """HTTP/2 has no 100-continue interim need here: bodies flow on window updates."""

    # -- the sink (ember.http.sink) ------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the stream or its connection is gone."""
        return self.gone or self.proto.closed

    @property
    def peer(self) -> tuple[str, int] | None:
        return self.proto.peer

    def send_result(self, cycle: Any, result: Any) -> bool:
        """PERF: a plain result — exact ``str``, ``bytes``, ``dict`` or ``list``, what
        :func:`ember.responses.to_response` makes a header-less 200 of — as HEADERS and
        one DATA frame with END_STREAM, queued with this turn's batch: the same frames
        :meth:`send_response` sends for ``to_response(result)`` (tested).  False (the
        core builds the Response) for anything else, ``HEAD``, or a body the windows or
        the frame size cannot take at once."""
        t = type(result)
        if t is str:
            content_type = _CT_TEXT
            body = result.encode("utf-8")
        elif t is bytes:
            content_type = _CT_OCTET
            body = result
        elif t is dict or t is list:
            content_type = _CT_JSON
            body = json_dumps(result)
        else:
            return False
        if cycle.head_only or self.gone:
            return False
        return self.proto.send_simple(self, content_type, body)

    def send_response(self, cycle: Any, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> Awaitable[None] | None:
        """HEADERS, then the body with END_STREAM on its last DATA frame."""
        head_only = cycle.head_only or not body_allowed(status)
        proto = self.proto
        if body and not head_only and proto.fits(self, len(body)):
            # PERF: the body fits the windows and one frame: queued now, no coroutine
            proto.send_headers(self, status, raw_headers, content_length, False)
            proto.conn.send_data(self.id, body, end_stream=True)
            self.ended = True
            return None
        proto.send_headers(self, status, raw_headers, content_length, head_only)
        if head_only:
            self.ended = True
            return None
        if body:
            return self.proto.send_data(self, body, end=True)
        self.proto.end_stream(self)
        return None

    def send_head(self, cycle: Any, status: int, raw_headers: list,
                  content_length: int) -> None:
        """The response HEADERS (END_STREAM when there is no body)."""
        self.proto.send_headers(self, status, raw_headers, content_length, cycle.head_only)
        if cycle.head_only:
            self.ended = True

    async def send_body(self, cycle: Any, data: bytes) -> None:
        """DATA as the flow-control windows allow."""
        await self.proto.send_data(self, data)

    async def send_file(self, cycle: Any, file: Any, offset: int, count: int) -> bool:
        return False  # NOTE: DATA frames cannot be zero-copy: the core reads the file

    def send_end(self, cycle: Any) -> None:
        if not cycle.head_only and not self.ended and not self.closed:
            self.proto.end_stream(self)

    def send_error(self, cycle: Any, status: int, reason: str) -> int:
        """Answer ``status`` ({"detail": reason}) if nothing was sent, else reset; release the
        stream and stop its handler (unless the handler itself failed)."""
        proto = self.proto
        if proto.streams.get(self.id) is not self:
            return -1  # already refused, reset or lost
        if status and not proto.closed:
            answered = not self.responded
            proto._refuse(self.id, status, reason=reason, head=cycle.head_only)
            return 0 if answered else -1
        proto._release(self)
        return -1

    def upgrade(self, cycle: Any, upgrade: Any) -> Any:
        """A stream cannot leave HTTP/2 (WebSocket over HTTP/2, RFC 8441, is not served)."""
        raise NotImplementedError("WebSocket over HTTP/2 (RFC 8441 extended CONNECT) is not "
                                  "supported: connect over HTTP/1.1")

    def exchange_done(self, cycle: Any) -> None:
        handle = cycle.timeout
        if handle is not None:
            handle.cancel()
            cycle.timeout = None
        self.proto._release(self)
