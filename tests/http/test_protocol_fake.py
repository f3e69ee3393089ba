"""The HTTP/1.1 protocol on a fake transport and a hand-driven clock.

No sockets, no sleeps: every test is deterministic.  Each connection is torn
down with ``conn.close()``, which fails the test if a Task or a timer outlives
the connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest

from ember import Ember, Request, Response, ServerLimits, StreamingResponse
from ember.exceptions import ClientDisconnect, HTTPException
from tests.http.fake import Conn, FakeClockLoop

CHUNKED_HEAD = b"POST /%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
seen: dict[str, object] = {}
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def make_app(**limits) -> Ember:
    app = Ember(server_limits=ServerLimits(**limits), openapi_url=None)

    @app.middleware_
    async def set_var(request, call_next):
        var.set("from-middleware")
        return await call_next(request)

    @app.get("/hello")
    async def hello():
        return "Hello"

    @app.get("/task")
    async def task():
        async with asyncio.timeout(5):  # needs a current Task on the first line
            await asyncio.sleep(0)
        return {"task": asyncio.current_task() is not None, "var": var.get()}

    @app.get("/big")
    async def big():
        return Response(b"x" * 100 * 1024)

    @app.post("/read")
    async def read(request: Request):
        try:
            body = await request.body()
        except BaseException as exc:
            seen["read"] = exc
            raise
        return Response(body)

    @app.post("/stream")
    async def stream(request: Request):
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
        except BaseException as exc:
            seen["stream"] = exc
            raise
        return {"total": total}

    @app.post("/ignore")
    async def ignore():
        return "ignored"

    @app.post("/stall")
    async def stall():
        await asyncio.Event().wait()

    @app.get("/gen-error")
    async def gen_error():
        async def gen():
            yield b"first"
            raise RuntimeError("boom")
        return StreamingResponse(gen())

    @app.get("/raise/{kind}/{when}")
    async def raise_(kind: str, when: str):
        if when == "after":
            await asyncio.sleep(0)
        raise {"exit": SystemExit, "kbd": KeyboardInterrupt, "genexit": GeneratorExit,
               "base": BaseException}[kind]()

    @app.get("/url")
    async def url(request: Request):
        return {"url": request.url}

    return app


@pytest.fixture(autouse=True)
def _clear():
    seen.clear()


def conn_for(**limits) -> Conn:
    return Conn(make_app(**limits))


# -- handlers always run inside a Task ------------------------------------------------


def test_handler_runs_in_a_task_from_its_first_line():
    conn = conn_for()
    conn.send(b"GET /task HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.statuses() == [200]
    assert b'{"task":true,"var":"from-middleware"}' in conn.output
    conn.close()


# -- framing errors in a chunked body: every stage, every kind of handler ----------------

# (bytes after the head, status): each breaks the chunked framing at a different stage
BROKEN_BODIES = [
    (b"5\r\nhelloXX0\r\n\r\n", 400),  # no CRLF after chunk data
    (b"5\r\nhello\r\nzz\r\n", 400),  # invalid chunk size
    (b"zz\r\n", 400),  # invalid first chunk size
    (b"5;a=\"unterminated\r\nhello\r\n", 400),  # invalid chunk extension
    (b"5\nhello\r\n", 400),  # bare LF in chunk size line
    (b"5;" + b"a" * 5000 + b"\r\n", 400),  # chunk line over 4 KiB
    (b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", 400),  # invalid trailer
    (b"5\r\nhello\r\n0\r\n" + b"t: v\r\n" * 4000, 431),  # trailers too large
    (b"ffffffffffffffffff\r\n", 400),  # chunk size overflow
    (b"5\r\nhello\r" + b"x", 400),  # CR then garbage after data
]


@pytest.mark.parametrize("route", ["read", "stream", "ignore", "stall"])
@pytest.mark.parametrize(("body", "status"), BROKEN_BODIES)
@pytest.mark.parametrize("split", ["whole", "bytewise", "after-head"])
def test_framing_error_in_body_answers_wakes_and_closes(route, body, status, split):
    conn = conn_for()
    head = CHUNKED_HEAD % route.encode()
    if split == "whole":
        conn.send(head + body)
    elif split == "after-head":
        conn.send(head)
        conn.send(body)
    else:
        conn.send(head)
        for i in range(len(body)):
            if conn.closed:
                break
            conn.send(body[i:i + 1], settle=(i % 97 == 0))
        conn.settle()
    assert conn.closed
    statuses = conn.statuses()
    if route == "ignore" and statuses == [200]:
        pass  # NOTE: answered before the broken bytes arrived, then closed: one answer
    else:
        assert statuses == [status], conn.output
    if route in ("read", "stream") and route in seen:
        assert isinstance(seen[route], (HTTPException, asyncio.CancelledError))
    conn.close()


def test_issue_input_wakes_a_reading_handler_with_the_error():
    conn = conn_for()
    conn.send(CHUNKED_HEAD % b"read")
    conn.send(b"5\r\nhelloXX0\r\n\r\n")
    assert conn.statuses() == [400]
    assert isinstance(seen["read"], HTTPException) and seen["read"].status_code == 400
    assert conn.closed
    conn.close()


def test_pipelined_request_behind_a_framing_error_is_never_served():
    conn = conn_for()
    conn.send(CHUNKED_HEAD % b"read" + b"5\r\nhello\r\nzz\r\n"
              b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.statuses() == [400]
    conn.close()


def test_framing_error_after_a_pipelined_request_answers_both_in_order():
    conn = conn_for()
    conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + CHUNKED_HEAD % b"read" + b"zz\r\n")
    assert conn.statuses() == [200, 400]
    assert conn.closed
    conn.close()


def test_body_too_large_mid_stream_answers_413():
    conn = conn_for(max_body_size=10)
    conn.send(CHUNKED_HEAD % b"stream" + b"8\r\n12345678\r\n")
    conn.send(b"8\r\n12345678\r\n")
    assert conn.statuses() == [413]
    assert isinstance(seen["stream"], HTTPException) and seen["stream"].status_code == 413
    conn.close()


def test_client_leaving_mid_body_wakes_the_reader_with_client_disconnect():
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    conn.eof()
    assert isinstance(seen["read"], (ClientDisconnect, asyncio.CancelledError))
    assert conn.statuses() == []
    conn.close()


# -- the body timeout ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ["read", "stream", "ignore-late"])
def test_body_timeout_answers_408_and_wakes_the_reader(route):
    conn = conn_for(body_timeout=5, min_body_rate=None)  # the gap alone (see test_body_rate)
    path = b"read" if route == "read" else b"stream"
    conn.send(b"POST /" + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
              + b"x" * 10)
    for _ in range(3):  # a byte every 4 s keeps it alive
        conn.advance(4)
        conn.send(b"y")
    assert conn.statuses() == []
    conn.advance(5.5)
    assert conn.statuses() == [408]
    assert conn.closed
    exc = seen[path.decode()]
    assert isinstance(exc, HTTPException) and exc.status_code == 408
    conn.close()


def test_body_timeout_does_not_fire_while_the_handler_does_not_read():
    conn = conn_for(body_timeout=5)
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    conn.send(b"x" * 300_000)  # over the high-water mark: reading pauses (our doing)
    assert not conn.transport.reading
    conn.advance(60)
    assert not conn.closed and conn.statuses() == []
    conn.close()


# -- responses ------------------------------------------------------------------------------


def test_streaming_error_after_head_ends_without_last_chunk_and_closes():
    conn = conn_for()
    conn.send(b"GET /gen-error HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    out = conn.output
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"first" in out
    assert not out.endswith(b"0\r\n\r\n")
    assert conn.statuses() == [200]  # the pipelined request is not served
    assert conn.closed
    conn.close()


@pytest.mark.parametrize("kind", ["exit", "kbd", "genexit", "base"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_base_exception_from_handler_is_a_500_and_the_server_goes_on(kind, when, caplog):
    loop = FakeClockLoop()
    app = make_app()
    with caplog.at_level(logging.ERROR, logger="ember.server"):
        conn = Conn(app, loop=loop)
        conn.send(f"GET /raise/{kind}/{when} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert conn.statuses() == [500]
    assert any("unhandled" in r.message for r in caplog.records)
    conn.transport.close()
    conn.settle()
    again = Conn(app, loop=loop, state=conn.state)
    again.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert again.statuses() == [200]
    again.close()


def test_request_timeout_answers_504():
    conn = conn_for(request_timeout=3)
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    conn.advance(2)
    assert conn.statuses() == []
    conn.advance(2)
    assert conn.statuses() == [504]
    conn.close()


# -- HTTP semantics: RFC 9110 / 9112, HTTP/1.0 -----------------------------------------------


def test_transfer_encoding_on_http10_is_400_and_closes():
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
              b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.statuses() == [400]
    assert conn.closed
    conn.close()


def test_host_is_optional_in_http10_and_connection_closes_by_default():
    conn = conn_for()
    conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
    assert conn.statuses() == [200]
    assert b"connection: close" in conn.output.lower()
    assert conn.closed
    conn.close()


def test_http10_keep_alive_only_with_the_header():
    conn = conn_for()
    conn.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert conn.statuses() == [200] and not conn.closed
    assert b"connection: keep-alive" in conn.output.lower()
    conn.send(b"GET /hello HTTP/1.0\r\n\r\n")
    assert conn.statuses() == [200, 200] and conn.closed
    conn.close()


def test_expect_100_continue_is_ignored_on_http10():
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert b"100 Continue" not in conn.output
    conn.send(b"hello")
    assert conn.statuses() == [200] and conn.output.endswith(b"hello")
    conn.close()


def test_expect_100_continue_on_http11_is_sent_when_the_handler_reads():
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert conn.output == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"hello")
    assert conn.output.endswith(b"hello")
    conn.close()


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_more_than_one_host_is_400_on_any_version(version):
    conn = conn_for()
    conn.send(b"GET /hello HTTP/" + version + b"\r\nHost: a\r\nHost: b\r\n\r\n")
    assert conn.statuses() == [400]
    assert conn.closed
    conn.close()


def test_missing_host_on_http11_is_400():
    conn = conn_for()
    conn.send(b"GET /hello HTTP/1.1\r\n\r\n")
    assert conn.statuses() == [400]
    conn.close()


def test_absolute_form_authority_wins_over_host():
    conn = conn_for()
    conn.send(b"GET http://a.example/url?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n")
    assert b'"url":"http://a.example/url?q=1"' in conn.output
    conn.close()


def test_unknown_expectation_is_417():
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 0\r\n\r\n")
    assert conn.statuses() == [417]
    conn.close()


# -- bounded memory ----------------------------------------------------------------------------


def test_pipelining_pauses_while_the_client_does_not_read():
    conn = conn_for()
    conn.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
    # one response over the high-water mark, then nothing more until the client reads
    assert len(conn.transport.buffer) < 2 * 100 * 1024 + 4096
    assert not conn.transport.reading
    answered = 0
    for _ in range(200):
        answered += conn.transport.client_read().count(b"HTTP/1.1 200 ")
        conn.settle()
        assert len(conn.transport.buffer) < 2 * 100 * 1024 + 4096
        if answered == 50:
            break
    assert answered == 50
    assert conn.transport.reading
    conn.close()


def test_one_byte_chunks_are_coalesced():
    conn = conn_for()
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.send(b"1\r\nx\r\n" * 20_000)
    cycle = conn.proto._current
    assert cycle.buffered == 20_000
    assert cycle.chunk_count <= 3
    conn.close()


def test_one_byte_chunked_body_is_read_whole():
    conn = conn_for()
    conn.send(CHUNKED_HEAD % b"read" + b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n")
    assert conn.statuses() == [200]
    assert conn.output.endswith(b"x" * 5000)
    conn.close()


def test_chunk_extension_over_4_kib_is_400():
    conn = conn_for()
    conn.send(CHUNKED_HEAD % b"read" + b"1;ext=" + b"a" * 4100 + b"\r\nx\r\n0\r\n\r\n")
    assert conn.statuses() == [400]
    conn.close()


# -- timers follow the connection's state ------------------------------------------------------


def test_idle_connection_closes_after_keep_alive_timeout():
    conn = conn_for(keep_alive_timeout=5)
    conn.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.advance(4)
    assert not conn.closed
    conn.advance(2)
    assert conn.closed
    conn.close()


def test_partial_head_gets_408_after_header_timeout():
    conn = conn_for(header_timeout=10, keep_alive_timeout=30)
    conn.send(b"GET /hello HTTP/1.1\r\nHo")
    conn.advance(9)
    assert conn.statuses() == []
    conn.advance(2)
    assert conn.statuses() == [408] and conn.closed
    conn.close()


def test_running_handler_is_not_cut_by_connection_timers():
    conn = conn_for(header_timeout=1, keep_alive_timeout=1)
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    conn.advance(100)
    assert not conn.closed
    conn.close()


def test_connection_waiting_for_a_slot_is_not_timed_out():
    loop = FakeClockLoop()
    app = make_app(max_connections=1, keep_alive_timeout=5)
    first = Conn(app, loop=loop)
    state = first.state
    second = Conn(app, loop=loop, state=state)
    assert not second.transport.reading
    loop.advance(4)
    first.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # keeps the first one busy-ish
    loop.advance(20)  # the first closes on keep-alive; the second must get the slot
    assert first.closed
    assert not second.closed, "a connection waiting for a slot was timed out"
    assert second.transport.reading
    second.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert second.statuses() == [200]
    second.transport.close()
    first.close()


# -- peers' fixed bugs ---------------------------------------------------------------------


def test_stream_failing_before_its_first_byte_is_cut_not_completed():
    # oven-sh/bun#40596: a body stream that fails before any byte must not end with 0\r\n\r\n
    app = make_app()

    @app.get("/fail-first")
    async def fail_first():
        async def gen():
            raise RuntimeError("upstream died")
            yield b""  # pragma: no cover
        return StreamingResponse(gen())

    conn = Conn(app)
    conn.send(b"GET /fail-first HTTP/1.1\r\nHost: x\r\n\r\n")
    out = conn.output
    assert conn.closed
    assert not out.endswith(b"0\r\n\r\n"), out
    conn.close()


@pytest.mark.parametrize("extra", [b"", b"Content-Length: 5\r\n"])
def test_transfer_encoding_on_http10_with_or_without_content_length(extra):
    # valyala/fasthttp#2330, Netflix/zuul#2125: RFC 9112 §6.1 faulty framing
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + extra +
              b"\r\n5\r\nHELLO\r\n0\r\n\r\nGET /hello HTTP/1.0\r\n\r\n")
    assert conn.statuses() == [400]
    assert conn.closed
    conn.close()


def test_unknown_transfer_encoding_without_host_closes():
    # phusion/passenger#2553: answered 400 but kept parsing after the head
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.1\r\nTransfer-Encoding: foo\r\n\r\nGET /hello HTTP/1.1\r\n"
              b"Host: x\r\n\r\n")
    assert conn.statuses() == [400]
    assert conn.closed
    conn.close()


def test_refused_h2c_upgrade_still_delivers_the_chunked_body():
    # Kludex/uvicorn#2722: Upgrade: h2c + chunked body, upgrade not taken -> body lost
    conn = conn_for()
    conn.send(b"POST /read HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
              b"Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert conn.statuses() == [200]
    assert conn.output.endswith(b"abc")
    conn.close()


def test_pipelined_body_behind_a_busy_handler_is_bounded():
    # oven-sh/bun#43557: a body pipelined behind an unfinished response was buffered whole
    conn = conn_for(max_body_size=10_000_000)
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
              b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
    sent = 0
    while conn.transport.reading and sent < 5_000_000:
        conn.send(b"z" * 65536)
        sent += 65536
    assert not conn.transport.reading
    assert sent < 512 * 1024
    conn.close()


def test_half_closed_client_gets_its_pipelined_answers():
    conn = conn_for()
    conn.proto.data_received(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
    assert conn.proto.eof_received() is True
    conn.settle()
    assert conn.statuses() == [200, 200, 200]
    assert conn.closed
    conn.close()


def test_eof_while_a_handler_waits_is_a_disconnect():
    conn = conn_for()
    conn.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    conn.eof()
    assert conn.closed and conn.statuses() == []
    conn.close()


def test_upgrade_is_ignored_on_http10():
    # RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request
    app = make_app()

    @app.websocket("/ws")
    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hi")

    conn = Conn(app)
    conn.send(b"GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert conn.statuses() == [400]
    assert b"HTTP/1.1" in conn.output and b"101" not in conn.output
    conn.close()
