"""Random sequences of valid and broken requests, in random splits (hypothesis).

Handlers read, stream or ignore the body, raise, stream a failing body or stall;
the clock jumps; the client reads or does not.  Invariants checked after every
step and at the end:

* no request gets more than one response, and responses come in order;
* a connection that stays open, idle and unblocked has answered every request;
* nothing outlives the connection (Tasks, timers: ``Conn.close`` checks);
* memory stays bounded: buffered body bytes and objects, and unread output.

Issue 23 adds app-set framing headers, huge chunk sizes, 1-byte chunk floods (past
the parser's per-read budget) and trickling bodies (min_body_rate / body_timeout).
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ember import Ember, Request, Response, ServerLimits, StreamingResponse
from ember.http._protocol_py import HIGH_WATER, MAX_BODY_CHUNKS
from tests.http.fake import Conn


def _app() -> Ember:
    app = Ember(server_limits=ServerLimits(max_body_size=200_000, body_timeout=10,
                                           header_timeout=10, keep_alive_timeout=30),
                openapi_url=None)

    @app.get("/hello")
    async def hello():
        return "hi"

    @app.get("/big")
    async def big():
        return Response(b"b" * 50_000)

    @app.post("/read")
    async def read(request: Request):
        return Response(await request.body())

    @app.post("/stream")
    async def stream(request: Request):
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return {"n": n}

    @app.post("/ignore")
    async def ignore():
        return "ignored"

    @app.get("/raise")
    async def raise_():
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    @app.get("/exit")
    async def exit_():
        raise SystemExit(3)

    @app.get("/gen-error")
    async def gen_error():
        async def gen():
            yield b"part"
            raise RuntimeError("boom")
        return StreamingResponse(gen())

    @app.get("/stall")
    @app.post("/stall")
    async def stall():
        await asyncio.Event().wait()

    # issue 23: framing headers set by the app (the engine owns them)
    @app.get("/framing/{kind}")
    async def framing(kind: str):
        if kind == "stream-chunked":
            async def gen():
                yield b"ab"
            return StreamingResponse(gen(), headers={"transfer-encoding": "chunked"})
        r = Response(b"abc")
        name, value = {"cl-ok": ("content-length", "3"), "cl-bad": ("content-length", "4"),
                       "te-plain": ("transfer-encoding", "chunked"),
                       "close": ("connection", "close")}[kind]
        r.headers[name] = value
        return r

    return app


APP = _app()
H = b"Host: x\r\n"


def _chunked(path: bytes, body: bytes) -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body


# kind -> (bytes, outcome): "ok" answered and kept, "close" answered (or cut) then closed,
# "stall" never answered
REQUESTS: dict[str, tuple[bytes, str]] = {
    "hello": (b"GET /hello HTTP/1.1\r\n" + H + b"\r\n", "ok"),
    "big": (b"GET /big HTTP/1.1\r\n" + H + b"\r\n", "ok"),
    "read-cl": (b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello", "ok"),
    "read-chunked": (_chunked(b"/read", b"3\r\nabc\r\n1;e=1\r\nd\r\n0\r\n\r\n"), "ok"),
    "stream-ones": (_chunked(b"/stream", b"1\r\nx\r\n" * 300 + b"0\r\n\r\n"), "ok"),
    "ignore-empty": (b"POST /ignore HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", "ok"),
    "ignore-body": (_chunked(b"/ignore", b"5\r\nhello\r\n0\r\n\r\n"), "close-or-ok"),
    "http10": (b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "ok"),
    "raise": (b"GET /raise HTTP/1.1\r\n" + H + b"\r\n", "ok"),
    "exit": (b"GET /exit HTTP/1.1\r\n" + H + b"\r\n", "close"),
    "gen-error": (b"GET /gen-error HTTP/1.1\r\n" + H + b"\r\n", "close"),
    "stall": (b"GET /stall HTTP/1.1\r\n" + H + b"\r\n", "stall"),
    "bad-chunk-data": (_chunked(b"/read", b"5\r\nhelloXX0\r\n\r\n"), "close"),
    "bad-chunk-size": (_chunked(b"/stream", b"5\r\nhello\r\nzz\r\n"), "close"),
    "bad-chunk-ignored": (_chunked(b"/ignore", b"zz\r\n"), "close"),
    "bad-chunk-stalled": (_chunked(b"/stall", b"5\r\nhello\r\n5;x\r\nabcdeXX"), "close"),
    "bad-head": (b"GET /hello HTTP/1.1\r\n" + H + b"bad header\r\n\r\n", "close"),
    "te-http10": (b"POST /read HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "close"),
    "two-hosts": (b"GET /hello HTTP/1.1\r\n" + H + H + b"\r\n", "close"),
    "too-large": (b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 999999\r\n\r\n", "close"),
    # issue 23: app-set framing, huge chunk sizes, chunk floods, trickling bodies
    "app-cl-ok": (b"GET /framing/cl-ok HTTP/1.1\r\n" + H + b"\r\n", "ok"),
    "app-cl-bad": (b"GET /framing/cl-bad HTTP/1.1\r\n" + H + b"\r\n", "close"),
    "app-te-plain": (b"GET /framing/te-plain HTTP/1.1\r\n" + H + b"\r\n", "close"),
    "app-close": (b"GET /framing/close HTTP/1.1\r\n" + H + b"\r\n", "close"),
    "app-stream-chunked": (b"GET /framing/stream-chunked HTTP/1.1\r\n" + H + b"\r\n", "ok"),
    "huge-chunk": (_chunked(b"/read", b"8000000000000000\r\nabc"), "close"),
    "huge-chunk-32": (_chunked(b"/stream", b"1\r\nx\r\n" + b"f" * 32 + b"\r\n"), "close"),
    "zeros-chunk": (_chunked(b"/read", b"0" * 31 + b"1\r\nx\r\n0\r\n\r\n"), "ok"),
    "flood-ones": (_chunked(b"/stream", b"1\r\nx\r\n" * 5000 + b"0\r\n\r\n"), "ok"),
    "trickle": (b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nabc", "timeout"),
}


class ConnectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn = Conn(APP)
        self.sent: list[str] = []  # requests whose bytes were all delivered
        self.pending = b""  # bytes not delivered yet (reading paused)
        self.blocked = False  # a stall, broken or closing request was sent
        self.last = "ok"

    def _deliver(self, data: bytes, splits: list[int]) -> bool:
        conn = self.conn
        pos = 0
        i = 0
        while pos < len(data):
            if conn.closed:
                return False
            if not conn.transport.reading:
                conn.transport.client_read()
                conn.settle()
                if not conn.transport.reading:
                    self.pending = data[pos:]
                    return False
            size = splits[i % len(splits)] if splits else len(data)
            i += 1
            conn.send(data[pos:pos + size], settle=bool(i % 3))
            pos += size
        conn.settle()
        return True

    @precondition(lambda self: not self.conn.closed and not self.pending and not self.blocked)
    @rule(kind=st.sampled_from(sorted(REQUESTS)),
          splits=st.lists(st.integers(1, 64), max_size=4))
    def send_request(self, kind: str, splits: list[int]) -> None:
        data, outcome = REQUESTS[kind]
        if self._deliver(data, splits):
            self.sent.append(kind)
            self.last = outcome
        if outcome != "ok":
            self.blocked = True

    @precondition(lambda self: bool(self.pending) and not self.conn.closed)
    @rule()
    def deliver_pending(self) -> None:
        data, self.pending = self.pending, b""
        self._deliver(data, [])

    @rule()
    def client_reads(self) -> None:
        if not self.conn.closed:
            self.conn.transport.client_read()
            self.conn.settle()

    @rule(seconds=st.sampled_from([0.5, 4.0, 11.0, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.conn.advance(seconds)

    @invariant()
    def at_most_one_response_per_request(self) -> None:
        statuses = self.conn.statuses()
        assert len(statuses) <= len(self.sent) + (1 if self.pending or self.blocked else 0), (
            statuses, self.sent)

    @invariant()
    def memory_is_bounded(self) -> None:
        proto = self.conn.proto
        cycles = list(proto._queue) + [c for c in (proto._current, proto._receiving) if c]
        for cycle in cycles:
            assert cycle.buffered <= HIGH_WATER + 65_536
            assert cycle.chunk_count <= MAX_BODY_CHUNKS + 2
        assert len(self.conn.transport.buffer) <= 64 * 1024 + 50_000 + 4096

    @invariant()
    def every_request_answered_once_or_closed(self) -> None:
        conn = self.conn
        if self.pending:
            return
        for _ in range(5):  # the client reads until nothing more comes
            conn.transport.client_read()
            conn.settle()
        statuses = conn.statuses()
        if self.last == "timeout":  # a body that never completes: 408 once the clock says
            if len(statuses) == len(self.sent):
                assert statuses[-1] == 408 and conn.closed, (statuses, self.sent)
            else:
                assert len(statuses) == len(self.sent) - 1, (statuses, self.sent)
            return
        if self.last == "stall":
            assert len(statuses) == len(self.sent) - 1, (statuses, self.sent)
            return
        if conn.closed and self.last == "ok":
            return  # NOTE: closed by a timer (idle, header) after answering
        assert len(statuses) == len(self.sent), (statuses, self.sent)
        if self.last == "close":
            assert conn.closed, (statuses, self.sent)

    def teardown(self) -> None:
        self.conn.close()  # raises if a Task or timer outlived the connection


ConnectionMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestConnectionMachine = ConnectionMachine.TestCase
