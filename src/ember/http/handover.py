"""How an HTTP/1.1 connection stops being one (pure Python: once per connection at most).

:class:`~ember.http.protocol.HttpProtocol` keeps the life of a connection; what ends
it as HTTP/1.1 lives here, as functions of the connection:

* handed to HTTP/2: ALPN ``h2`` or the prior-knowledge preface (:func:`switch_to_h2`),
  or an ``Upgrade: h2c`` request that becomes stream 1 (:func:`upgrade_h2c`);
* handed to another protocol by an explicit :class:`~ember.http.sink.Upgrade` (a
  WebSocket's ``accept()``; :func:`upgrade`), whose end releases the slot;
* lost: every cycle it carried is released (:func:`release`);
* stopped by the server: :func:`shutdown` (graceful) and :func:`abort` (hard).
"""

from __future__ import annotations

from typing import Any

from ember.http.cycle import BODY_COMPLETE, DONE, ERROR, SENDING

_H2C_101 = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"


def h2_preface(proto: Any, data: bytes) -> bool:
    """An idle connection of an HTTP/2 server got bytes starting with ``PRI``: True
    when they are (the start of) the prior-knowledge preface, consumed here."""
    from ember.http.h2 import PREFACE

    head = proto._held + data
    if not PREFACE.startswith(head[:len(PREFACE)]):
        return False
    if len(head) < len(PREFACE):
        proto._held = head  # NOTE: wait for the rest of the preface
        return True
    proto._held = b""
    switch_to_h2(proto, head)
    return True


def _new_h2(proto: Any) -> Any:
    from ember.http.h2 import H2Protocol

    proto._cancel_timers()
    proto._state.connections.discard(proto)
    h2proto = H2Protocol(proto._app, proto._state, proto._limits, proto._scheme, proto._peer)
    proto._h2 = h2proto
    proto._transport.set_protocol(h2proto)
    return h2proto


def switch_to_h2(proto: Any, data: bytes) -> Any:
    """Hand the transport to an HTTP/2 protocol (ALPN h2 or prior knowledge)."""
    h2proto = _new_h2(proto)
    h2proto.connection_made(proto._transport)
    proto._parser = None
    if data:
        h2proto.data_received(data)
    return h2proto


def upgrade_h2c(proto: Any, cycle: Any, upgrade: bytes) -> bool:
    """``Upgrade: h2c`` (RFC 7540 §3.2): True when ``cycle``, the only request
    of an HTTP/2 server's connection, was answered 101 and became HTTP/2 stream 1;
    False (nothing done) to serve it as HTTP/1.1."""
    queue = proto._queue
    if upgrade.strip().lower() != b"h2c" or cycle.body_state != BODY_COMPLETE \
            or len(queue) != 1 or proto._current is not None:
        return False
    from ember.http.h2 import h2c_settings

    settings = h2c_settings(cycle.request.headers, proto._scheme)
    if settings is None:
        return False  # NOTE: served as HTTP/1.1
    queue.pop()
    proto._flush()
    proto._transport.write(_H2C_101)
    h2proto = _new_h2(proto)
    transport = proto._transport
    h2proto.transport = transport
    proto._state.connections.add(h2proto)
    h2proto.start_upgraded(settings, cycle)
    rest = proto._parser.take_buffer() if proto._parser is not None else b""
    proto._parser = None
    if rest:
        proto._loop.call_soon(h2proto.data_received, rest)
    return True


def upgrade(proto: Any, cycle: Any, upgrade: Any) -> Any:
    """Write the 101 head and hand the transport to ``upgrade.protocol``."""
    proto._flush()
    cycle.keep_alive = False
    cycle.state = SENDING
    proto._cancel_timers()
    transport = proto._transport
    transport.write(upgrade.head)
    proto._exchange.log(cycle, 101, 0)  # NOTE: the exchange ends here for HTTP

    def lost(exc: Any) -> None:
        _upgraded_lost(proto, exc)

    protocol = upgrade.protocol(transport, lost)
    proto._upgraded = upgrade
    transport.set_protocol(protocol)
    rest = proto._parser.take_buffer() if proto._parser is not None else b""
    flow = proto._flow
    if flow.read_paused:
        flow.read_paused = 0
        transport.resume_reading()
    if rest:
        proto._loop.call_soon(protocol.data_received, rest)
    return protocol


def _upgraded_lost(proto: Any, exc: Any) -> None:
    """The upgraded connection ended: release this connection's slot."""
    cycle = proto._current
    task = None
    if cycle is not None:
        task, cycle.task = cycle.task, None
    proto.connection_lost(exc)
    if task is not None and not task.done():
        # NOTE: a grace second lets a handler blocked in receive() see
        # WebSocketDisconnect; one stuck elsewhere is cancelled.
        proto._loop.call_later(1.0, task.cancel)


def release(cycle: Any) -> None:
    """The connection is gone: wake the body reader, stop the handler."""
    cycle.lost()
    cycle.request = None
    if cycle.state < DONE:
        cycle.state = ERROR
    handle = cycle.timeout
    if handle is not None:
        handle.cancel()
        cycle.timeout = None
    task = cycle.task
    if task is not None and not task.done():
        task.cancel()


def shutdown(proto: Any) -> None:
    """Graceful stop: idle connections close now, busy ones after their response."""
    if proto._upgraded is not None:
        proto._upgraded.shutdown()
        return
    proto._state.shutting_down = True
    current = proto._current
    if current is None and not proto._queue and proto._receiving is None:
        proto._close()
        return
    if current is not None:
        current.keep_alive = False
    for cycle in proto._queue:
        cycle.keep_alive = False


def abort(proto: Any) -> None:
    """Hard stop after the grace period."""
    current = proto._current
    if current is not None and current.task is not None and not current.task.done():
        current.task.cancel()
    if not proto.closed:
        proto.closed = True
        if proto._flow is not None:
            proto._flow.closed = True
        proto._transport.abort()
