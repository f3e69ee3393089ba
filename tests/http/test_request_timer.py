"""``request_timeout`` is checked by the connection's one timer, not a TimerHandle per request.

The deadline of the running request is a number the connection timer re-checks
lazily (as the body timer does): no timer is created or cancelled per request, and the
timeout still fires on time, per request of a pipeline, with or without a body being
read, and not after the handler answered.  Fake clock: no sleeping, no wall-clock
assertions.
"""

from __future__ import annotations

import asyncio

from ember import Ember, Request
from ember.limits import RouteLimits, ServerLimits
from tests.http.fake import Conn

gate: dict[str, asyncio.Event] = {}


def make_app(**limits) -> Ember:
    app = Ember(server_limits=ServerLimits(**limits), openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "hi"

    @app.get("/wait/{name}")
    async def wait(name: str):
        await gate[name].wait()
        return name

    @app.post("/read")
    async def read(request: Request):
        return await request.body()

    @app.get("/route-timeout", limits=RouteLimits(timeout=1))
    async def route_timeout():
        await asyncio.Event().wait()

    return app


def test_no_timer_per_request_while_handlers_answer() -> None:
    conn = Conn(make_app(request_timeout=30, keep_alive_timeout=5))
    try:
        created = []
        real_call_at = conn.loop.call_at

        def counting_call_at(*args, **kwargs):
            created.append(args[0])
            return real_call_at(*args, **kwargs)

        conn.loop.call_at = counting_call_at  # type: ignore[method-assign]
        for _ in range(50):
            conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        assert conn.statuses() == [200] * 50
        assert len(created) <= 1  # the idle timer armed at most once more, not 50 times
        assert len(conn.loop.pending_timers()) == 1  # only the connection's timer
    finally:
        conn.close()


def test_the_timeout_fires_for_each_request_of_a_pipeline() -> None:
    gate["a"], gate["b"] = asyncio.Event(), asyncio.Event()
    conn = Conn(make_app(request_timeout=3, keep_alive_timeout=100))
    try:
        conn.send(b"GET /wait/a HTTP/1.1\r\nhost: x\r\n\r\nGET /wait/b HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.advance(2)
        gate["a"].set()  # the first answers in time
        conn.settle()
        assert conn.statuses() == [200]
        conn.advance(2)  # 4 s since the start, 2 s into the second request
        assert conn.statuses() == [200]
        conn.advance(1.5)  # 3.5 s into the second request
        assert conn.statuses() == [200, 504]
        assert conn.closed
    finally:
        conn.close()


def test_an_answer_in_time_disarms_the_deadline() -> None:
    gate["c"] = asyncio.Event()
    conn = Conn(make_app(request_timeout=3, keep_alive_timeout=100))
    try:
        conn.send(b"GET /wait/c HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.advance(2.5)
        gate["c"].set()
        conn.settle()
        conn.advance(10)  # long after the old deadline: no late 504
        assert conn.statuses() == [200]
        assert not conn.closed
        conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        assert conn.statuses() == [200, 200]
    finally:
        conn.close()


def test_timeout_while_the_handler_reads_a_slow_body() -> None:
    conn = Conn(make_app(request_timeout=3, body_timeout=2, keep_alive_timeout=100))
    try:
        conn.send(b"POST /read HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")
        for _ in range(3):  # the body trickles in: body_timeout never expires
            conn.advance(1)
            conn.send(b"a")
        conn.advance(0.5)
        assert conn.statuses() == [504]  # 3.5 s after the start
        assert conn.closed
    finally:
        conn.close()


def test_a_route_timeout_without_a_server_timeout() -> None:
    conn = Conn(make_app(keep_alive_timeout=100))
    try:
        conn.send(b"GET /route-timeout HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.advance(0.5)
        assert conn.statuses() == []
        conn.advance(1)
        assert conn.statuses() == [504]
    finally:
        conn.close()


def test_request_timeout_on_a_real_server(serve) -> None:
    import httpx

    app = Ember(server_limits=ServerLimits(request_timeout=0.2), openapi_url=None)

    @app.get("/forever")
    async def forever():
        await asyncio.Event().wait()

    @app.get("/quick")
    async def quick():
        return "quick"

    url = serve(app)
    with httpx.Client(timeout=30) as client:  # NOTE: the timeout only guards a hang
        for _ in range(3):  # kept-alive requests in between do not move the deadline
            assert client.get(url + "/quick").text == "quick"
        response = client.get(url + "/forever")
        assert response.status_code == 504
        assert "did not answer in time" in response.text
        assert client.get(url + "/quick").text == "quick"  # a new connection is fine
