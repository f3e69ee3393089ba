"""A speed trick never changes what user code observes (issue #24 part 3).

HTTP/2's fast paths (a plain result written as HEADERS + one DATA frame, one-frame bodies
queued without a coroutine, HPACK blocks reused, events dispatched by type, one idle
timer) must give the handler and the client exactly what the general path and HTTP/1.1
give: the same request (headers, body, query), the same response fields, contextvars
that never leak between streams, a handler cancelled by RST_STREAM, an exception
answered 500 and logged, the same access log line.  Real server, real sockets, the
httpx and h2 clients.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from ember import Ember, Request, Response

pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")
import h2.config
import h2.connection
import h2.events

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")
PATHS = ["/text", "/bytes", "/dict", "/list", "/unicode", "/custom", "/empty", "/status",
         "/big", "/users/7"]


def make_app() -> Ember:
    app = Ember()
    app.state.events = []

    @app.get("/text")
    async def text():
        return "Hello, World!"

    @app.get("/bytes")
    async def raw():
        return b"\x00\x01binary"

    @app.get("/dict")
    async def as_dict():
        return {"a": 1, "b": [1, 2, "é"]}

    @app.get("/list")
    async def as_list():
        return [1, "two", None]

    @app.get("/unicode")
    async def unicode():
        return "héllo ✓"

    @app.get("/custom")
    async def custom():
        return Response("made", headers={"x-made": "yes", "cache-control": "no-store"},
                        media_type="text/html")

    @app.get("/empty")
    async def empty():
        return b""

    @app.get("/status")
    async def status():
        return Response(b"created", status_code=201)

    @app.get("/big")
    async def big():
        return "x" * 70_000  # over one DATA frame and the initial window: the general path

    @app.get("/users/{id:int}")
    async def user(id: int):
        return {"id": id}

    @app.post("/echo")
    async def echo(request: Request):
        body = await request.body()
        return {"method": request.method, "path": request.path,
                "query": request.query_string.decode(), "body": body.decode(),
                "headers": sorted((k, v) for k, v in request.headers.items()
                                  if k not in ("connection", "keep-alive"))}

    @app.get("/ctx")
    async def ctx():
        before = SEEN.get()
        SEEN.set("mine")
        await asyncio.sleep(0.01)
        return {"before": before, "after": SEEN.get(),
                "task": asyncio.current_task() is not None}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom in a handler")

    @app.get("/wait")
    async def wait():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            app.state.events.append("cancelled")
            raise
        return "never"

    return app


def _fields(r: httpx.Response) -> tuple:
    headers = sorted((k, v) for k, v in r.headers.items() if k != "date")
    return r.status_code, headers, r.content


def _get_all(url: str, http2: bool, method: str = "GET") -> dict:
    with httpx.Client(http1=not http2, http2=http2, base_url=url, timeout=10) as c:
        out = {p: _fields(c.request(method, p)) for p in PATHS}
        if http2:
            assert c.get("/text").http_version == "HTTP/2"
        return out


@pytest.fixture(params=["ember", "h2"])
def codec(request, monkeypatch) -> str:
    """Our codec (the default) and the h2 package (``EMBER_HTTP2_CODEC=h2``)."""
    from ember.http import h2 as proto

    monkeypatch.setattr(proto, "CODEC", request.param)
    return request.param


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_and_general_paths_answer_the_same_over_http2(server_factory, method, codec):
    """Every kind of answer: the same status, fields and body with the fast path on
    and off (a fresh connection each way: the plan is read per connection)."""
    server = server_factory(make_app(), http2=True)
    fast = _get_all(server.url, True, method)
    assert server.state.fast_routes  # the fast path did run
    server.state.fast_path = False
    server.state.fast_routes.clear()
    general = _get_all(server.url, True, method)
    assert server.state.fast_routes == {}
    assert fast == general


def test_http2_answers_carry_what_http1_answers_carry(serve, codec):
    """Apart from HTTP/1.1's own framing fields, the same fields and bytes."""
    url = serve(make_app(), http2=True)
    one = _get_all(url, False)
    two = _get_all(url, True)
    for path in PATHS:
        s1, h1, b1 = one[path]
        s2, h2_, b2 = two[path]
        h1 = [(k, v) for k, v in h1 if k not in ("connection", "keep-alive")]
        assert (s1, h1, b1) == (s2, h2_, b2), path


def test_the_handler_sees_the_same_request_over_both(serve, codec):
    url = serve(make_app(), http2=True)
    body = "x" * 100_000  # several DATA frames, beyond the initial stream window
    seen = []
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2, base_url=url, timeout=10) as c:
            r = c.post("/echo?a=1&b=%20", content=body,
                       headers={"x-one": "1", "x-two": "two, 2", "user-agent": "same"})
            assert r.status_code == 200
            seen.append(r.json())
    assert seen[0] == seen[1]
    assert seen[0]["body"] == body and seen[0]["query"] == "a=1&b=%20"


def test_contextvars_never_leak_between_streams(serve):
    """Thirty concurrent streams on one connection: each handler starts in its own
    context (the value another stream set is never seen) and inside a Task."""
    url = serve(make_app(), http2=True)

    async def main() -> list:
        async with httpx.AsyncClient(http1=False, http2=True, base_url=url, timeout=10) as c:
            return await asyncio.gather(*(c.get("/ctx") for _ in range(30)))

    for r in asyncio.run(main()):
        assert r.json() == {"before": "unset", "after": "mine", "task": True}


def _h2_socket(url: str) -> tuple[socket.socket, h2.connection.H2Connection]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding=None))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _request(conn: h2.connection.H2Connection, sid: int, path: bytes) -> None:
    conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"),
                            (b":authority", b"x"), (b":path", path)], end_stream=True)


@pytest.mark.parametrize("fast", [True, False])
def test_rst_stream_cancels_the_handler(server_factory, fast):
    app = make_app()
    server = server_factory(app, http2=True)
    server.state.fast_path = fast
    sock, conn = _h2_socket(server.url)
    try:
        _request(conn, 1, b"/wait")
        sock.sendall(conn.data_to_send())
        time.sleep(0.2)  # the handler is waiting
        conn.reset_stream(1)
        _request(conn, 3, b"/text")  # and the connection still serves
        sock.sendall(conn.data_to_send())
        body, ended = b"", False
        deadline = time.monotonic() + 10
        while not ended and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == 3:
                    body += event.data
                if isinstance(event, h2.events.StreamEnded) and event.stream_id == 3:
                    ended = True
        assert ended and body == b"Hello, World!"
        deadline = time.monotonic() + 5
        while "cancelled" not in app.state.events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.events == ["cancelled"]
    finally:
        sock.close()


@pytest.mark.parametrize("fast", [True, False])
def test_handler_error_is_a_logged_500_on_both(server_factory, caplog, fast):
    server = server_factory(make_app(), http2=True)
    server.state.fast_path = fast
    caplog.set_level(logging.ERROR)
    answers = []
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2, base_url=server.url, timeout=10) as c:
            r = c.get("/boom")
            answers.append((r.status_code, r.text))
            assert c.get("/text").text == "Hello, World!"  # the connection lives on
    assert answers[0] == answers[1] and answers[0][0] == 500
    assert caplog.text.count("boom in a handler") >= 2


def test_access_log_line_is_the_same_but_for_the_version(serve, caplog):
    url = serve(make_app(), http2=True, access_log=True)
    caplog.set_level(logging.INFO, logger="ember.access")
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2, base_url=url, timeout=10) as c:
            assert c.get("/users/7?q=1").status_code == 200
            assert c.get("/boom").status_code == 500
    lines = [r.getMessage() for r in caplog.records if r.name == "ember.access"]
    assert len(lines) == 4, lines
    assert lines[2] == lines[0].replace("HTTP/1.1", "HTTP/2")
    assert lines[3] == lines[1].replace("HTTP/1.1", "HTTP/2")
    assert '"GET /users/7 HTTP/2" 200 8' in lines[2]
