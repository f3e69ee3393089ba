"""One HTTP/3 request stream: the :class:`~ember.http.sink.Sink` its exchange answers through.

The connection (:class:`ember.http.h3.H3Protocol`) owns aioquic and the clock; a stream
only turns the exchange core's calls into HEADERS/DATA frames on its QUIC stream, a
FIN, or a reset when a response already under way must look cut.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aioquic.h3.connection import ErrorCode

from ember.exceptions import ClientDisconnect
from ember.http.errors import ERROR_CONTENT_TYPE, error_body
from ember.status import body_allowed

if TYPE_CHECKING:  # pragma: no cover
    from ember.http.cycle import Cycle
    from ember.http.h3 import H3Protocol

#: unacknowledged response bytes a stream may queue before its writer waits
HIGH_WATER = 256 * 1024


class H3Stream:
    """One request stream: the sink its exchange answers through."""

    __slots__ = ("body_deadline", "body_timer", "closed", "cycle", "id", "proto", "received",
                 "task", "waiter")

    def __init__(self, proto: H3Protocol, stream_id: int, cycle: Cycle) -> None:
        self.proto = proto
        self.id = stream_id
        self.cycle = cycle
        self.closed = False
        self.received = 0
        self.task: asyncio.Task[Any] | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_deadline = 0.0
        self.waiter: asyncio.Future[None] | None = None  # a writer waiting for acks

    @property
    def peer(self) -> tuple[str, int] | None:
        """The client's address."""
        return self.proto.peer

    # -- the body being read ------------------------------------------------------

    def body_consumed(self, buffered: int) -> None:
        """NOTE: aioquic re-opens receive windows as data arrives, not as it is read:
        HTTP/3 bodies are bounded by ``max_body_size`` instead (docs/http3.md)."""

    def send_continue(self, request: Any) -> None:
        """Nothing to send: HTTP/3 clients do not wait for 100 Continue."""

    # -- the response -----------------------------------------------------------------

    def send_result(self, cycle: Any, result: Any) -> bool:
        """No fast path on HTTP/3: the core builds the Response."""
        return False

    def send_response(self, cycle: Any, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> None:
        """A whole response in one go (QUIC queues it; acks drain it)."""
        with_body = bool(body) and not cycle.head_only and body_allowed(status)
        self.proto.send_headers(self, status, raw_headers, content_length, not with_body)
        if with_body:
            self.proto.send_data(self, body, True)
        cycle.head_sent = True
        cycle.status = status
        cycle.sent = len(body) if with_body else 0

    def send_head(self, cycle: Any, status: int, raw_headers: list,
                  content_length: int) -> None:
        """The head of a streaming response."""
        self.proto.send_headers(self, status, raw_headers, content_length, cycle.head_only)

    async def send_body(self, cycle: Any, data: bytes) -> None:
        """Body bytes; waits while the client has not acknowledged enough."""
        if self.closed:
            raise ClientDisconnect("client disconnected")
        self.proto.send_data(self, data, False)
        if self.proto.unacked(self.id) > HIGH_WATER:
            await self.proto.wait_acked(self)

    async def send_file(self, cycle: Any, file: Any, offset: int, count: int) -> bool:
        """QUIC packets are encrypted in user space: no zero-copy, the core reads."""
        return False

    def send_end(self, cycle: Any) -> None:
        """END of the response stream (a FIN on the last, empty DATA)."""
        if not cycle.head_only and not self.closed:
            self.proto.send_data(self, b"", True)

    def send_error(self, cycle: Any, status: int, reason: str) -> int:
        """The exchange failed: answer ``status`` if nothing was sent, else reset."""
        size = -1
        if status and not cycle.head_sent and not self.closed:
            body = error_body(reason)
            cycle.head_sent = True
            self.proto.send_headers(self, status, [(b"content-type", ERROR_CONTENT_TYPE)],
                                    len(body), False)
            self.proto.send_data(self, b"" if cycle.head_only else body, True)
            size = len(body)
        elif not self.closed and (cycle.head_sent or status == 0):
            # NOTE: a response already under way must look cut: reset, never a FIN
            self.proto.reset(self, ErrorCode.H3_INTERNAL_ERROR if status
                             else ErrorCode.H3_REQUEST_CANCELLED)
        self.proto.release(self, stop_task=True)
        return size

    def upgrade(self, cycle: Any, upgrade: Any) -> Any:
        """A stream cannot leave HTTP/3 (WebSocket over HTTP/3, RFC 9220, is not served)."""
        raise NotImplementedError("WebSocket over HTTP/3 (RFC 9220 extended CONNECT) is not "
                                  "supported: connect over HTTP/1.1")

    def exchange_done(self, cycle: Any) -> None:
        """The response is complete: forget the stream."""
        self.proto.release(self, stop_task=False)
