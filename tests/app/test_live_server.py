"""ember.testing.LiveServer: a real server in a thread for URL-based clients."""

from __future__ import annotations

import socket

import httpx
import pytest

from ember import Ember
from ember.testing import LiveServer


def _app() -> Ember:
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "Hello"

    return app


def test_serves_then_stops_and_frees_the_port() -> None:
    with LiveServer(_app()) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/hello").text == "Hello"
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5)
    with socket.socket() as s:  # the listening socket was closed
        s.bind(("127.0.0.1", port))


def test_a_busy_port_raises_at_enter() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError), LiveServer(_app(), port=taken.getsockname()[1]):
            pass
