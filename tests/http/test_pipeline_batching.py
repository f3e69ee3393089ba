"""Responses of one pipelined read are written together, never held behind a slow handler.

On Python 3.11 (no eager tasks) each pipelined request's handler runs in its own Task
after ``data_received`` returned; the protocol batches their responses (bounded by
``OUT_BATCH``) and writes the batch when the queue empties, when a handler waits, before
a streaming response or a 100 Continue, and on close.  These tests count
``transport.write`` calls on a fake transport (one ``send()`` each on a real socket) and
demand the same bytes, in the same order, as requests sent one at a time.
"""

from __future__ import annotations

import asyncio

from ember import Ember, Request, StreamingResponse
from ember.http import _h1sink_py
from ember.http.protocol import ServerState
from tests.http.fake import Conn

HELLO = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n"


def make_app(gate: asyncio.Event | None = None) -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "Hello, World!"

    @app.get("/n/{n:int}")
    async def number(n: int):
        return {"n": n}

    @app.get("/big")
    async def big():
        return "x" * 20_000

    @app.get("/slow")
    async def slow():
        assert gate is not None
        await gate.wait()
        return "slow"

    @app.get("/stream")
    async def stream():
        async def gen():
            yield b"a"
            yield b"b"

        return StreamingResponse(gen(), media_type="text/plain")

    @app.post("/echo")
    async def echo(request: Request):
        return await request.body()

    return app


def one_at_a_time(app: Ember, requests: list[bytes], state: ServerState) -> bytes:
    conn = Conn(app, state=state)
    try:
        for req in requests:
            conn.send(req)
        return conn.output
    finally:
        conn.close()


def test_sixteen_pipelined_requests_cost_one_write_and_the_same_bytes() -> None:
    app = make_app()
    state = ServerState()
    requests = [f"GET /n/{i} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for i in range(16)]
    conn = Conn(app, state=state)
    try:
        before = conn.transport.writes
        conn.send(b"".join(requests))
        assert conn.transport.writes - before == 1
        assert conn.statuses() == [200] * 16
        assert conn.proto._out is None and not conn.proto._pipelining  # nothing held
        pipelined = conn.output
    finally:
        conn.close()
    assert pipelined == one_at_a_time(app, requests, state)
    for i in range(16):  # in order
        assert pipelined.index(b'{"n":%d}' % i) < pipelined.index(b'{"n":%d}' % (i + 1)) \
            if i < 15 else True


def test_a_slow_handler_mid_pipeline_does_not_hold_the_earlier_responses() -> None:
    gate = asyncio.Event()
    app = make_app(gate)
    conn = Conn(app)
    try:
        conn.send(HELLO + b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n" + HELLO)
        assert conn.statuses() == [200]  # the first answer is out while /slow waits
        assert conn.output.endswith(b"Hello, World!")
        assert conn.proto._out is None
        conn.loop.call_soon(gate.set)
        conn.settle()
        assert conn.statuses() == [200, 200, 200]
        body = conn.output
        assert body.index(b"Hello, World!") < body.index(b"slow") < body.rindex(b"Hello")
    finally:
        conn.close()


def test_batches_are_bounded_by_out_batch() -> None:
    app = make_app()
    conn = Conn(app, high_water=10**9)
    try:
        before = conn.transport.writes
        conn.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n" * 16)
        assert conn.statuses() == [200] * 16
        writes = conn.transport.writes - before
        size = len(conn.output)
        # 16 x ~20 kB in batches of at most ~OUT_BATCH + one response
        assert writes >= size // (_h1sink_py.OUT_BATCH + 21_000)
        assert 1 < writes < 16
        assert conn.proto._out is None
    finally:
        conn.close()


def test_a_streaming_response_mid_pipeline_keeps_the_order() -> None:
    app = make_app()
    requests = [HELLO, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n", HELLO]
    state = ServerState()
    conn = Conn(app, state=state)
    try:
        conn.send(b"".join(requests))
        assert conn.statuses() == [200, 200, 200]
        assert conn.proto._out is None
        pipelined = conn.output
    finally:
        conn.close()
    assert pipelined == one_at_a_time(app, requests, state)


def test_connection_close_mid_pipeline_writes_what_was_answered() -> None:
    app = make_app()
    conn = Conn(app)
    try:
        conn.send(HELLO + b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                  + HELLO)
        assert conn.statuses() == [200, 200]
        assert conn.closed
    finally:
        conn.close()


def test_100_continue_comes_after_the_batched_earlier_responses() -> None:
    app = make_app()
    conn = Conn(app)
    try:
        conn.send(HELLO + HELLO + b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
                  b"expect: 100-continue\r\n\r\n")
        out = conn.output
        assert out.count(b"Hello, World!") == 2
        assert out.rindex(b"Hello, World!") < out.index(b"100 Continue")
        conn.send(b"abc")
        assert conn.statuses() == [200, 200, 200]
        assert conn.output.endswith(b"abc")
    finally:
        conn.close()


def test_garbage_mid_pipeline_answers_the_earlier_requests_then_400() -> None:
    app = make_app()
    conn = Conn(app)
    try:
        conn.send(HELLO + HELLO + b"\x00\x01 garbage\r\n\r\n" + HELLO)
        assert conn.statuses() == [200, 200, 400]
        assert conn.closed
    finally:
        conn.close()


def test_answers_go_out_while_the_next_request_is_still_arriving() -> None:
    # valyala/fasthttp#1050: buffered pipelined answers were held until the next request
    # arrived; here a half-received head, then a body still trickling in.
    app = make_app()
    conn = Conn(app)
    try:
        conn.send(HELLO + HELLO + b"GET /hel")
        assert conn.statuses() == [200, 200]  # not held for the third request
        assert conn.proto._out is None
        conn.send(b"lo HTTP/1.1\r\nhost: x\r\n\r\nPOST /echo HTTP/1.1\r\nhost: x\r\n"
                  b"content-length: 6\r\n\r\nabc")
        assert conn.statuses() == [200, 200, 200]  # the echo handler waits for its body
        conn.send(b"def")
        assert conn.statuses() == [200, 200, 200, 200]
        assert conn.output.endswith(b"abcdef")
    finally:
        conn.close()
