"""HTTP/2 (RFC 9113) connections: each stream is a sink of the one exchange core.

Reached three ways when ``app.run(http2=True)``: TLS with ALPN ``h2``, cleartext
with prior knowledge (the connection starts with the HTTP/2 preface), and
``Upgrade: h2c`` on an HTTP/1.1 request without a body.  The frames are our own
codec's (:mod:`ember.http.h2conn`; the ``h2`` package with ``EMBER_HTTP2_CODEC=h2``).
Each stream gets a :class:`~ember.http.cycle.Cycle` whose ``conn`` is its
:class:`H2Stream` (an :class:`~ember.http.sink.Sink`), and the request runs in the
exchange core (:mod:`ember.http.exchange`) exactly as over HTTP/1.1: the same
handler Task, timeout, BodyWriter, access log and background tasks.  This module only
frames: streams are multiplexed, a reset stream cancels its handler, the receive
window is only re-opened as handlers consume bodies (read backpressure), and
responses — streaming and SSE included — are sent as the peer's flow-control window
allows.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ember.http import h2conn
from ember.http.cycle import RUNNING, Cycle
from ember.http.exchange import Exchange, decided_kinds
from ember.http.flow_control import FlowControl
from ember.http.frames import _impl as _frames
from ember.http.h2conn import split_request
from ember.http.h2limits import H2Limits
from ember.http.h2send import OUTBOUND_BASE, OUTBOUND_PER_STREAM, H2Send
from ember.http.h2setup import _h2_package_connection, h2c_settings
from ember.http.h2stream import HIGH_WATER, H2Stream
from ember.requests import Request, new_request

logger = logging.getLogger("ember.server")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# NOTE: which HTTP/2 codec serves connections: "ember" (ours: ember.http.h2conn, frames
# and hpack, compiled; the default) or "h2" (the h2 package, kept as a fallback and as the
# tests' oracle). Read at import; tests may set it.
CODEC = os.environ.get("EMBER_HTTP2_CODEC", "ember").strip().lower() or "ember"

# the event handlers of each codec's event classes (H2Protocol.__init__ fills it)
_HANDLERS: dict[Any, dict[type, Any]] = {}

__all__ = ["CODEC", "HIGH_WATER", "PREFACE", "H2Protocol", "H2Stream", "h2c_settings"]


class H2Protocol(H2Limits, H2Send, asyncio.Protocol):
    """An HTTP/2 connection (see the module docstring)."""

    def __init__(self, app: Any, state: Any, limits: Any, scheme: str = "https",
                 peer: tuple[str, int] | None = None) -> None:
        self.app = app
        self.state = state
        self.limits = limits
        self.scheme = scheme
        self.peer = peer
        # NOTE: every value advertised here is enforced: stream count in _request
        # (REFUSED_STREAM), header list size by hpack and in _request (431), the
        # window by the codec's inbound flow control.
        if CODEC == "ember":
            self.conn: Any = h2conn.H2Connection(
                max_concurrent_streams=limits.http2_max_concurrent_streams,
                max_header_list_size=limits.max_header_size, initial_window_size=HIGH_WATER)
            self._ev: Any = h2conn
            self._errors: tuple = (h2conn.ProtocolError,)
        else:
            self.conn, self._ev, error = _h2_package_connection(limits, HIGH_WATER)
            self._errors = (error,)
        # PERF: one table per codec, shared by its connections (no bound methods each)
        handlers = _HANDLERS.get(self._ev)
        if handlers is None:
            ev = self._ev
            cls = H2Protocol
            handlers = _HANDLERS[ev] = {
                ev.RequestReceived: cls._on_request, ev.DataReceived: cls._on_data,
                ev.StreamEnded: cls._on_ended, ev.StreamReset: cls._on_reset,
                ev.WindowUpdated: cls._on_window, ev.RemoteSettingsChanged: cls._on_settings,
                ev.PingReceived: cls._on_ping, ev.ConnectionTerminated: cls._on_terminated}
        self._handlers: dict[type, Any] = handlers
        self.streams: dict[int, H2Stream] = {}
        # PERF: the header lists of plain 200s, by (content type, length), for one date
        self._simple_heads: dict[tuple[bytes, int], tuple[bytes, bytes, list, tuple]] = {}
        self._cached_heads = CODEC == "ember"
        # NOTE: what the app answers with, asked for once (dispatch decided once, issue 24)
        self._resolve, dispatch, _ = app._connection_interface()
        # NOTE: the app's own resolve (not an override): Request built and routed by
        # new_request with the resolve's own app and router, exactly what it would do
        func = getattr(self._resolve, "__func__", None)
        owner = getattr(self._resolve, "__self__", None)
        plain = func is not None and func.__module__ == "ember.app" \
            and func.__qualname__ == "Ember._resolve"
        self._route_app = owner if plain else None
        self._router = owner.router if plain else None
        self.exchange = Exchange(app, dispatch, decided_kinds(dispatch, state), state)
        self.transport: Any = None
        self.closed = False
        # NOTE: the write side of the same flow control as HTTP/1.1 and WebSocket; reading
        # is paused by HTTP/2's own windows, never by the transport.
        self.flow = FlowControl(None)
        self.loop = asyncio.get_event_loop()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        # Rapid Reset guard: a token bucket of resets/refusals (see ServerLimits).
        self._reset_tokens = float(limits.http2_reset_burst)
        self._reset_stamp = self.loop.time()
        # Control replies (PING/SETTINGS ACK, RST_STREAM) queued while writing is paused.
        self._pending_control = 0
        self._lingering: set[int] = set()
        self._flush_scheduled = False
        self._body_bytes = 0  # DATA payload received on this connection (min_body_rate)
        self._outbound_limit = (OUTBOUND_BASE
                                + limits.http2_max_concurrent_streams * OUTBOUND_PER_STREAM)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        if self.peer is None:
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and len(peer) >= 2:
                self.peer = (str(peer[0]), int(peer[1]))
        self.state.connections.add(self)
        self.conn.initiate_connection()
        self.flush()
        self._arm_idle()

    def start_upgraded(self, settings_header: bytes, cycle: Any) -> None:
        """``Upgrade: h2c``: stream 1 is the HTTP/1.1 request that asked for it (its
        cycle, body complete, moves over to this connection)."""
        self.conn.initiate_upgrade_connection(settings_header)
        self.flush()
        stream = H2Stream(self, 1, cycle)
        cycle.request.http_minor = 2
        self.streams[1] = stream
        self._run(stream)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.conn.receive_data(data)
        except self._errors as exc:
            logger.debug("HTTP/2 protocol error: %s", exc)
            code = getattr(exc, "error_code", None) or _frames.PROTOCOL_ERROR
            self._goaway(code)
            return
        # PERF: one dict lookup per event (exact classes: the codecs' events are final)
        handlers = self._handlers
        for event in events:
            if self.closed:
                return
            handler = handlers.get(type(event))
            if handler is not None and handler(self, event):
                return
        # NOTE: with the answers of this read (the handlers' first steps run before it)
        self.flush_soon()

    def _on_request(self, event: Any) -> bool:
        self._request(event)
        return False

    def _on_data(self, event: Any) -> bool:
        self._data(event)
        return False

    def _on_ended(self, event: Any) -> bool:
        self._lingering.discard(event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            self._body_done(stream)
            stream.cycle.finish()
        return False

    def _on_reset(self, event: Any) -> bool:
        self._lingering.discard(event.stream_id)
        self._reset(event.stream_id)
        self._control_reply()
        self._charge_reset()
        return False

    def _on_window(self, event: Any) -> bool:
        self._window_opened(event.stream_id)
        return False

    def _on_settings(self, event: Any) -> bool:
        self._control_reply()
        self._window_opened(0)
        return False

    def _on_ping(self, event: Any) -> bool:
        self._control_reply()
        return False

    def _on_terminated(self, event: Any) -> bool:
        self.flush()
        self._close()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for stream in list(self.streams.values()):
            self._cancel(stream)
        self.streams.clear()
        self.flow.connection_lost()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self._pending_control = 0
        self.flow.resume_writing()

    @property
    def write_paused(self) -> bool:
        """True while the transport's write buffer is over its high-water mark."""
        return self.flow.write_paused

    # -- requests ----------------------------------------------------------------------

    def _request(self, event: Any) -> None:
        method, path, scheme, headers, size = split_request(event.headers, self.scheme)
        sid = event.stream_id
        if self._open_count() >= self.limits.http2_max_concurrent_streams:
            # RFC 9113 §5.1.2: refuse only this stream; the client may retry it.
            self._rst(sid, _frames.REFUSED_STREAM)
            self._charge_reset()
            return
        if method is None or path is None or (not path.startswith(b"/") and path != b"*"):
            self._refuse(sid, 400, reason="missing or invalid :method or :path",
                         head=method == "HEAD")
            return
        if len(path) > self.limits.max_url_size:
            self._refuse(sid, 414, reason="request target too long", head=method == "HEAD")
            return
        if len(headers) > self.limits.max_headers or size > self.limits.max_header_size:
            self._refuse(sid, 431, reason="request header section too large",
                         head=method == "HEAD")
            return
        cycle = Cycle(None)
        if self._router is not None:
            # PERF: built and routed in one compiled call, as HTTP/1.1 does
            request = new_request(method, path, headers, 2, self.peer, scheme, cycle,
                                  self._route_app, self._router)
            route = request.route
        else:
            request = Request(method, path, headers, 2, None, self.peer, scheme, cycle)
            route = self._resolve(request)
        cycle.request = request
        cycle.head_only = method == "HEAD"
        stream = H2Stream(self, sid, cycle)
        self.streams[sid] = stream
        limit = self.limits.max_body_size
        if route is not None and route.max_body_size is not None:
            limit = route.max_body_size
        cycle.limit = limit
        if limit is not None:
            # PERF: the raw field list, not request.headers (no Headers per request);
            # the codec has checked that every content-length field is a number.
            for name, value in headers:
                if name == b"content-length":
                    if value.isdigit() and int(value) > limit:
                        self._refuse(sid, 413, stop=False, head=cycle.head_only,
                                     reason=f"request body exceeds {limit} bytes")
                        return
                    break
        if event.stream_ended is not None:
            cycle.finish()
        else:
            self._body_progress(stream)
            self._rate_start(stream)
        self._run(stream)

    def _open_count(self) -> int:
        """Streams open in the protocol: those with a handler and those answered but
        never ended by the client (half-closed, still holding memory: issue #23 item 3)."""
        lingering = self._lingering
        if lingering and len(self.streams) + len(lingering) >= \
                self.limits.http2_max_concurrent_streams:
            proto = self.conn.streams
            for sid in [sid for sid in lingering
                        if sid not in proto or not proto[sid].open]:
                lingering.discard(sid)
        return len(self.streams) + len(lingering)

    def _linger(self, stream_id: int) -> None:
        """Ember is done with ``stream_id``; it counts while the client keeps it open."""
        proto_stream = self.conn.streams.get(stream_id)
        if proto_stream is not None and proto_stream.open:
            self._lingering.add(stream_id)

    def _data(self, event: Any) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        cycle = stream.cycle
        cycle.received += len(event.data)
        self._body_bytes += len(event.data)
        limit = cycle.limit
        if limit is not None and cycle.received > limit:
            cycle.fail_body(413, f"request body exceeds {limit} bytes")
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            # NOTE: the stream ends here, so its handler is cancelled (MadeYouReset,
            # CVE-2025-8671: an ended stream must stop counting *and* stop working).
            self._refuse(stream.id, 413, reason=f"request body exceeds {limit} bytes",
                         head=cycle.head_only)
            return
        self._body_progress(stream)
        cycle.feed(event.data)
        stream.unacked += event.flow_controlled_length
        if cycle.buffered < HIGH_WATER // 2:
            self.ack(stream, stream.unacked)

    def ack(self, stream: H2Stream, amount: int) -> None:
        """Re-open ``amount`` bytes of receive window."""
        if amount and not self.closed and not stream.gone:
            stream.unacked -= amount
            try:
                self.conn.acknowledge_received_data(amount, stream.id)
            except self._errors:  # the stream closed meanwhile
                return
            self.flush_soon()

    def _run(self, stream: H2Stream) -> None:
        """Hand the stream's cycle to the exchange core; its timeout on a timer."""
        cycle = stream.cycle
        timeout = self.limits.request_timeout
        route = cycle.request.route
        if route is not None and route.timeout is not None:
            timeout = route.timeout
        if self.exchange.start(cycle) is not None and timeout is not None \
                and cycle.state == RUNNING:
            cycle.timeout = self.loop.call_later(timeout, self.exchange.timeout, cycle)

    def _release(self, stream: H2Stream) -> None:
        """Ember is done with ``stream`` (answered, or failed with nobody to answer)."""
        stream.ended = True
        if self.streams.pop(stream.id, None) is stream and not self.closed:
            self._linger(stream.id)
        if not self.streams:
            self._arm_idle()

    def _refuse(self, stream_id: int, status: int, stop: bool = True, *, reason: str = "",
                head: bool = False) -> None:
        """Answer ``status`` and end the stream (its handler is cancelled); the body is
        ``{"detail": reason}`` as on HTTP/1.1 (none for HEAD, or if the window is shut).

        A stream whose response head already went out is reset instead.  With ``stop``, a
        client still sending is asked to stop (``RST_STREAM(NO_ERROR)``, RFC 9113 §8.1) so
        the stream stops counting; without it (a declared length over the limit: the client
        sends what it announced) the stream counts until the client ends it — some clients
        (httpx) fail a request on that reset.
        """
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.responded:
            self._rst(stream_id, _frames.CANCEL)
        else:
            try:
                self._send_refusal(stream_id, status, reason, head)
            except self._errors:  # the stream is already closed or reset
                pass
            else:
                proto_stream = self.conn.streams.get(stream_id)
                if proto_stream is not None and proto_stream.open:
                    if stop:
                        # RFC 9113 §8.1: a complete response before the whole request; ask
                        # the client to stop sending (NO_ERROR) so the stream stops counting.
                        self._rst(stream_id, _frames.NO_ERROR)
                    else:
                        self._lingering.add(stream_id)
        if stream is not None:
            self._cancel(stream)
        self.flush()

    def _rst(self, stream_id: int, code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, code)
        except self._errors:  # already closed
            pass
        self._control_reply()

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            self._cancel(stream)

    def _cancel(self, stream: H2Stream) -> None:
        """The stream ended (either side): its handler stops and its memory goes."""
        if stream.unacked and not self.closed:
            # NOTE: body bytes withheld from a handler that will never read them: give the
            # connection window back, or resets would shrink it to nothing.
            amount, stream.unacked = stream.unacked, 0
            try:
                self.conn.acknowledge_received_data(amount, stream.id)
            except self._errors:
                pass
        stream.gone = stream.ended = True
        self._body_done(stream)
        cycle = stream.cycle
        cycle.lost()
        handle = cycle.timeout
        if handle is not None:
            handle.cancel()
            cycle.timeout = None
        task = cycle.task
        if task is not None and not task.done():
            try:
                current = asyncio.current_task(self.loop)
            except RuntimeError:  # no running loop (called from connection_lost at close)
                current = None
            if task is not current:
                task.cancel()
        waiter = stream.window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.streams:
            self._arm_idle()

    # -- lifecycle ----------------------------------------------------------------------

    def _arm_idle(self) -> None:
        """No stream is left: the idle clock starts now.

        PERF: one connection timer, re-armed lazily: going idle only stamps the time;
        a timer already armed checks the stamp when it fires (no timer per stream).
        """
        if self.closed:
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(
                self._idle_since + self.limits.keep_alive_timeout, self._idle_timeout)

    def _idle_timeout(self) -> None:
        self._idle_timer = None
        if self.streams or self.closed:
            return  # NOTE: busy: re-armed when the last stream is released
        due = self._idle_since + self.limits.keep_alive_timeout
        if self.loop.time() < due:
            self._idle_timer = self.loop.call_at(due, self._idle_timeout)
            return
        self.shutdown()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY; idle connections close now."""
        try:
            self.conn.close_connection()
            self.flush()
        except self._errors:  # the connection is already closing
            pass
        if not self.streams:
            self._close()

    def abort(self) -> None:
        """Hard stop."""
        self.closed = True
        for stream in list(self.streams.values()):
            self._cancel(stream)
        self.streams.clear()
        if self.transport is not None:
            self.transport.abort()
