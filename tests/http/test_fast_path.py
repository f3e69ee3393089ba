"""The protocol's response fast path is invisible to user code.

A plain ``async def`` handler (no middleware, cache, ``status_code=``...) is
called by the protocol itself and a ``str``/``bytes``/``dict``/``list`` return
is encoded in one C buffer (``encode_result``).  These tests run the same
requests with the fast path on and off (``ServerState.fast_path``) and demand
the same bytes on the wire, the same Task semantics, the same errors and the
same disconnect behaviour; ``tests/test_pure_python_mode.py`` re-runs them
with the pure-Python twins.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from ember import Ember, Request, Response
from ember.exceptions import HTTPException
from ember.http.protocol import ServerState
from tests.http.fake import Conn

DATE = b"date: Mon, 30 Nov 2026 06:00:00 GMT\r\n"
var: contextvars.ContextVar[str] = contextvars.ContextVar("fast_var", default="unset")
seen: dict[str, object] = {}


def make_app() -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/unicode")
    async def unicode():
        return "héllo ✓"

    @app.get("/empty")
    async def empty():
        return ""

    @app.get("/bytes")
    async def raw():
        return b"\x00\x01binary"

    @app.get("/json")
    async def json_():
        return {"message": "Hello, World!", "n": [1, 2.5, None, True]}

    @app.get("/list")
    async def list_():
        return [1, "two", {"three": 3}]

    @app.get("/users/{id:int}")
    async def user(id: int):
        return {"id": id}

    @app.get("/req")
    async def req(request: Request):
        return request.path

    @app.get("/none")
    async def none():
        return None

    @app.get("/tuple")
    async def tuple_():
        return "created", 201

    @app.get("/response")
    async def response():
        return Response(b"r", headers={"x-a": "1"})

    @app.get("/int")
    async def int_():
        return 42

    @app.get("/subclass")
    async def subclass():
        class S(str):
            pass

        return S("sub")

    @app.get("/boom")
    async def boom():
        raise ValueError("boom")

    @app.get("/http-error")
    async def http_error():
        raise HTTPException(404, "nope")

    @app.get("/unserialisable")
    async def unserialisable():
        return {"x": object()}

    @app.get("/task")
    async def task():
        async with asyncio.timeout(5):  # needs a current Task on the first line
            seen["task"] = asyncio.current_task()
            seen["var"] = var.get()
        await asyncio.sleep(0)
        return {"task": asyncio.current_task() is seen["task"]}

    @app.get("/status", status_code=202)
    async def status():
        return "accepted"

    @app.post("/post")
    async def post():
        return "ignored the body"

    @app.get("/wait")
    async def wait():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        return "never"

    return app


REQUESTS = [
    b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /unicode HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /bytes HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /users/42 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /users/abc HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /req?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /tuple HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /response HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /int HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /subclass HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /http-error HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /unserialisable HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"GET /hello HTTP/1.0\r\n\r\n",
    b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    # a body the handler never reads: the connection must close after the answer
    b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234",
]


def exchange(data: bytes, fast: bool, chunks: int = 1) -> tuple[bytes, bool, dict]:
    state = ServerState()
    state.fast_path = fast
    state.date_header = DATE
    conn = Conn(make_app(), state=state)
    try:
        step = max(1, len(data) // chunks)
        for i in range(0, len(data), step):
            conn.send(data[i:i + step])
        return conn.output, conn.closed, dict(state.fast_routes)
    finally:
        conn.close()


@pytest.mark.parametrize("request_bytes", REQUESTS, ids=lambda r: r.split(b"\r\n")[0].decode())
def test_same_bytes_with_and_without_the_fast_path(caplog, request_bytes):
    fast_out, fast_closed, _ = exchange(request_bytes, True)
    slow_out, slow_closed, _ = exchange(request_bytes, False)
    assert fast_out == slow_out
    assert fast_closed == slow_closed
    assert fast_out.startswith(b"HTTP/1.1 ")


def test_same_bytes_pipelined_and_split(caplog):
    keep = [r for r in REQUESTS if b"close" not in r.lower() and b"HTTP/1.0" not in r
            and b"/post" not in r]
    data = b"".join(keep)
    fast_out, _, _ = exchange(data, True)
    assert fast_out == exchange(data, False)[0]
    assert fast_out.count(b"HTTP/1.1 ") == len(keep)
    assert fast_out == exchange(data, True, chunks=7)[0]  # any split of the byte stream


def test_the_fast_path_is_taken_exactly_for_plain_handlers(caplog):
    _, _, routes = exchange(b"".join(REQUESTS[:21]), True)
    kinds = {route.path: kind for route, kind in routes.items()}
    assert kinds["/hello"] == 1 and kinds["/json"] == 1
    assert kinds["/req"] == 2 and kinds["/users/{id:int}"] == 3
    assert kinds["/status"] == 0  # status_code= goes through the route's own _finish
    _, _, off = exchange(REQUESTS[0], False)
    assert off == {}


def test_fast_handler_runs_in_its_task():
    seen.clear()
    out, _, routes = exchange(b"GET /task HTTP/1.1\r\nHost: x\r\n\r\n", True)
    assert out.endswith(b'{"task":true}')
    assert isinstance(seen["task"], asyncio.Task)
    assert seen["var"] == "unset"
    assert [k for r, k in routes.items() if r.path == "/task"] == [1]


def test_middleware_turns_the_fast_path_off_and_its_contextvars_reach_the_handler():
    app = make_app()

    @app.middleware_
    async def set_var(request, call_next):
        var.set("from-middleware")
        response = await call_next(request)
        response.headers["x-mw"] = "1"
        return response

    seen.clear()
    state = ServerState()
    conn = Conn(app, state=state)
    try:
        conn.send(b"GET /task HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.output.count(b"x-mw: 1\r\n") == 2
        assert seen["var"] == "from-middleware"
        assert state.fast_routes == {}
    finally:
        conn.close()


@pytest.mark.parametrize("fast", [True, False])
def test_disconnect_cancels_a_waiting_fast_handler(fast):
    seen.clear()
    state = ServerState()
    state.fast_path = fast
    conn = Conn(make_app(), state=state)
    conn.send(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.output == b""
    conn.eof()
    assert seen.get("cancelled") is True
    assert conn.closed
    conn.close()  # fails on a leaked Task or timer


@pytest.mark.parametrize("fast", [True, False])
def test_handler_exception_is_logged_and_answered_500(caplog, fast):
    out, closed, _ = exchange(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", fast)
    assert out.startswith(b"HTTP/1.1 500 ")
    assert not closed
    assert "boom" in caplog.text


def test_access_log_turns_the_fast_path_off():
    state = ServerState(access_log=True)
    conn = Conn(make_app(), state=state)
    try:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.output.endswith(b"Hello, World!")
        assert state.fast_routes == {}
    finally:
        conn.close()


def test_real_socket_same_bytes_with_and_without_the_fast_path(server_factory, caplog):
    """Over a real socket and the real worker: the same answers either way."""
    import re

    from tests.conftest import raw_exchange

    server = server_factory(make_app())
    wire = b"".join([
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /task HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /users/7 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ])

    def exchange() -> bytes:
        out = raw_exchange(server.url, wire, timeout=10)
        return re.sub(rb"date: [^\r]*\r\n", b"date: -\r\n", out)

    fast = exchange()
    assert {r.path: k for r, k in server.state.fast_routes.items()}["/hello"] == 1
    server.state.fast_path = False
    server.state.fast_routes.clear()
    slow = exchange()
    assert server.state.fast_routes == {}
    assert fast == slow
    assert fast.count(b"HTTP/1.1 ") == 7
    assert b'{"task":true}' in fast


def test_an_app_that_overrides_its_dispatch_never_takes_the_fast_path():
    class Wrapped(Ember):
        async def _handle(self, req):
            response = await super()._handle(req)
            response.headers["x-wrapped"] = "1"
            return response

    app = Wrapped(openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "Hello"

    state = ServerState()
    conn = Conn(app, state=state)
    try:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"x-wrapped: 1\r\n" in conn.output
        assert list(state.fast_routes.values()) == [0]
    finally:
        conn.close()
