"""``ServerLimits.min_body_rate`` (issue 23): a request body trickled below the minimum
rate after the grace period gets 408 and the connection closes, beside
``body_timeout`` (the gap between reads).  Kestrel's MinRequestBodyDataRate.

Fake transport and hand-driven clock (deterministic, no sleeps), plus one real
server with real sockets.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from ember import Ember, Request, Response, ServerLimits
from ember.exceptions import ConfigError, HTTPException
from tests.conftest import RunningServer
from tests.http.fake import Conn

seen: dict[str, object] = {}


def make_app(**limits) -> Ember:
    app = Ember(server_limits=ServerLimits(**limits), openapi_url=None)

    @app.post("/read")
    async def read(request: Request):
        try:
            body = await request.body()
        except BaseException as exc:
            seen["read"] = exc
            raise
        return Response(body)

    @app.post("/stall")
    async def stall():
        await asyncio.Event().wait()

    @app.get("/hello")
    async def hello():
        return "hi"

    return app


@pytest.fixture(autouse=True)
def _clear():
    seen.clear()
    yield
    seen.clear()  # NOTE: an exception's frames hold the request (leak checks elsewhere)


CL_HEAD = b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
CHUNKED_HEAD = b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_default_is_on():
    assert ServerLimits().min_body_rate == (240, 5.0)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_trickle_under_the_rate_gets_408_and_close(framing):
    conn = Conn(make_app(body_timeout=60))
    conn.send(CL_HEAD if framing == "length" else CHUNKED_HEAD)
    piece = b"x" if framing == "length" else b"1\r\nx\r\n"
    for _ in range(4):  # a byte a second: never a 60 s gap, far under 240 bytes/s
        conn.advance(1)
        conn.send(piece)
    assert conn.statuses() == [] and not conn.closed  # the grace period
    conn.advance(2)
    assert conn.statuses() == [408] and conn.closed
    assert b"too slow" in conn.output
    exc = seen["read"]
    assert isinstance(exc, HTTPException) and exc.status_code == 408
    conn.close()


def test_a_body_at_the_rate_is_not_cut():
    conn = Conn(make_app(min_body_rate=(100, 2.0)))
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(8):
        conn.send(b"x" * 120)  # 120 bytes/s > 100
        conn.advance(1)
    assert conn.statuses() == []
    conn.send(b"x" * 40)
    assert conn.statuses() == [200] and not conn.closed
    conn.close()


def test_the_grace_period_allows_a_slow_start():
    conn = Conn(make_app(min_body_rate=(100, 5.0)))
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    conn.advance(4.5)  # nothing yet, within the grace period
    conn.send(b"x" * 1000)
    assert conn.statuses() == [200]
    conn.close()


def test_none_disables_it_and_body_timeout_still_applies():
    conn = Conn(make_app(min_body_rate=None, body_timeout=10))
    conn.send(CL_HEAD)
    for _ in range(30):
        conn.advance(5)
        conn.send(b"x")
    assert conn.statuses() == [] and not conn.closed
    conn.advance(11)
    assert conn.statuses() == [408] and b"body timeout" in conn.output
    conn.close()


def test_body_timeout_still_fires_first_on_a_silent_client():
    conn = Conn(make_app(min_body_rate=(1, 100.0), body_timeout=3))
    conn.send(CL_HEAD)
    conn.advance(3.5)
    assert conn.statuses() == [408] and b"body timeout" in conn.output
    conn.close()


def test_the_rate_clock_stops_while_we_pause_reading():
    conn = Conn(make_app(min_body_rate=(240, 1.0)))
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    conn.send(b"x" * 300_000)  # over the high-water mark: reading pauses (our doing)
    assert not conn.transport.reading
    conn.advance(60)
    assert not conn.closed and conn.statuses() == []
    conn.close()


def test_a_pipelined_request_after_a_slow_body_is_not_run():
    conn = Conn(make_app())
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    conn.advance(30)
    assert conn.statuses() == [408] and conn.closed
    conn.close()


@pytest.mark.parametrize("bad", [
    (0, 5), (-1, 5), (240,), (240, 5, 1), "240/5", 240, (240.5, 5), (True, 5), (240, -1),
    (240, float("nan")), (240, float("inf")), (240, "5"), ("240", 5), [None, None], (240, None),
])
def test_garbage_config_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="min_body_rate"):
        ServerLimits(min_body_rate=bad)


def test_valid_configs():
    assert ServerLimits(min_body_rate=(1, 0)).min_body_rate == (1, 0)
    assert ServerLimits(min_body_rate=None).min_body_rate is None
    assert ServerLimits().replace(min_body_rate=(500, 2.5)).min_body_rate == (500, 2.5)


def test_real_server_slow_sender_is_cut_and_others_are_served():
    server = RunningServer(make_app(min_body_rate=(240, 1.0)))
    try:
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        slow.sendall(CL_HEAD)
        got = b""
        for _ in range(40):  # hang guard: 40 * 0.25 s
            try:
                slow.settimeout(0.25)
                slow.sendall(b"x")
                chunk = slow.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 408 "), got
        slow.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as other:
            other.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        server.stop()
