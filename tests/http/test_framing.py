"""The engine owns framing (issue 23): Content-Length, Transfer-Encoding, Connection.

An app value that agrees with the response is accepted, one that conflicts is a
500 before anything is sent (logged with the reason), and the wire never carries
two framings, whether the handler or a middleware set the header.  An app
``Connection: close`` closes after that response (RFC 9112 §9.6).  Real server,
raw sockets; run in compiled and pure mode by CI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from ember import Ember, Request, Response, StreamingResponse
from tests.conftest import RunningServer
from tests.http._raw import exchange as raw_exchange

HEAD = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


def build_app() -> Ember:
    app = Ember(openapi_url=None)

    @app.middleware_
    async def late_headers(request: Request, call_next):
        response = await call_next(request)
        for spec in request.headers.getlist("x-set"):
            name, _, value = spec.partition("=")
            response.headers[name] = value
        return response

    @app.get("/plain")
    async def plain(request: Request):
        headers = {}
        for spec in request.headers.getlist("x-ctor"):
            name, _, value = spec.partition("=")
            headers[name] = value
        status = int(request.query_params.get("status", "200"))
        body = request.query_params.get("body", "abc").encode()
        return Response(body, status_code=status, headers=headers)

    @app.get("/stream")
    async def stream(request: Request):
        async def gen():
            yield b"ab"
            yield b"cd"

        headers = {}
        for spec in request.headers.getlist("x-ctor"):
            name, _, value = spec.partition("=")
            headers[name] = value
        return StreamingResponse(gen(), headers=headers)

    @app.route("/head", methods=["HEAD"])
    async def head_only():
        return Response(b"", headers={"content-length": "1234"})

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = RunningServer(build_app())
    yield srv
    srv.stop()


def exchange(server: RunningServer, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``; return everything read and whether the server closed."""
    return raw_exchange(server.port, data, head_only=data.startswith(b"HEAD "))


def request(path: str, *headers: str, minor: int = 1, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.{minor}", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def framing_lines(response: bytes) -> list[bytes]:
    head = response.split(b"\r\n\r\n", 1)[0].lower()
    return re.findall(rb"\r\n(content-length|transfer-encoding|connection):", head)


def single_framing(response: bytes) -> None:
    lines = framing_lines(response)
    assert len(lines) == len(set(lines)), response
    assert not (b"content-length" in lines and b"transfer-encoding" in lines), response


@pytest.mark.parametrize("headers", [
    ("X-Ctor: content-length=3",),
    ("X-Set: Content-Length=3",),
    ("X-Ctor: content-length=3", "X-Set: Content-Length=3"),
    ("X-Set: content-length= 3",),
])
def test_an_agreeing_content_length_is_accepted_once(server, headers):
    out, _ = exchange(server, request("/plain", *headers))
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.lower().count(b"content-length: 3\r\n") == 1
    assert out.endswith(b"\r\n\r\nabc")
    single_framing(out)


@pytest.mark.parametrize("headers,reason", [
    (("X-Ctor: content-length=5",), "Content-Length 5"),
    (("X-Set: Content-Length=99",), "Content-Length 99"),
    (("X-Set: Content-Length=0",), "Content-Length 0"),
    (("X-Set: Content-Length=abc",), "invalid Content-Length"),
    (("X-Set: Content-Length=-3",), "invalid Content-Length"),
    (("X-Set: Content-Length=99999999999999999999999",), "invalid Content-Length"),
    (("X-Set: Transfer-Encoding=chunked",), "Transfer-Encoding"),
    (("X-Ctor: transfer-encoding=chunked",), "Transfer-Encoding"),
    (("X-Set: Transfer-Encoding=gzip",), "Transfer-Encoding"),
    (("X-Set: Transfer-Encoding=chunked, chunked",), "Transfer-Encoding"),
])
def test_a_conflicting_framing_header_is_a_logged_500(server, headers, reason, caplog):
    with caplog.at_level(logging.ERROR, logger="ember.server"):
        out, closed = exchange(server, request("/plain", *headers))
    assert out.startswith(b"HTTP/1.1 500 "), out
    assert b"abc" not in out
    single_framing(out)
    assert closed
    assert any(reason in r.getMessage() for r in caplog.records), caplog.records


def test_chunked_set_by_the_app_on_a_stream_is_accepted_once(server):
    for headers in [("X-Ctor: transfer-encoding=chunked",), ("X-Set: Transfer-Encoding=Chunked",)]:
        out, _ = exchange(server, request("/stream", *headers))
        assert out.startswith(b"HTTP/1.1 200 ")
        assert out.lower().count(b"transfer-encoding: chunked\r\n") == 1
        assert out.endswith(b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
        single_framing(out)


@pytest.mark.parametrize("headers", [("X-Ctor: content-length=4",),
                                     ("X-Ctor: transfer-encoding=gzip",)])
def test_a_framing_header_a_stream_cannot_honour_is_a_500(server, headers, caplog):
    with caplog.at_level(logging.ERROR, logger="ember.server"):
        out, closed = exchange(server, request("/stream", *headers))
    assert out.startswith(b"HTTP/1.1 500 "), out
    assert closed
    single_framing(out)


def test_http10_stream_with_app_chunked_is_close_delimited(server):
    out, closed = exchange(server, request("/stream", "X-Ctor: transfer-encoding=chunked",
                                           minor=0))
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in out.lower()
    assert out.endswith(b"\r\n\r\nabcd") and closed
    single_framing(out)


def test_head_keeps_a_content_length_that_describes_the_get(server):
    out, _ = exchange(server, request("/head", method="HEAD"))
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.lower().count(b"content-length: 1234\r\n") == 1
    assert out.endswith(b"\r\n\r\n")
    single_framing(out)


def test_head_of_a_get_with_an_agreeing_length(server):
    out, _ = exchange(server, request("/plain", "X-Set: Content-Length=3", method="HEAD"))
    assert out.lower().count(b"content-length: 3\r\n") == 1 and out.endswith(b"\r\n\r\n")


def test_304_keeps_a_content_length_that_describes_the_get(server):
    out, _ = exchange(server, request("/plain?status=304&body=", "X-Set: Content-Length=10"))
    assert out.startswith(b"HTTP/1.1 304 ")
    assert out.lower().count(b"content-length: 10\r\n") == 1
    assert out.endswith(b"\r\n\r\n")


def test_204_content_length(server):
    out, _ = exchange(server, request("/plain?status=204&body=", "X-Set: Content-Length=0"))
    assert out.startswith(b"HTTP/1.1 204 ") and b"content-length" not in out.lower()
    out, _ = exchange(server, request("/plain?status=204&body=", "X-Set: Content-Length=7"))
    assert out.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close", "CLOSE "])
@pytest.mark.parametrize("where", ["X-Ctor", "X-Set"])
def test_app_connection_close_closes_after_that_response(server, value, where):
    second = request("/plain?body=second")
    out, closed = exchange(server, request("/plain", f"{where}: connection={value}") + second)
    assert closed
    assert out.count(b"HTTP/1.1 ") == 1 and b"second" not in out  # no pipelined request
    assert out.lower().count(b"connection: close\r\n") == 1
    assert b"keep-alive" not in out.lower()
    single_framing(out)


def test_app_connection_close_on_a_stream(server):
    out, closed = exchange(server, request("/stream", "X-Ctor: connection=close")
                           + request("/plain?body=second"))
    assert closed and out.count(b"HTTP/1.1 ") == 1
    assert out.lower().count(b"connection: close\r\n") == 1
    assert out.endswith(b"0\r\n\r\n")


def test_http10_never_gets_close_and_keep_alive_together(server):
    out, closed = exchange(server, request("/plain", "Connection: keep-alive",
                                           "X-Set: Connection=close", minor=0))
    assert closed and out.lower().count(b"connection: close\r\n") == 1
    assert b"keep-alive" not in out.lower()
    out, closed = exchange(server, request("/plain", "Connection: keep-alive",
                                           "X-Set: Connection=keep-alive", minor=0))
    assert not closed and out.lower().count(b"connection: keep-alive\r\n") == 1
    assert b"close" not in out.lower()
    single_framing(out)


def test_app_keep_alive_does_not_keep_a_closing_connection_open(server):
    out, closed = exchange(server, request("/plain", "Connection: close",
                                           "X-Set: Connection=keep-alive"))
    assert closed and out.lower().count(b"connection: close\r\n") == 1
    assert b"keep-alive" not in out.lower()
