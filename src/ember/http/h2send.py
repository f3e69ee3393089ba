"""An HTTP/2 connection's sending side: response heads, bodies as the windows allow,
and the one write per event-loop turn.

:class:`H2Send` is mixed into :class:`ember.http.h2.H2Protocol`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

from ember.exceptions import ClientDisconnect
from ember.http.errors import ERROR_CONTENT_TYPE, error_body
from ember.http.frames import _impl as _frames
from ember.status import body_allowed

logger = logging.getLogger("ember.server")

# NOTE: the most one stream writes before it waits for the transport to drain, and the
# bound on unsent bytes per connection: a fixed part plus that much per allowed stream.
# A peer that stops reading while it keeps opening/resetting streams passes it and is
# dropped (GOAWAY ENHANCE_YOUR_CALM); a reading peer never gets near it (docs/http2.md).
MAX_PIECE = 16384
OUTBOUND_BASE = 1024 * 1024
OUTBOUND_PER_STREAM = 20 * 1024
_STATUS = {code: str(code).encode() for code in range(100, 600)}
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                         b"upgrade", b"content-length"))


class H2Send:
    """The sending side of :class:`~ember.http.h2.H2Protocol`."""

    def fits(self, stream: Any, size: int) -> bool:
        """True when ``size`` body bytes can go out at once in one DATA frame."""
        if size > MAX_PIECE or self.closed or stream.gone or stream.ended:
            return False
        conn = self.conn
        try:
            return size <= conn.max_outbound_frame_size and \
                size <= conn.local_flow_control_window(stream.id)
        except self._errors:  # the stream closed meanwhile: the general path says so
            return False

    def send_simple(self, stream: Any, content_type: bytes, body: bytes) -> bool:
        """A header-less 200 with ``body`` (see :meth:`H2Stream.send_result`), or False."""
        size = len(body)
        if not self.fits(stream, size):
            return False
        state = self.state
        date = state.date_header
        alt_svc = state.alt_svc
        key = (content_type, size)
        cached = self._simple_heads.get(key)
        if cached is not None and cached[0] is date and cached[1] is alt_svc:
            headers = cached[2]
            key = cached[3]
        else:
            # NOTE: the fields and order of send_headers for a 200 with no app headers
            headers = [(b":status", b"200"), (b"server", b"ember"), (b"date", date[6:35])]
            if state.alt_svc:
                headers.append((b"alt-svc", state.alt_svc))
            headers.append((b"content-type", content_type))
            headers.append((b"content-length", str(size).encode()))
            if len(self._simple_heads) >= 64:
                self._simple_heads.clear()
            # NOTE: the codec's key stands for exactly these fields (date, alt-svc)
            key = (content_type, size, date, alt_svc)
            self._simple_heads[(content_type, size)] = (date, alt_svc, headers, key)
        stream.responded = True
        conn = self.conn
        if self._cached_heads:
            # PERF: the HPACK block of the same fields is encoded once per table state
            conn.send_headers_cached(stream.id, key, headers, False)
        else:
            conn.send_headers(stream.id, headers, end_stream=False)
        conn.send_data(stream.id, body, end_stream=True)
        stream.ended = True
        self.flush_soon()
        return True

    def send_headers(self, stream: Any, status: int, raw_headers: list,
                     content_length: int, end: bool) -> None:
        """The response head of ``stream``."""
        # NOTE: the date line is fixed-length (IMF-fixdate, 29 bytes) and may be followed
        # by the server's alt-svc line (HTTP/3 on)
        code = _STATUS.get(status)
        if code is None:
            code = str(status).encode()
        headers = [(b":status", code), (b"server", b"ember"),
                   (b"date", self.state.date_header[6:35])]
        if self.state.alt_svc:
            headers.append((b"alt-svc", self.state.alt_svc))
        for name, value in raw_headers:
            if name not in _HOP_BY_HOP:
                headers.append((name, value))
        if content_length >= 0 and body_allowed(status):
            headers.append((b"content-length", str(content_length).encode()))
        stream.responded = True
        self.conn.send_headers(stream.id, headers, end_stream=end)
        self.flush_soon()

    async def send_data(self, stream: Any, data: bytes, end: bool = False) -> None:
        """Body bytes, as flow control allows; ``end`` ends the stream with the last piece.

        A body sent in one piece is written with the next batch (:meth:`flush_soon`); a
        longer one piece by piece, waiting for the transport to drain.
        """
        view = memoryview(data)
        while view:
            if self.closed or stream.gone or stream.ended:
                raise ClientDisconnect("client disconnected")
            window = min(self.conn.local_flow_control_window(stream.id),
                         self.conn.max_outbound_frame_size, MAX_PIECE)
            if window <= 0:
                stream.window_waiter = self.loop.create_future()
                try:
                    await self._wait_send(stream, stream.window_waiter)
                finally:
                    stream.window_waiter = None
                continue
            piece = view[:window]
            view = view[len(piece):]
            last = end and not view
            self.conn.send_data(stream.id, piece.tobytes(), end_stream=last)
            if last:
                stream.ended = True
            if not view:
                self.flush_soon()
                return
            self.flush()
            if self.flow.write_paused:
                await self._wait_send(stream, self.flow.drain())

    async def _wait_send(self, stream: Any, waiter: Awaitable[None]) -> None:
        """Wait for window or drain, at most ``send_timeout``; then reset the stream."""
        timeout = self.limits.send_timeout
        if timeout is None:
            await waiter
            return
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            logger.info("HTTP/2 stream %d: the peer did not accept data for %ss; reset",
                        stream.id, timeout)
            self.streams.pop(stream.id, None)
            self._cancel(stream)  # NOTE: from inside its own Task: not cancelled
            self._rst(stream.id, _frames.CANCEL)
            self.flush()
            raise ClientDisconnect("the peer stopped reading") from None

    def _send_refusal(self, stream_id: int, status: int, reason: str, head: bool) -> None:
        """The head (and body) of a refusal; the body only if the windows let it out
        now, since nothing waits for a window on a refused stream."""
        body = error_body(reason or HTTPStatus(status).phrase) if body_allowed(status) else b""
        conn = self.conn
        send_body = bool(body) and not head and len(body) <= min(
            conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        headers = [(b":status", str(status).encode()), (b"server", b"ember"),
                   (b"date", self.state.date_header[6:35])]
        if body and (head or send_body):
            headers.append((b"content-type", ERROR_CONTENT_TYPE))
        headers.append((b"content-length", b"%d" % (len(body) if head or send_body else 0)))
        conn.send_headers(stream_id, headers, end_stream=not send_body)
        if send_body:
            conn.send_data(stream_id, body, end_stream=True)

    def end_stream(self, stream: Any) -> None:
        """Close our side of ``stream``."""
        try:
            self.conn.end_stream(stream.id)
        except self._errors:  # reset by the peer meanwhile
            pass
        stream.ended = True
        self.flush_soon()

    def _window_opened(self, stream_id: int) -> None:
        targets = self.streams.values() if stream_id == 0 else (
            [self.streams[stream_id]] if stream_id in self.streams else [])
        for stream in targets:
            waiter = stream.window_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def flush_soon(self) -> None:
        """Write what is queued once the ready handlers have run: one write for all the
        answers of a read event (multiplexing saves system calls)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write whatever the codec has queued."""
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)
            if self.transport.get_write_buffer_size() > self._outbound_limit:
                self._overflow()

    def _overflow(self) -> None:
        """Unsent bytes passed the bound: the peer does not read what it asks for."""
        logger.warning("HTTP/2 client %s does not read (%d bytes unsent); GOAWAY "
                       "ENHANCE_YOUR_CALM", self.peer[0] if self.peer else "-",
                       self.transport.get_write_buffer_size())
        try:
            self.conn.close_connection(_frames.ENHANCE_YOUR_CALM)
            self.transport.write(self.conn.data_to_send())
        except self._errors:  # already closing
            pass
        # NOTE: abort, not close: close() would wait for a peer that does not read.
        self.abort()
