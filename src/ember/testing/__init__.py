"""A test client that drives the app through the real parser and protocol.

Each request travels over a socket pair into the very ``HttpProtocol`` the
server uses, so framing, limits, keep-alive and streaming behave exactly as
in production, with no network and no port.  The client is synchronous by
default (a private event loop runs in a background thread) and asynchronous
inside ``async with app.test_client() as client`` (every method then returns
an awaitable and runs on the caller's loop)::

    with app.test_client() as client:
        assert client.get("/hello").text == "Hello, World!"

    async with app.test_client() as client:
        r = await client.post("/items", json={"name": "x"})
        async with client.stream("GET", "/events") as r:
            async for event in r.aiter_events():
                ...

The package, one job per module: ``_response`` (:class:`TestResponse`), ``_websocket``
(the client side of a WebSocket), ``_client`` (:class:`TestClient`), ``_live``
(:class:`LiveServer`, a real server on a free port for URL-based clients).
"""

from __future__ import annotations

from ember.testing._client import TestClient
from ember.testing._live import LiveServer
from ember.testing._response import TestResponse
from ember.testing._websocket import TestWebSocket, WebSocketRejected

# NOTE: the public classes keep the module users import them from (tracebacks, reprs)
for _cls in (LiveServer, TestClient, TestResponse, TestWebSocket, WebSocketRejected):
    _cls.__module__ = "ember.testing"
del _cls

__all__ = ["LiveServer", "TestClient", "TestResponse", "TestWebSocket", "WebSocketRejected"]
