"""The one exchange core (issue 24): its transition table, the Sink every transport
implements, HTTP/2 answered by the same core as HTTP/1.1 (access log, background
tasks, handler timeout, HEAD and files over streams), and dispatch decided once."""

from __future__ import annotations

import asyncio
import inspect
import logging

import httpx
import pytest

from ember import Ember, FileResponse, Request, ServerLimits
from ember.http import exchange
from ember.http.cycle import DONE, ERROR, QUEUED, RUNNING, SENDING, Cycle
from ember.http.h2 import H2Stream
from ember.http.protocol import HttpProtocol, ServerState
from ember.http.sink import Sink
from ember.responses import PlainTextResponse, StreamingResponse
from tests._waits import HANG_GUARD, wait_for
from tests.http.fake import Conn

pytest.importorskip("h2", reason="HTTP/2 needs the h2 package")


def test_the_transition_table_is_the_documented_one():
    table = {(a, b) for a in range(5) for b in range(5) if exchange.allowed(a, b)}
    assert table == {
        (QUEUED, RUNNING), (QUEUED, DONE), (QUEUED, ERROR),
        (RUNNING, SENDING), (RUNNING, DONE), (RUNNING, ERROR),
        (SENDING, DONE), (SENDING, ERROR),
    }  # DONE and ERROR are final


@pytest.mark.parametrize("sink", [HttpProtocol, H2Stream], ids=["http1", "http2"])
def test_every_transport_implements_the_whole_sink(sink):
    for name, member in inspect.getmembers(Sink):
        if name.startswith("_"):
            continue
        assert hasattr(sink, name), f"{sink.__name__} lacks Sink.{name}"
        # NOTE: a compiled method has no signature to read (the pure twin is checked)
        if inspect.isfunction(member) and inspect.isfunction(getattr(sink, name)):
            wanted = list(inspect.signature(member).parameters)
            got = list(inspect.signature(getattr(sink, name)).parameters)
            assert got[:len(wanted)] == wanted or len(got) == len(wanted), (name, got)
            if inspect.iscoroutinefunction(member):
                assert inspect.iscoroutinefunction(getattr(sink, name)), name


class _Recorder:
    """A sink that records what the core asks of it (a transport's view)."""

    closed = False
    peer = None

    def __init__(self) -> None:
        self.calls: list[str] = []

    def body_consumed(self, buffered: int) -> None:
        pass

    def send_continue(self, request: object) -> None:
        pass

    def send_result(self, cycle: Cycle, result: object) -> bool:
        return False

    def send_response(self, cycle, status, raw_headers, body, content_length):
        self.calls.append(f"response {status} {content_length}")
        return None

    def send_error(self, cycle, status, reason):
        self.calls.append(f"error {status}")
        return -1

    def exchange_done(self, cycle):
        self.calls.append("done")


def test_a_final_cycle_is_neither_finished_nor_failed_again():
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        state = ServerState()
        core = exchange.Exchange(Ember(), None, {}, state)
        sink = _Recorder()
        cycle = Cycle(sink)
        cycle.state = RUNNING
        core.fail(cycle, 500, "boom")
        core.fail(cycle, 504, "late")
        core.finish(cycle, 200, 0, None)
        assert cycle.state == ERROR
        assert sink.calls == ["error 500"]
        done = Cycle(sink)
        done.state = SENDING
        core.finish(done, 200, 0, None)
        core.fail(done, 500, "after the end")
        assert done.state == DONE and sink.calls == ["error 500", "done"]
        assert state.total_requests == 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _app(tmp_path, box: dict) -> Ember:
    app = Ember(openapi_url=None)
    (tmp_path / "f.txt").write_bytes(b"0123456789" * 1000)

    @app.get("/hello")
    async def hello():
        return "hello"

    @app.get("/bg")
    async def bg():
        async def later() -> None:
            box["bg"] = True
        return PlainTextResponse("queued", background=later)

    @app.get("/slow")
    async def slow():
        try:
            await asyncio.sleep(HANG_GUARD)
        except asyncio.CancelledError:
            box["cancelled"] = True
            raise

    @app.get("/stream")
    async def stream():
        async def parts():
            yield b"a"
            yield b"b"
        return StreamingResponse(parts(), media_type="text/plain")

    @app.get("/file")
    async def file():
        return FileResponse(tmp_path / "f.txt")

    @app.get("/broken-framing")
    async def broken():
        return PlainTextResponse("x", headers={"content-length": "7"})

    return app


def test_http2_runs_on_the_same_core(serve, tmp_path, caplog):
    """Log lines, background tasks, the handler timeout, HEAD, streams and files:
    HTTP/2 gets them from the one exchange core, the same as HTTP/1.1."""
    caplog.set_level(logging.INFO, "ember.access")
    box: dict = {}
    url = serve(_app(tmp_path, box), http2=True, access_log=True,
                limits=ServerLimits(request_timeout=0.5))
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=HANG_GUARD) as c:
        r = c.get("/hello")
        assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "hello")
        assert c.get("/bg").text == "queued"
        wait_for(lambda: box.get("bg"), "the background task")
        r = c.get("/slow")
        assert r.status_code == 504
        wait_for(lambda: box.get("cancelled"), "the timed-out handler cancelled")
        r = c.head("/stream")
        assert r.status_code == 200 and r.content == b""
        assert c.get("/stream").content == b"ab"
        r = c.get("/file")
        assert r.content == b"0123456789" * 1000
        assert r.headers["content-length"] == "10000"
        assert c.get("/broken-framing").status_code == 500  # framing owned by the engine
        assert c.get("/hello").text == "hello"  # the connection still serves
    lines = [r.getMessage() for r in caplog.records if r.name == "ember.access"]
    assert any('"GET /hello HTTP/2" 200 5' in line for line in lines), lines
    assert any('"GET /slow HTTP/2" 504' in line for line in lines), lines
    assert any('"GET /file HTTP/2" 200 10000' in line for line in lines), lines


def test_http1_and_http2_answer_a_route_the_same(serve, tmp_path):
    url = serve(_app(tmp_path, {}), http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=HANG_GUARD) as h2, \
            httpx.Client(base_url=url, timeout=HANG_GUARD) as h1:
        for path in ("/hello", "/stream", "/file", "/missing"):
            a, b = h1.get(path), h2.get(path)
            assert (a.http_version, b.http_version) == ("HTTP/1.1", "HTTP/2")
            assert (a.status_code, a.content) == (b.status_code, b.content), path
            assert a.headers.get("content-type") == b.headers.get("content-type"), path


def test_dispatch_is_decided_once_and_a_changed_app_falls_back_to_dispatch():
    app = Ember(openapi_url=None)

    @app.get("/hello")
    async def hello(request: Request):
        return "hello"

    state = ServerState()
    conn = Conn(app, state=state)
    try:
        assert [k for r, k in state.fast_routes.items() if r.path == "/hello"] == [2]
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.output.endswith(b"hello")

        @app.middleware_
        async def tag(request, call_next):
            response = await call_next(request)
            response.headers["x-mw"] = "1"
            return response

        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection
        assert conn.output.count(b"x-mw: 1\r\n") == 1
    finally:
        conn.close()


def test_a_plan_is_never_asked_per_request(monkeypatch):
    app = Ember(openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "hello"

    asked: list[int] = []
    plan = app._answer_plan
    monkeypatch.setattr(app, "_answer_plan", lambda d: asked.append(1) or plan(d))
    conn = Conn(app, state=ServerState())
    try:
        conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        assert conn.output.count(b"HTTP/1.1 200 ") == 5
        assert asked == [1]  # once, when the connection was built
    finally:
        conn.close()


def test_a_websocket_leaves_http_through_an_explicit_upgrade(serve, caplog):
    """accept() hands an Upgrade to the transport (Sink.upgrade), which acts on it; the
    handler's answer is that same object: the core logs the 101, writes nothing more."""
    from websockets.sync.client import connect

    from ember import WebSocket
    from ember.http.sink import Upgrade

    caplog.set_level(logging.INFO, "ember.access")
    seen: dict = {}
    app = Ember()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        seen["upgraded"] = ws.upgraded
        await ws.send_text(await ws.receive_text())

    url = serve(app, access_log=True)
    with connect("ws" + url[4:] + "/ws", open_timeout=HANG_GUARD) as client:
        client.send("hi")
        assert client.recv(timeout=HANG_GUARD) == "hi"
    upgrade = seen["upgraded"]
    assert isinstance(upgrade, Upgrade) and upgrade.head.startswith(b"HTTP/1.1 101 ")

    def logged() -> bool:
        return any('"GET /ws HTTP/1.1" 101' in r.getMessage() for r in caplog.records
                   if r.name == "ember.access")

    wait_for(logged, "the 101 in the access log")


def test_a_stream_refuses_to_leave_http():
    with pytest.raises(NotImplementedError, match=r"connect over HTTP/1\.1"):
        H2Stream.upgrade(None, None, None)  # type: ignore[arg-type]
