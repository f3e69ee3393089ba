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
import base64
import binascii
import logging
import os
from collections.abc import Awaitable
from typing import Any

from ember.exceptions import ClientDisconnect
from ember.http import h2conn
from ember.http.cycle import BODY_OPEN, RUNNING, Cycle
from ember.http.exchange import Exchange, decided_kinds
from ember.http.flow_control import FlowControl
from ember.http.frames import _impl as _frames
from ember.http.h2conn import split_request
from ember.requests import Request, new_request
from ember.responses import json_dumps
from ember.status import body_allowed

logger = logging.getLogger("ember.server")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# NOTE: which HTTP/2 codec serves connections: "ember" (ours: ember.http.h2conn, frames
# and hpack, compiled; the default) or "h2" (the h2 package, kept as a fallback and as the
# tests' oracle). Read at import; tests may set it.
CODEC = os.environ.get("EMBER_HTTP2_CODEC", "ember").strip().lower() or "ember"
HIGH_WATER = 256 * 1024
# NOTE: the most one stream writes before it waits for the transport to drain, and the
# bound on unsent bytes per connection: a fixed part plus that much per allowed stream.
# A peer that stops reading while it keeps opening/resetting streams passes it and is
# dropped (GOAWAY ENHANCE_YOUR_CALM); a reading peer never gets near it (docs/http2.md).
MAX_PIECE = 16384
OUTBOUND_BASE = 1024 * 1024
OUTBOUND_PER_STREAM = 20 * 1024
_CT_TEXT = b"text/plain; charset=utf-8"
_CT_OCTET = b"application/octet-stream"
_CT_JSON = b"application/json"
_STATUS = {code: str(code).encode() for code in range(100, 600)}
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                         b"upgrade", b"content-length"))


def _h2_package_connection(limits: Any) -> tuple[Any, Any, type]:
    """The ``h2`` package's connection (``EMBER_HTTP2_CODEC=h2``): conn, events, error."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings

    class _ServerSettings(h2.settings.Settings):
        """Our local settings, as sent on the wire, without h2's own stream-count check.

        NOTE: h2 turns the (N+1)th concurrent stream into a connection error
        (``TooManyStreamsError``) that cancels every running stream.  RFC 9113 §5.1.2
        lets a server refuse just the extra stream with ``RST_STREAM(REFUSED_STREAM)``,
        which clients retry; :meth:`H2Protocol._request` does that.
        """

        @property
        def max_concurrent_streams(self) -> int:
            return 2**31 - 1

    config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                       validate_inbound_headers=True)
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = _ServerSettings(
        client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                limits.http2_max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: HIGH_WATER,
        })
    return conn, h2.events, h2.exceptions.ProtocolError


def h2c_settings(headers: Any, scheme: str) -> bytes | None:
    """The ``HTTP2-Settings`` payload of a valid ``Upgrade: h2c`` request, or None.

    None — serve the request as HTTP/1.1 and ignore the upgrade — when the request
    came over TLS (h2c is cleartext only: RFC 9113 §3.1; an upgrade honoured over TLS
    is how h2c smuggling gets past proxies), when there is not exactly one
    ``HTTP2-Settings`` field (RFC 7540 §3.2.1), or when its value is not base64url
    (token68, padding optional) of a whole number of 6-byte settings.
    """
    if scheme != "http":
        return None
    values = headers.getall("http2-settings", [])
    if len(values) != 1:
        return None
    value = values[0].strip()
    if not value or any(c not in _BASE64URL for c in value.rstrip("=")):
        return None
    try:
        payload = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:
        return None
    return value.encode("ascii")


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


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

    def __init__(self, proto: H2Protocol, stream_id: int, cycle: Any) -> None:
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
        """Answer ``status`` (no body) if nothing was sent, else reset; release the
        stream and stop its handler (unless the handler itself failed)."""
        proto = self.proto
        if proto.streams.get(self.id) is not self:
            return -1  # already refused, reset or lost
        if status and not proto.closed:
            answered = not self.responded
            proto._refuse(self.id, status)
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


class H2Protocol(asyncio.Protocol):
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
            self.conn, self._ev, error = _h2_package_connection(limits)
            self._errors = (error,)
        ev = self._ev
        self._handlers: dict[type, Any] = {
            ev.RequestReceived: self._on_request, ev.DataReceived: self._on_data,
            ev.StreamEnded: self._on_ended, ev.StreamReset: self._on_reset,
            ev.WindowUpdated: self._on_window, ev.RemoteSettingsChanged: self._on_settings,
            ev.PingReceived: self._on_ping, ev.ConnectionTerminated: self._on_terminated}
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
            if handler is not None and handler(event):
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
            self._refuse(sid, 400)
            return
        if len(path) > self.limits.max_url_size:
            self._refuse(sid, 414)
            return
        if len(headers) > self.limits.max_headers or size > self.limits.max_header_size:
            self._refuse(sid, 431)
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
                        self._refuse(sid, 413, stop=False)
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
            self._refuse(stream.id, 413)
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

    def _refuse(self, stream_id: int, status: int, stop: bool = True) -> None:
        """Answer ``status`` with no body and end the stream (its handler is cancelled).

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
                self.conn.send_headers(stream_id, [(b":status", str(status).encode()),
                                                   (b"content-length", b"0")], end_stream=True)
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

    # -- abuse bounds ------------------------------------------------------------------

    def _charge_reset(self) -> None:
        """One stream reset by the client or refused by us: spend a token (Rapid Reset)."""
        now = self.loop.time()
        tokens = min(float(self.limits.http2_reset_burst),
                     self._reset_tokens + (now - self._reset_stamp) * self.limits.http2_reset_rate)
        self._reset_stamp = now
        if tokens < 1:
            logger.warning("HTTP/2 client %s reset or opened too many streams; GOAWAY "
                           "ENHANCE_YOUR_CALM", self.peer[0] if self.peer else "-")
            self._goaway(_frames.ENHANCE_YOUR_CALM)
            return
        self._reset_tokens = tokens - 1

    def _control_reply(self) -> None:
        """A control frame was queued for a peer; bound them while it does not read."""
        if self.write_paused:
            self._pending_control += 1
            if self._pending_control > self.limits.max_pending_control_frames:
                logger.warning("HTTP/2 client %s does not read its control replies; closing",
                               self.peer[0] if self.peer else "-")
                self.abort()

    def _goaway(self, code: int) -> None:
        """Send GOAWAY(code), cancel every stream and close the connection."""
        try:
            self.conn.close_connection(code)
        except self._errors:  # already closing
            pass
        self.flush()
        for stream in list(self.streams.values()):
            self._cancel(stream)
        self.streams.clear()
        self._close()

    def _body_progress(self, stream: H2Stream) -> None:
        """Body bytes arrived (or are awaited): push back the body deadline."""
        timeout = getattr(self.limits, "body_timeout", None)
        if timeout is None:
            return
        stream.body_deadline = self.loop.time() + timeout
        if stream.body_timer is None:
            stream.body_timer = self.loop.call_at(stream.body_deadline, self._body_check,
                                                  stream)

    def _body_check(self, stream: H2Stream) -> None:
        stream.body_timer = None
        if stream.gone or stream.cycle.body_state != BODY_OPEN:
            return
        if self.loop.time() < stream.body_deadline:  # NOTE: re-armed lazily, not per frame
            stream.body_timer = self.loop.call_at(stream.body_deadline, self._body_check,
                                                  stream)
            return
        if self.streams.get(stream.id) is stream:
            self._refuse(stream.id, 408)

    def _rate_start(self, stream: H2Stream) -> None:
        """Start the ``min_body_rate`` clock of an unfinished body (checked after the grace)."""
        rate = getattr(self.limits, "min_body_rate", None)
        if rate is None:
            return
        stream.rate_start = self.loop.time()
        stream.rate_base = 0
        stream.rate_conn_base = self._body_bytes
        stream.rate_timer = self.loop.call_later(rate[1], self._rate_check, stream)

    def _rate_check(self, stream: H2Stream) -> None:
        stream.rate_timer = None
        if stream.gone or stream.cycle.body_state != BODY_OPEN \
                or self.streams.get(stream.id) is not stream:
            return
        per_second = self.limits.min_body_rate[0]
        now = self.loop.time()
        need = per_second * (now - stream.rate_start)
        received = stream.cycle.received
        if stream.unacked:
            # NOTE: the window is held shut because the handler is not reading: the client
            # cannot send, so that time does not count against it.
            stream.rate_start = now
            stream.rate_base = received
            stream.rate_conn_base = self._body_bytes
        elif (received - stream.rate_base < need
              and self._body_bytes - stream.rate_conn_base < need):
            # NOTE: slow only if the whole connection is slow too: streams share the
            # connection window, so a busy connection may starve one stream for a while.
            logger.info("HTTP/2 stream %d: request body slower than %d bytes/s; 408",
                        stream.id, per_second)
            self._refuse(stream.id, 408)
            return
        stream.rate_timer = self.loop.call_later(1.0, self._rate_check, stream)

    @staticmethod
    def _body_done(stream: H2Stream) -> None:
        if stream.body_timer is not None:
            stream.body_timer.cancel()
            stream.body_timer = None
        if stream.rate_timer is not None:
            stream.rate_timer.cancel()
            stream.rate_timer = None

    # -- sending ---------------------------------------------------------------------

    def fits(self, stream: H2Stream, size: int) -> bool:
        """True when ``size`` body bytes can go out at once in one DATA frame."""
        if size > MAX_PIECE or self.closed or stream.gone or stream.ended:
            return False
        conn = self.conn
        try:
            return size <= conn.max_outbound_frame_size and \
                size <= conn.local_flow_control_window(stream.id)
        except self._errors:  # the stream closed meanwhile: the general path says so
            return False

    def send_simple(self, stream: H2Stream, content_type: bytes, body: bytes) -> bool:
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

    def send_headers(self, stream: H2Stream, status: int, raw_headers: list,
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

    async def send_data(self, stream: H2Stream, data: bytes, end: bool = False) -> None:
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

    async def _wait_send(self, stream: H2Stream, waiter: Awaitable[None]) -> None:
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

    def end_stream(self, stream: H2Stream) -> None:
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
