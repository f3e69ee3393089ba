"""HTTP/2: prior knowledge, TLS with ALPN, Upgrade: h2c, multiplexing, flow control."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from ember import Ember, Request, StreamingResponse, sse_stream
from tests._services import skip_or_fail

pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")


@pytest.fixture
def app() -> Ember:
    app = Ember()
    app.state.events = []

    @app.get("/hello")
    async def hello(request: Request):
        return {"version": request.http_version, "host": request.headers.get("host")}

    @app.post("/echo")
    async def echo(request: Request):
        return await request.body()

    @app.get("/slow/{n:int}")
    async def slow(n: int):
        await asyncio.sleep(0.2)
        return {"n": n}

    @app.get("/big")
    async def big():
        return b"z" * (3 * 1024 * 1024)

    @app.get("/sse")
    async def sse():
        async def gen():
            for i in range(3):
                await asyncio.sleep(0.01)
                yield {"i": i}
        return sse_stream(gen())

    @app.get("/forever")
    async def forever():
        async def gen():
            try:
                while True:
                    yield b"x" * 1024
                    await asyncio.sleep(0.01)
            finally:
                app.state.events.append("finally")
        return StreamingResponse(gen())

    return app


def test_prior_knowledge(serve, app):
    url = serve(app, http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url) as c:
        r = c.get("/hello")
        assert r.http_version == "HTTP/2" and r.json()["version"] == "2"
        assert r.headers["server"] == "ember" and "date" in r.headers
        r = c.post("/echo", content=b"x" * 900_000)  # > the 256 KiB receive window
        assert r.status_code == 200 and r.content == b"x" * 900_000
        assert c.post("/echo", content=b"x" * 2_000_000).status_code == 413
        assert len(c.get("/big").content) == 3 * 1024 * 1024  # beyond the initial windows
        assert c.get("/sse").text.count("data:") == 3
        assert c.get("/missing").status_code == 404
        head = c.head("/hello")
        assert head.status_code == 200 and head.content == b""


def test_http1_still_served_when_http2_enabled(serve, app):
    url = serve(app, http2=True)
    r = httpx.get(url + "/hello")
    assert r.http_version == "HTTP/1.1" and r.json()["version"] == "1.1"


def test_streams_are_multiplexed(serve):
    # NOTE: each handler waits until all 20 are running at once: only a server that
    # multiplexes the streams can answer "together"; a serial one hits the hang guard.
    app = Ember()
    arrived: list[int] = []

    @app.get("/gate/{n:int}")
    async def gate(n: int):
        arrived.append(n)
        for _ in range(2000):  # hang guard (~10 s), never reached when multiplexed
            if len(arrived) >= 20:
                return {"n": n, "together": True}
            await asyncio.sleep(0.005)
        return {"n": n, "together": False}

    url = serve(app, http2=True)

    async def main():
        async with httpx.AsyncClient(http1=False, http2=True, base_url=url) as c:
            results = await asyncio.gather(*[c.get(f"/gate/{i}") for i in range(20)])
            assert {r.http_version for r in results} == {"HTTP/2"}
            return [r.json() for r in results]

    answers = asyncio.run(main())
    assert [a["n"] for a in answers] == list(range(20))
    assert all(a["together"] for a in answers)


def test_tls_alpn(serve, app, tls_files):
    cert, key = tls_files
    url = serve(app, http2=True, ssl_certfile=cert, ssl_keyfile=key)
    with httpx.Client(http2=True, verify=False, base_url=url) as c:
        r = c.get("/hello")
        assert r.http_version == "HTTP/2" and r.json()["version"] == "2"
    with httpx.Client(verify=False, base_url=url) as c:  # ALPN http/1.1 still works
        assert c.get("/hello").json()["version"] == "1.1"


def test_h2c_upgrade(serve, app):
    if shutil.which("nghttp") is None:
        skip_or_fail("nghttp (nghttp2-client) not installed")
    url = serve(app, http2=True)
    out = subprocess.run(["nghttp", "-u", "-v", url + "/hello"], capture_output=True, text=True,
                         timeout=20)
    assert "HTTP Upgrade success" in out.stdout
    assert '"version":"2"' in out.stdout


def test_stream_reset_cancels_the_handler(serve, app):
    url = serve(app, http2=True)

    async def main():
        async with httpx.AsyncClient(http1=False, http2=True, base_url=url) as c, \
                c.stream("GET", "/forever") as r:
            async for _ in r.aiter_bytes():
                break

    asyncio.run(main())
    deadline = time.monotonic() + 3
    while "finally" not in app.state.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.state.events == ["finally"]


def test_h2load_many_streams_no_errors(serve, app):
    if shutil.which("h2load") is None:
        skip_or_fail("h2load (nghttp2-client) not installed")
    url = serve(app, http2=True)
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "20", url + "/hello"],
                         capture_output=True, text=True, timeout=60)
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout


def test_body_limit_over_http2(serve):
    from ember import ServerLimits

    app = Ember(server_limits=ServerLimits(max_body_size=1000))

    @app.post("/b")
    async def b(request: Request):
        return {"n": len(await request.body())}

    url = serve(app, http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url) as c:
        assert c.post("/b", content=b"x" * 10).json() == {"n": 10}
        assert c.post("/b", content=b"x" * 5000).status_code == 413


def test_garbage_after_preface_closes_cleanly(serve, app):
    import socket

    url = serve(app, http2=True)
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except TimeoutError:
            pass
    assert httpx.get(url + "/hello").status_code == 200  # the server is fine
    threading.Event().wait(0.05)


def test_app_framing_headers_over_http2(serve):
    """Issue 23: the engine owns framing on HTTP/2 as on HTTP/1.1 — an agreeing app
    Content-Length is sent once, a conflicting one is a 500 before anything is sent."""
    from ember import Ember, Response

    app = Ember()

    @app.get("/agrees")
    async def agrees():
        return Response(b"hello", headers={"content-length": "5"})

    @app.get("/conflicts")
    async def conflicts():
        response = Response(b"hello")
        response.headers["content-length"] = "99"
        return response

    @app.get("/close")
    async def close():
        return Response(b"bye", headers={"connection": "close"})

    url = serve(app, http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url) as c:
        r = c.get("/agrees")
        assert r.http_version == "HTTP/2" and r.status_code == 200 and r.content == b"hello"
        assert r.headers.get_list("content-length") == ["5"]
        r = c.get("/conflicts")
        assert r.status_code == 500
        r = c.get("/close")
        assert r.status_code == 200 and r.content == b"bye" and "connection" not in r.headers
        assert c.get("/agrees").status_code == 200  # the connection still serves
