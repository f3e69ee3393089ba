"""WebSocket (RFC 6455) with permessage-deflate (RFC 7692).

``@app.websocket("/ws")`` registers a handler taking ``ws: WebSocket``::

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        async for message in ws:          # str for text, bytes for binary
            await ws.send_text(f"echo: {message}")

The HTTP connection is taken over after the 101 response: frames are parsed by
:class:`WebSocketProtocol` (our own framing: masking, fragmentation, control
frames, UTF-8 validation, size limits, close handshake), messages queue up for
``receive`` with read backpressure, sends wait for the transport to drain, and a
ping every ``ping_interval`` seconds closes a peer that stops answering.

The package, one job per module, each importing only those above it in this list:
``_errors`` (the exceptions), ``_codec`` (frames, close codes, permessage-deflate),
``_protocol`` (the connection's state machine after the 101), ``_socket`` (the
:class:`WebSocket` a handler uses), ``_routes`` (handshake checks, origin policy and
the ``@app.websocket`` route call).
"""

from __future__ import annotations

from ember.websockets._codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Deflate,
    accept_key,
    encode_frame,
    valid_close_code,
)
from ember.websockets._codec import _close_payload as _close_payload
from ember.websockets._codec import _mask as _mask
from ember.websockets._errors import InvalidMessage, WebSocketDisconnect, WebSocketError
from ember.websockets._errors import _WrongType as _WrongType
from ember.websockets._protocol import CLOSE_TIMEOUT, FRAME_BUDGET, WebSocketProtocol
from ember.websockets._routes import handshake_error, origin_allowed, websocket_call
from ember.websockets._socket import WebSocket

# NOTE: the public classes keep the module users import them from (tracebacks, reprs)
for _cls in (InvalidMessage, WebSocket, WebSocketDisconnect, WebSocketError, WebSocketProtocol, Deflate):
    _cls.__module__ = "ember.websockets"
del _cls

__all__ = [
    "CLOSE_TIMEOUT", "FRAME_BUDGET", "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG",
    "OP_TEXT", "Deflate", "InvalidMessage", "WebSocket", "WebSocketDisconnect",
    "WebSocketError", "WebSocketProtocol", "accept_key", "encode_frame", "handshake_error", "origin_allowed", "valid_close_code",
    "websocket_call",
]
