# cython: annotation_typing=False
"""The request cycle: every piece of per-request state, with explicit states.

One :class:`Cycle` exists per request, created by the connection when the head
is parsed.  :class:`~ember.requests.Request` is a view on it (headers, body),
the HTTP/1.1 protocol drives it, and HTTP/2 streams reuse it for the body.

Request states (``cycle.state``)::

    QUEUED ──> RUNNING ──> SENDING ──> DONE
       │          │           │
       └──────────┴───────────┴──────> ERROR      (answered if nothing was sent; closed)

Body states (``cycle.body_state``), independent because a handler may run
while its body still arrives::

    OPEN ──> COMPLETE
      └────> FAILED  (framing error, too large, body timeout, disconnect)

Every error has exactly one transition, :meth:`Cycle.fail_body`: the body
becomes FAILED, and whoever waits in :meth:`Cycle.read` is woken with the
matching exception (:class:`~ember.exceptions.HTTPException` with the status the
connection answers, or :class:`~ember.exceptions.ClientDisconnect`).  The
connection then answers (if nothing was sent) and closes; see
``ember.http._protocol_py``.

Buffering is bounded in bytes and in objects: body fragments smaller than
:data:`COALESCE` bytes are merged, so a body sent as 1-byte chunks costs one
buffer, not one object per byte.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ember.exceptions import ClientDisconnect, HTTPException

# cycle.state
QUEUED = 0
RUNNING = 1
SENDING = 2
DONE = 3
ERROR = 4
STATE_NAMES = ("QUEUED", "RUNNING", "SENDING", "DONE", "ERROR")

# cycle.body_state
BODY_OPEN = 0
BODY_COMPLETE = 1
BODY_FAILED = 2

COALESCE = 16 * 1024  # PERF: fragments below this are merged into one buffer


class Cycle:
    """Per-request state shared by the connection, the request and the response.

    ``conn`` is what the body reports to: an object with ``body_consumed(buffered)``
    (resume reading / re-open a window) and ``send_continue(request)``
    (``Expect: 100-continue``), or None for a request built by hand.
    """

    __slots__ = (
        "_chunks",
        "_error",
        "_small",
        "_waiter",
        "body_state",
        "buffered",
        "chunked",
        "conn",
        "disconnected",
        "expect_continue",
        "expectation_failed",
        "head_only",
        "head_sent",
        "keep_alive",
        "limit",
        "received",
        "request",
        "sent",
        "state",
        "status",
        "stream_used",
        "task",
        "timeout",
    )

    def __init__(self, conn: Any = None) -> None:
        self.conn = conn
        self.request: Any = None
        self.state = QUEUED
        self.body_state = BODY_OPEN
        self.buffered = 0
        self.received = 0
        self.limit: int | None = None
        self.keep_alive = True
        self.expect_continue = False
        self.expectation_failed = False
        self.stream_used = False
        self.disconnected = False
        self.task: asyncio.Task[Any] | None = None
        self.timeout: asyncio.TimerHandle | None = None
        # response progress (HTTP/1.1)
        self.head_sent = False
        self.head_only = False
        self.chunked = False
        self.status = 0
        self.sent = 0
        self._chunks: list[bytes] = []  # NOTE: a few items at most (coalesced)
        self._small: bytearray | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: tuple[int, str] | None = None

    def __repr__(self) -> str:
        return (f"<Cycle {STATE_NAMES[self.state]} body="
                f"{('OPEN', 'COMPLETE', 'FAILED')[self.body_state]} buffered={self.buffered}>")

    # -- the connection side -------------------------------------------------------

    @property
    def chunk_count(self) -> int:
        """Buffered objects (bounded: small fragments are coalesced)."""
        return len(self._chunks) + (self._small is not None)

    def feed(self, chunk: bytes) -> int:
        """Body bytes arrived; returns how many objects are buffered now."""
        chunks = self._chunks
        if self.body_state != BODY_OPEN or not chunk:
            return len(chunks)
        n = len(chunk)
        self.buffered += n
        small = self._small
        if n < COALESCE:
            if small is None:
                self._small = bytearray(chunk)
            else:
                small += chunk
                if len(small) >= COALESCE:
                    chunks.append(bytes(small))
                    self._small = None
        else:
            if small is not None:
                chunks.append(bytes(small))
                self._small = None
            chunks.append(chunk)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return len(chunks)

    def finish(self) -> None:
        """The body is complete."""
        if self.body_state == BODY_OPEN:
            self.body_state = BODY_COMPLETE
            self._wake()

    def fail_body(self, status: int, reason: str) -> None:
        """The body can never complete: wake a reader with the error (first error wins).

        ``status`` 0 means the client went away (:class:`ClientDisconnect`);
        anything else is the :class:`HTTPException` the reader gets.
        """
        if self.body_state == BODY_OPEN:
            self.body_state = BODY_FAILED
            self._error = (status, reason)
            self._wake()

    def lost(self) -> None:
        """The client went away: a reader gets :class:`ClientDisconnect`."""
        self.disconnected = True
        self.fail_body(0, "client disconnected while sending the body")

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def body_error(self) -> tuple[int, str] | None:
        """``(status, reason)`` once the body failed (status 0: disconnect)."""
        return self._error

    # -- the handler side ------------------------------------------------------------

    def take_all(self) -> bytes | None:
        """The whole body when it is already complete, without suspending; else None."""
        if self.body_state != BODY_COMPLETE or self.stream_used:
            return None
        self.stream_used = True
        chunks = self._chunks
        small = self._small
        if small is not None:
            chunks.append(bytes(small))
            self._small = None
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.conn is not None:
            self.conn.body_consumed(0)
        return body

    async def read(self) -> bytes:
        """The next buffered body bytes; ``b""`` at the end; raises on a failed body."""
        chunks = self._chunks
        while True:
            if chunks or self._small is not None:
                if chunks:
                    chunk = chunks.pop(0)
                else:
                    chunk = bytes(self._small)  # type: ignore[arg-type]
                    self._small = None
                self.buffered -= len(chunk)
                if self.conn is not None:
                    self.conn.body_consumed(self.buffered)
                return chunk
            state = self.body_state
            if state == BODY_COMPLETE:
                return b""
            if state == BODY_FAILED:
                status, reason = self._error  # type: ignore[misc]
                if status == 0:
                    raise ClientDisconnect(reason or "client disconnected while sending the body")
                raise HTTPException(status, reason)
            conn = self.conn
            if self.expect_continue:
                self.expect_continue = False
                if conn is not None:
                    conn.send_continue(self.request)
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
