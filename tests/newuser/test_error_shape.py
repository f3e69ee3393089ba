"""Every answer the framework makes itself has one shape, as FastAPI's do: JSON
``{"detail": ...}`` with ``content-type: application/json``, on HTTP/1.1 and HTTP/2 alike
(the wire layer's 413/414/431/504 were text/plain on HTTP/1.1 and bodiless on HTTP/2);
HEAD, 204 and 304 carry no body."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from ember import Ember, FileResponse, HTTPException, Request, RouteLimits, ServerLimits
from ember.testing import LiveServer


def _app(tmp_path) -> Ember:
    app = Ember(openapi_url=None, server_limits=ServerLimits(
        max_body_size=100, max_url_size=300, max_header_size=2048))
    (tmp_path / "a.txt").write_bytes(b"hello")

    @app.get("/items/{i:int}")
    async def item(i: int, q: int = 0):
        return {"i": i}

    @app.post("/echo")
    async def echo(request: Request):
        return {"n": len(await request.body())}

    @app.post("/json")
    async def js(request: Request):
        return await request.json()

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret detail")

    @app.get("/teapot")
    async def teapot():
        raise HTTPException(418, "short and stout")

    @app.get("/slow", limits=RouteLimits(timeout=0.05))
    async def slow():
        await asyncio.sleep(30)

    @app.get("/none")
    async def none():
        return None

    @app.get("/file")
    async def file():
        return FileResponse(str(tmp_path / "a.txt"))

    return app


CASES = [  # (method, url, kwargs, status, detail or None = any)
    ("GET", "/nope", {}, 404, "Not Found"),
    ("POST", "/items/1", {}, 405, "Method Not Allowed"),
    ("GET", "/items/1?q=x", {}, 422, None),
    ("POST", "/echo", {"content": b"x" * 200}, 413, "request body exceeds 100 bytes"),
    ("POST", "/echo", {"content": "two chunks"}, 413,
     "request body exceeds 100 bytes"),
    ("POST", "/json", {"content": b"{bad", "headers": {"content-type": "application/json"}},
     400, None),
    ("GET", "/boom", {}, 500, "Internal Server Error"),
    ("GET", "/teapot", {}, 418, "short and stout"),
    ("GET", "/slow", {}, 504, "the handler did not answer in time"),
    ("GET", "/items/1?q=" + "1" * 400, {}, 414, "request target too long"),
    ("GET", "/items/1", {"headers": {"x-big": "a" * 3000}}, 431,
     "request header section too large"),
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    app = _app(tmp_path_factory.mktemp("files"))
    with LiveServer(app) as h1, LiveServer(app, http2=True) as h2:
        yield {"http1": h1.url, "http2": h2.url}


@pytest.fixture(scope="module", params=["http1", "http2"])
def client(request, servers):
    http2 = request.param == "http2"
    with httpx.Client(base_url=servers[request.param], http2=http2, http1=not http2,
                      timeout=10) as c:
        yield c


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "detail"), CASES,
                         ids=[f"{c[3]}-{c[1][:12]}" for c in CASES])
def test_every_error_is_json_detail(client, method, url, kwargs, status, detail):
    if kwargs.get("content") == "two chunks":  # no Content-Length: chunked / DATA frames
        kwargs = {"content": iter([b"x" * 60, b"x" * 60])}
    r = client.request(method, url, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["detail"]
    if detail is not None:
        assert body["detail"] == detail
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["server"] == "ember" and r.headers["date"].endswith(" GMT")
    assert "secret" not in r.text


@pytest.mark.parametrize(("url", "kwargs", "status"), [
    ("/nope", {}, 404), ("/echo", {}, 405), ("/slow", {}, 504), ("/boom", {}, 500),
    ("/items/1?q=" + "1" * 400, {}, 414),
    ("/items/1", {"headers": {"x-big": "a" * 3000}}, 431),
])
def test_head_errors_carry_the_headers_but_no_body(client, url, kwargs, status):
    r = client.head(url, **kwargs)
    assert r.status_code == status
    assert r.content == b""
    assert r.headers["content-type"] == "application/json"


def test_204_and_304_carry_no_body_and_no_content_length(client):
    r = client.get("/none")
    assert r.status_code == 204 and r.content == b""
    assert "content-length" not in r.headers and "content-type" not in r.headers
    etag = client.get("/file").headers["etag"]
    r = client.get("/file", headers={"if-none-match": etag})
    assert r.status_code == 304 and r.content == b""
    assert "content-length" not in r.headers


def _raw(url: str, data: bytes) -> bytes:
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize(("request_bytes", "status", "detail"), [
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, b"multiple Host headers"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, b"missing Host header"),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     400, None),
    (b"BAD\x01 / HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-nope\r\nContent-Length: 1\r\n\r\nx", 417,
     b"unsupported Expect header"),
])
def test_http1_wire_errors_are_json_detail_too(servers, request_bytes, status, detail):
    out = _raw(servers["http1"], request_bytes)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), out
    assert b"\r\ncontent-type: application/json\r\n" in head.lower() + b"\r\n"
    assert body.startswith(b'{"detail":"')
    if detail is not None:
        assert body == b'{"detail":"' + detail + b'"}'


def test_a_refused_cors_preflight_is_json_detail_too():
    from ember import CORSMiddleware

    app = Ember(openapi_url=None)
    app.add_middleware(CORSMiddleware(allow_origins=["https://a.example"]))

    @app.post("/x")
    async def x():
        return {}

    with LiveServer(app) as server:
        r = httpx.options(server.url + "/x", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "CORS preflight refused: origin not allowed"}
    assert "origin" in r.headers["vary"].lower()


@pytest.mark.parametrize("request_bytes", [
    b"HEAD /items/1?q=" + b"1" * 400 + b" HTTP/1.1\r\nHost: a\r\n\r\n",           # 414
    b"HEAD /items/1 HTTP/1.1\r\nHost: a\r\nx-big: " + b"a" * 3000 + b"\r\n\r\n",  # 431
    b"\r\nHEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                          # 400
    b"HEAD / HTTP/1.1\r\n\r\n",                                                    # 400
])
def test_http1_wire_refusal_of_a_head_request_has_no_body(servers, request_bytes):
    # h11/httpx ignore such a body, so only the raw bytes show it
    out = _raw(servers["http1"], request_bytes)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 4") and b"content-length: " in head.lower()
    assert body == b""


def test_a_get_after_a_head_refusal_shape_is_unchanged(servers):
    out = _raw(servers["http1"], b"GET /items/1?q=" + b"1" * 400 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.endswith(b'\r\n\r\n{"detail":"request target too long"}')
