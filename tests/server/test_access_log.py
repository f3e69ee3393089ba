"""The access log: one line per request, also for streams the client left early."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from ember import Ember, StreamingResponse


def _wait(predicate, what: str, guard: float = 30.0):
    deadline = time.monotonic() + guard  # hang guard only
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_a_stream_the_client_closed_gets_a_line_with_a_marker(server_factory, caplog):
    caplog.set_level(logging.INFO, "ember.access")
    app = Ember()

    @app.get("/forever")
    async def forever():
        async def tokens():
            while True:
                yield b"token "
                await asyncio.sleep(0.005)

        return StreamingResponse(tokens(), media_type="text/plain")

    @app.get("/done")
    async def done():
        return "ok"

    server = server_factory(app, access_log=True)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    lines = lambda: [r.getMessage() for r in caplog.records if r.name == "ember.access"]  # noqa: E731
    _wait(lambda: any("/forever" in line for line in lines()), "the access-log line")
    [line] = [line for line in lines() if "/forever" in line]
    assert '"GET /forever HTTP/1.1" 200 ' in line and line.endswith(" client disconnected")
    sent = int(line.split('" 200 ')[1].split()[0])
    assert sent > 0
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /done HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
    _wait(lambda: any("/done" in line for line in lines()), "the /done line")
    [done_line] = [line for line in lines() if "/done" in line]
    assert done_line.endswith('"GET /done HTTP/1.1" 200 2')


def test_a_client_that_leaves_mid_body_is_not_an_error(server_factory, caplog):
    """Not a 500, no ERROR log, no 5xx in metrics: the client left (found by a new user)."""
    from ember import Request
    from ember.observability import Metrics

    caplog.set_level(logging.INFO)
    app = Ember()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)

    @app.post("/echo")
    async def echo(request: Request):
        return await request.body()

    app.mount_openai(["offline/echo"], prefix="/v1")
    server = server_factory(app, access_log=True)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "ember.access"]

    for path in ("/echo", "/v1/chat/completions"):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 100\r\n\r\n{\"a\":".encode())
        _wait(lambda p=path: any(p in line for line in lines()), f"the {path} access line")
        [line] = [line for line in lines() if f"POST {path} " in line]
        assert line.endswith(" 499 0 client disconnected"), line
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := s.recv(65536):
            body += chunk
    assert b'status="500"' not in body
