"""The sink: what a transport implements so the exchange core can answer through it.

One request's life — run the handler, answer, finish, fail, handler timeout, access
log, background task — exists once, in :mod:`ember.http.exchange`.  A transport
(HTTP/1.1 connection, HTTP/2 stream, HTTP/3 stream) only frames: it implements
:class:`Sink` and drives the core like this::

    socket ──> transport parser ──> Cycle (+ Request) ──> exchange core ──> handler
                                                              │
    socket <── transport framing <──────── Sink <── BodyWriter / whole response

1. When a request head is parsed, build a :class:`~ember.http.cycle.Cycle` whose
   ``conn`` is the sink (``Cycle(sink)``), and its :class:`~ember.requests.Request`
   (``cycle.request``).  Route it with the app's ``resolve`` (so per-route limits
   apply before the body is read); set ``cycle.limit``, ``cycle.head_only``
   (``HEAD``) and ``cycle.keep_alive``.
2. Feed the body through the cycle, never through the request: ``cycle.feed(data)``,
   ``cycle.finish()`` at its end, ``cycle.fail_body(status, reason)`` when it can
   never complete (``cycle.lost()`` when the client left).  The handler reads it
   through the cycle and calls back :meth:`Sink.body_consumed` (re-open a window /
   resume reading) and :meth:`Sink.send_continue`.
3. Start the exchange: ``exchange.start(cycle, answer, state)`` (``answer`` is the
   app's decided per-request callable, ``state`` the worker's
   :class:`~ember.http.state.ServerState`).  It returns the handler's Task (None
   when it already finished: eager tasks on 3.12+).  Cancel that Task when the
   stream is reset or the connection is lost (``cycle.lost()`` first).
4. A handler that runs past its deadline: the transport owns the clock (HTTP/1.1 folds
   it into its one connection timer) and calls ``exchange.timeout(cycle)``.
5. The core writes only through the sink methods below, and calls
   :meth:`Sink.exchange_done` exactly once when the cycle reached DONE (normal end)
   or :meth:`Sink.send_error` when it reached ERROR.

Every method takes the cycle it is about, so one object may serve many cycles (the
HTTP/1.1 connection is the sink of every request it carries, one at a time; an
HTTP/2 or HTTP/3 stream is the sink of its one request).  Framing decisions that
belong to the engine (``Content-Length`` / ``Transfer-Encoding`` / ``Connection``
conflicts, see :func:`ember.http.writer.app_framing`) are taken by the core *before*
:meth:`Sink.send_head`; what is left to the transport is its own wire (chunked
coding, HEADERS/DATA frames, END_STREAM).

A sink is any object with these methods (duck typing: HTTP/2 and HTTP/3 streams are
plain Python classes).  One that derives from :class:`~ember.http.sinkbase.SinkBase`
(the HTTP/1.1 connection, through :class:`~ember.http.h1sink.Http1Sink`) is called by
the compiled core through a C vtable: no Python method lookup per request.

The access log names the version from ``request.http_minor``: 0 and 1 are
``HTTP/1.x``, 2 is ``HTTP/2``, 3 is ``HTTP/3``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    """A transport's side of one exchange (see the module docstring)."""

    #: True once the client (connection or stream) is gone: writes raise
    #: :class:`~ember.exceptions.ClientDisconnect`, nothing more is sent.
    closed: bool

    #: The client's ``(host, port)``, or None (access log lines of requests whose head
    #: could not be parsed).
    peer: tuple[str, int] | None

    # -- the body being read (called by the Cycle) ----------------------------------

    def body_consumed(self, buffered: int) -> None:
        """The handler read body bytes; ``buffered`` remain: resume reading / re-open
        the receive window when low enough (read backpressure)."""

    def send_continue(self, request: Any) -> None:
        """The handler started reading a body sent with ``Expect: 100-continue``
        (HTTP/1.1 writes ``100 Continue``; multiplexed transports do nothing)."""

    # -- the response (called by the exchange core) -----------------------------------

    def send_result(self, cycle: Any, result: Any) -> bool:
        """Optional speed-up: send a handler's plain result (``str``, ``bytes``,
        ``dict``, ``list``...) encoded straight to the wire and return True, or return
        False (nothing sent; always when :attr:`closed`) so the core builds a
        Response.  Must send exactly what
        :meth:`send_response` would for ``to_response(result)``; may raise what
        encoding raises (the core answers the error, nothing having been sent)."""

    def send_response(self, cycle: Any, status: int, raw_headers: list, body: bytes,
                      content_length: int) -> Awaitable[None] | None:
        """A whole, non-streaming response (framing fields already checked by the core).

        ``content_length`` is what the head says: ``len(body)``, or the length of the
        GET when the app set it on a HEAD/304 response, or -1 (a status without body).
        Return None when it was queued at once, or an awaitable the core awaits
        (a transport with flow-control windows).  Raise ``ValueError`` for headers
        the wire cannot carry (the core turns it into a 500 before anything is sent).
        When ``cycle.head_only`` the body is not sent (``HEAD``)."""

    def send_head(self, cycle: Any, status: int, raw_headers: list,
                  content_length: int) -> None:
        """The head of a streaming response (``content_length`` -1: unknown).

        When ``cycle.head_only`` the response ends with its head."""

    async def send_body(self, cycle: Any, data: bytes) -> None:
        """Body bytes of a streaming response; waits while the peer does not accept
        more (write backpressure: transport buffer, flow-control window)."""

    async def send_file(self, cycle: Any, file: Any, offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``file`` zero-copy and return True, or return False
        (nothing sent) so the core reads the file and calls :meth:`send_body`."""

    def send_end(self, cycle: Any) -> None:
        """The streaming body is complete (last chunk, END_STREAM)."""

    def send_error(self, cycle: Any, status: int, reason: str) -> int:
        """The exchange failed (the one ERROR transition); stop the handler's Task.

        ``status`` 0: nobody to answer (the client left, or the handler was cancelled).
        Otherwise answer ``status`` with ``reason`` as text when no head was sent yet
        (``cycle.head_sent``); a response already under way must look cut (HTTP/1.1:
        close without the last chunk; HTTP/2 and 3: reset the stream).  Return the
        body bytes of the error answer sent (the core logs it), or -1 when none was."""

    def upgrade(self, cycle: Any, upgrade: Upgrade) -> Any:
        """Switch the connection to another protocol (an :class:`Upgrade`: a WebSocket's
        ``accept()``): flush, write ``upgrade.head`` (the 101 response), hand the
        transport to ``upgrade.protocol(transport, lost)`` and return that protocol.
        Transports that cannot switch (HTTP/2 and HTTP/3 streams) raise
        :class:`NotImplementedError` naming what is missing."""

    def exchange_done(self, cycle: Any) -> None:
        """The response is complete (cycle DONE): the next request may run, or the
        stream is released.  HTTP/1.1 keeps the connection only when
        ``cycle.keep_alive`` and the request body was read to its end."""


class Upgrade:
    """The explicit result of an exchange that leaves HTTP (RFC 9110 §7.8; RFC 6455 §4.2.2).

    Built by the feature that switches (``WebSocket.accept()``) and handed to the
    transport through ``request._upgrade(upgrade)`` -> :meth:`Sink.upgrade`, which acts on
    it: it writes ``head`` and makes ``protocol(transport, lost)`` the transport's
    protocol (``lost(exc)`` must be called by that protocol when the connection ends, so
    the server releases its slot).  ``shutdown()`` is called on a graceful server stop.
    The handler then returns the same object as its response: the exchange core logs the
    101 and writes nothing more (``streaming`` with an empty body, like any stream).
    """

    __slots__ = ("head", "protocol", "shutdown")

    status_code = 101
    streaming = True
    background = None

    def __init__(self, head: bytes, protocol: Callable[[Any, Callable[[Any], None]], Any],
                 shutdown: Callable[[], None]) -> None:
        self.head = head
        self.protocol = protocol
        self.shutdown = shutdown

    async def stream_to(self, out: Any) -> None:
        """Nothing: after the switch the connection is no longer HTTP."""
        return None


__all__ = ["Sink", "Upgrade"]
