"""The connection protocol over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from ember import Ember, Request, Response, RouteLimits, ServerLimits, StreamingResponse
from tests.conftest import raw_exchange


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def _read_responses(sock: socket.socket, count: int, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while buf.count(b"HTTP/1.") < count or not buf.endswith((b"\r\n\r\n", b"}", b"!")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if buf.count(b"HTTP/1.") >= count and _complete(buf, count):
            break
    return buf


def _complete(buf: bytes, count: int) -> bool:
    pos = 0
    for _ in range(count):
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            return False
        head = buf[pos:end].lower()
        length = 0
        if b"content-length:" in head:
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        pos = end + 4 + length
        if pos > len(buf):
            return False
    return True


@pytest.fixture
def app() -> Ember:
    app = Ember()

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/n/{n:int}")
    async def number(n: int):
        if n % 3 == 0:
            await asyncio.sleep(0.001)  # some handlers suspend, some finish inline
        return {"n": n}

    @app.post("/echo")
    async def echo(request: Request):
        return Response(await request.body(), media_type="application/octet-stream")

    @app.get("/status/{code:int}")
    async def status(code: int):
        return Response(b"body", status_code=code)

    @app.get("/inject")
    async def inject():
        return Response("x", headers={"x-bad": "a\r\nSet-Cookie: evil=1"})

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(0.3)
        return "slow"

    return app


def test_keep_alive_and_date_server_headers(serve, app):
    url = serve(app)
    with httpx.Client(base_url=url) as client:
        for _ in range(3):
            r = client.get("/hello")
            assert r.status_code == 200 and r.text == "Hello, World!"
            assert r.headers["server"] == "ember"
            assert r.headers["date"].endswith("GMT")
            assert r.headers["content-length"] == "13"
            assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_pipelining_keeps_order(serve, app):
    url = serve(app)
    sock = _connect(url)
    reqs = b"".join(b"GET /n/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
    sock.sendall(reqs)
    data = _read_responses(sock, 50)
    sock.close()
    bodies = [b'{"n":%d}' % i for i in range(50)]
    positions = [data.find(b) for b in bodies]
    assert all(p > 0 for p in positions)
    assert positions == sorted(positions)


def test_ten_thousand_pipelined_requests_on_one_connection(serve, app):
    url = serve(app)
    sock = _connect(url)
    n = 10_000
    sender = threading.Thread(target=sock.sendall,
                              args=(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * n,))
    sender.start()
    sock.settimeout(30)
    received = 0
    buf = b""
    while received < n:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed after {received} responses"
        buf += chunk
        received = buf.count(b"Hello, World!")
    sender.join()
    sock.close()
    assert buf.count(b"HTTP/1.1 200 OK") == n


def test_http10_closes_and_has_no_chunking(serve, app):
    url = serve(app)
    out = raw_exchange(url, b"GET /hello HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in out.lower()
    assert out.endswith(b"Hello, World!")


def test_connection_close_honoured(serve, app):
    url = serve(app)
    out = raw_exchange(url, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 1


def test_head_has_headers_but_no_body(serve, app):
    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    data = _read_responses(sock, 2)
    sock.close()
    first, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in first
    assert rest.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("code", [204, 304, 101, 199])
def test_no_body_statuses(serve, app, code):
    url = serve(app)
    out = raw_exchange(url, b"GET /status/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       % code)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % code)
    assert b"content-length" not in head.lower()
    assert body == b""


@pytest.mark.parametrize("code,reason", [(200, b"OK"), (418, b"I'm a Teapot"),
                                         (422, b"Unprocessable Content"),
                                         (599, b"Unknown")])
def test_reason_phrases_and_any_code(serve, app, code, reason):
    url = serve(app)
    out = raw_exchange(url, b"GET /status/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       % code)
    status_line = out.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 %d " % code)


def test_expect_100_continue(serve, app):
    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    sock.settimeout(5)
    first = sock.recv(1024)
    assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(b"hello")
    rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + _read_responses(sock, 1)
    sock.close()
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(b"hello")


def test_other_expectation_is_417(serve, app):
    url = serve(app)
    out = raw_exchange(url, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                            b"Expect: something\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 417")


def test_missing_host_is_400(serve, app):
    out = raw_exchange(serve(app), b"GET /hello HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"Host" in out


@pytest.mark.parametrize("name", ["CL.TE", "TE.CL", "TE xchunked", "obs-fold", "NUL in value"])
def test_smuggling_refused_on_the_wire_and_connection_closed(serve, app, name):
    from tests.http.test_parser import SMUGGLING

    data, status = SMUGGLING[name]
    data = data.replace(b"POST /p", b"POST /echo")
    out = raw_exchange(serve(app), data + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 %d" % status)
    assert out.count(b"HTTP/1.1") == 1  # nothing smuggled, connection closed
    assert b"connection: close" in out.lower()


def test_unsupported_transfer_coding_is_501(serve, app):
    out = raw_exchange(serve(app), b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                   b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 501")


def test_chunked_request_body(serve, app):
    out = raw_exchange(serve(app), b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n"
                                   b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"abcde")


def test_limits_431_414_413(serve, app):
    url = serve(app, limits=ServerLimits(max_header_size=1024, max_url_size=256,
                                         max_body_size=100, max_headers=10))
    assert raw_exchange(url, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n") \
        .startswith(b"HTTP/1.1 414")
    assert raw_exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 2000 + b"\r\n\r\n") \
        .startswith(b"HTTP/1.1 431")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(20))
    assert raw_exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") \
        .startswith(b"HTTP/1.1 431")
    out = raw_exchange(url, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413")
    chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n"
    assert raw_exchange(url, chunked).startswith(b"HTTP/1.1 413")


def test_route_limits_override_body_size_and_timeout(serve):
    app = Ember(server_limits=ServerLimits(max_body_size=10))

    @app.post("/big", limits=RouteLimits(max_body_size=1000))
    async def big(request: Request):
        return {"size": len(await request.body())}

    @app.get("/t", limits=RouteLimits(timeout=0.2))
    async def t():
        await asyncio.sleep(5)

    url = serve(app)
    r = httpx.post(url + "/big", content=b"x" * 500)
    assert r.json() == {"size": 500}
    assert httpx.post(url + "/big", content=b"x" * 1001).status_code == 413
    started = time.monotonic()
    r = httpx.get(url + "/t")
    assert r.status_code == 504 and "did not answer" in r.text
    assert time.monotonic() - started < 3


def test_header_timeout_drops_slow_clients(serve, app):
    url = serve(app, limits=ServerLimits(header_timeout=0.3))
    sock = _connect(url)
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
    sock.settimeout(5)
    started = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert time.monotonic() - started < 3
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


def test_keep_alive_timeout_never_cuts_a_request_in_progress(serve, app):
    url = serve(app, limits=ServerLimits(keep_alive_timeout=0.1))
    with httpx.Client(base_url=url) as client:
        assert client.get("/slow").text == "slow"  # 0.3 s > keep-alive timeout


def test_keep_alive_idle_connection_closed(serve, app):
    url = serve(app, limits=ServerLimits(keep_alive_timeout=0.2))
    sock = _connect(url)
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    _read_responses(sock, 1)
    sock.settimeout(5)
    started = time.monotonic()
    try:
        assert sock.recv(10) == b""
    finally:
        sock.close()
    assert time.monotonic() - started < 2


def test_truncated_body_does_not_reach_handler(serve):
    app = Ember()
    seen = []

    @app.post("/b")
    async def b(request: Request):
        seen.append(await request.body())
        return "ok"

    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-some")
    time.sleep(0.2)
    sock.close()
    time.sleep(0.3)
    assert seen == []


def test_disconnect_mid_body_cancels_handler(serve):
    app = Ember()
    events: list[str] = []

    @app.post("/read")
    async def read(request: Request):
        try:
            async for _ in request.stream():
                events.append("chunk")
            events.append("done")
        finally:
            events.append("finally")
        return "ok"

    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 3
    while "finally" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "finally" in events and "done" not in events


def test_disconnect_cancels_running_handler_at_once(serve):
    app = Ember()
    events: list[str] = []

    @app.get("/wait")
    async def wait():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return "never"

    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 3
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["cancelled"]


def test_disconnect_mid_stream_runs_generator_finally(serve):
    app = Ember()
    events: list[str] = []

    @app.get("/stream")
    async def stream():
        async def gen():
            try:
                while True:
                    yield b"x" * 1024
                    await asyncio.sleep(0.01)
            finally:
                events.append("finally")
        return StreamingResponse(gen())

    url = serve(app)
    with httpx.stream("GET", url + "/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        for _ in r.iter_bytes():
            break
    deadline = time.monotonic() + 3
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["finally"]


def test_streaming_write_backpressure_waits_for_the_reader(serve):
    app = Ember()
    produced = []

    @app.get("/flood")
    async def flood():
        async def gen():
            for i in range(2000):
                produced.append(i)
                yield b"y" * 65536
        return StreamingResponse(gen())

    url = serve(app)
    sock = _connect(url)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    # 2000 x 64 KiB = 128 MiB; without backpressure it would all be produced
    assert len(produced) < 200
    sock.close()


def test_read_backpressure_pauses_unread_bodies(serve):
    app = Ember()
    gate = threading.Event()

    @app.post("/lazy")
    async def lazy(request: Request):
        while not gate.is_set():
            await asyncio.sleep(0.01)
        return {"size": len(await request.body())}

    url = serve(app, limits=ServerLimits(max_body_size=64 * 1024 * 1024))
    sock = _connect(url)
    size = 32 * 1024 * 1024
    sock.sendall(b"POST /lazy HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    sock.setblocking(False)
    sent = 0
    payload = b"z" * 65536
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            sent += sock.send(payload)
        except BlockingIOError:
            time.sleep(0.01)
    # the server stopped reading: far less than the body went through
    assert sent < size // 2
    gate.set()
    sock.setblocking(True)
    remaining = size - sent
    while remaining:
        remaining -= sock.send(payload[: min(len(payload), remaining)])
    data = _read_responses(sock, 1)
    sock.close()
    assert b'{"size":%d}' % size in data


def test_header_injection_never_reaches_the_wire(serve, app):
    out = raw_exchange(serve(app), b"GET /inject HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500")
    assert b"evil" not in out


def test_max_connections_queue_waits_instead_of_failing(serve, app):
    url = serve(app, limits=ServerLimits(max_connections=1))
    first = _connect(url)
    first.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"Hello" in _read_responses(first, 1)
    second = _connect(url)
    second.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    second.settimeout(0.3)
    try:
        with pytest.raises(TimeoutError):
            second.recv(100)
    except BaseException:
        first.close()
        second.close()
        raise
    first.close()
    assert b"Hello" in _read_responses(second, 1)
    second.close()


def test_connections_released_when_closed(server_factory, app):
    server = server_factory(app)
    for _ in range(20):
        with httpx.Client(base_url=server.url) as c:
            c.get("/hello")
    deadline = time.monotonic() + 3
    while server.state.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.state.connections


def test_garbage_gets_400_not_a_crash(serve, app):
    url = serve(app)
    for junk in (b"\x00\x01\x02\r\n\r\n", b"\xff" * 100 + b"\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01"):
        out = raw_exchange(url, junk, timeout=3)
        assert out == b"" or out.startswith(b"HTTP/1.1 ")
    assert httpx.get(url + "/hello").status_code == 200


def test_no_leaked_protocols_requests_or_fds(server_factory, app):
    import gc
    import os

    from ember.http.protocol import HttpProtocol
    from ember.requests import Request as Req

    server = server_factory(app)
    fds_before = len(os.listdir("/proc/self/fd"))
    for i in range(300):
        sock = _connect(server.url)
        sock.sendall(b"GET /n/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        _read_responses(sock, 1)
        sock.close()
    with httpx.Client(base_url=server.url) as c:
        for _ in range(300):
            c.get("/hello")
    deadline = time.monotonic() + 3
    while server.state.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, (HttpProtocol, Req))]
    assert alive == []
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2


def test_known_length_body_failing_midway_closes_the_connection(serve):
    app = Ember()

    class Broken(Response):
        streaming = True

        async def stream_to(self, out):
            out.start(200, self.raw_headers, 10)
            await out.write(b"abc")
            raise RuntimeError("disk gone")

    @app.get("/broken")
    async def broken():
        return Broken()

    @app.get("/ok")
    async def ok():
        return "ok"

    out = raw_exchange(serve(app), b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n"
                                   b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.count(b"HTTP/1.1 ") == 1 and out.endswith(b"abc")
