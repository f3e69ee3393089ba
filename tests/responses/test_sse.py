"""SSEResponse, sse_stream, ServerSentEvent and TokenStreamResponse over real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import httpx
import orjson
import pytest

from ember import Ember, Request, ServerSentEvent, SSEResponse, TokenStreamResponse, sse_stream


def parse_sse(body: bytes | str) -> list[dict[str, Any]]:
    """A spec-following SSE decoder (WHATWG HTML §9.2.6): CRLF, CR and LF end lines."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    events: list[dict[str, Any]] = []
    data: list[str] = []
    fields: dict[str, Any] = {}
    for line in text.split("\n"):
        if not line:
            if data or fields:
                event = dict(fields)
                if data:
                    event["data"] = "\n".join(data)
                events.append(event)
            data, fields = [], {}
            continue
        if line.startswith(":"):
            fields.setdefault("comments", []).append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            fields[name] = value
        elif name == "retry":
            fields[name] = int(value)
    return events


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def _dechunk(body: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if size == 0:
            assert body[end:end + 4] == b"\r\n\r\n"
            return out
        out += body[end + 2:end + 2 + size]
        assert body[end + 2 + size:end + 4 + size] == b"\r\n"
        pos = end + 4 + size


# -- ServerSentEvent.encode --------------------------------------------------------------


def test_event_encoding_fields_and_multiline():
    ev = ServerSentEvent("a\nb\r\nc\rd", event="update", id=42, retry=3000)
    assert ev.encode() == (b"event: update\nid: 42\nretry: 3000\n"
                           b"data: a\ndata: b\ndata: c\ndata: d\n\n")
    assert parse_sse(ev.encode()) == [{"event": "update", "id": "42", "retry": 3000,
                                       "data": "a\nb\nc\nd"}]
    assert ServerSentEvent({"x": [1, "é"]}).encode() == 'data: {"x":[1,"é"]}\n\n'.encode()
    assert ServerSentEvent([1, 2]).encode() == b"data: [1,2]\n\n"
    assert ServerSentEvent("").encode() == b"data: \n\n"
    assert ServerSentEvent(comment="keep").encode() == b": keep\n\n"
    assert ServerSentEvent("x", event="e").encode("\r\n") == b"event: e\r\ndata: x\r\n\r\n"


@pytest.mark.parametrize("kwargs", [
    {"event": "a\nb"}, {"event": "a\rdata: injected"}, {"id": "1\n2"}, {"id": "x\x00"},
    {"comment": "c\nd"}, {"retry": -1}, {"retry": "10"}, {"retry": 1.5},
])
def test_event_rejects_injection_and_bad_retry(kwargs):
    with pytest.raises(ValueError):
        ServerSentEvent("data", **kwargs)


def test_response_arguments_are_checked():
    with pytest.raises(ValueError):
        SSEResponse(iter([]), ping_interval=0)
    with pytest.raises(ValueError):
        SSEResponse(iter([]), sep="\n\n")
    with pytest.raises(ValueError):
        TokenStreamResponse(iter([]), format="xml")


# -- SSE over a real server -----------------------------------------------------------------


@pytest.fixture
def sse_app() -> Ember:
    app = Ember()
    app.state.seen = []

    @app.get("/events")
    async def events(request: Request):
        last = SSEResponse.last_event_id(request)

        async def gen():
            yield "plain"
            yield {"json": True, "n": [1, 2]}
            yield ["list"]
            yield ServerSentEvent("line1\nline2\r\nline3", event="multi", id="7", retry=1500)
            yield b"event: raw\ndata: pre-encoded\n\n"
            yield f"last={last}|{request.headers.get('last-event-id')}"
        return sse_stream(gen(), headers={"x-extra": "1"})

    @app.get("/sync")
    def sync_events():
        return SSEResponse((f"n{i}" for i in range(3)), ping_interval=None)

    @app.get("/crlf")
    async def crlf():
        return SSEResponse(iter(["a\nb", ServerSentEvent("c", id="1")]), sep="\r\n")

    return app


def test_sse_framing_over_the_wire(serve, sse_app):
    url = serve(sse_app)
    with httpx.stream("GET", url + "/events", headers={"last-event-id": "41"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        assert r.headers["x-extra"] == "1"
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        body = r.read()
    assert b"data: line1\ndata: line2\ndata: line3\n" in body
    assert parse_sse(body) == [
        {"data": "plain"},
        {"data": '{"json":true,"n":[1,2]}'},
        {"data": '["list"]'},
        {"event": "multi", "id": "7", "retry": 1500, "data": "line1\nline2\nline3"},
        {"event": "raw", "data": "pre-encoded"},
        {"data": "last=41|41"},
    ]
    no_header = httpx.get(url + "/events").content
    assert parse_sse(no_header)[-1] == {"data": "last=None|None"}


def test_sync_iterable_and_crlf_separator(serve, sse_app):
    url = serve(sse_app)
    assert [e["data"] for e in parse_sse(httpx.get(url + "/sync").content)] == ["n0", "n1", "n2"]
    body = httpx.get(url + "/crlf").content
    assert body == b"data: a\r\ndata: b\r\n\r\nid: 1\r\ndata: c\r\n\r\n"


def test_pings_while_idle_never_cancel_the_pending_step(serve):
    app = Ember()
    steps: list[str] = []

    @app.get("/slow")
    async def slow():
        async def gen():
            try:
                steps.append("start")
                await asyncio.sleep(0.35)  # several ping intervals inside one step
                steps.append("woke")
                yield "first"
                await asyncio.sleep(0.25)
                yield "second"
            except asyncio.CancelledError:
                steps.append("cancelled")
                raise
        return SSEResponse(gen(), ping_interval=0.05, ping_message=b": keep-alive\n\n")

    url = serve(app)
    started = time.monotonic()
    body = httpx.get(url + "/slow", timeout=10).content
    assert time.monotonic() - started >= 0.55
    assert steps == ["start", "woke"]
    events = parse_sse(body)
    assert [e.get("data") for e in events if "data" in e] == ["first", "second"]
    before_first = body[:body.index(b"data: first")]
    assert before_first.count(b": keep-alive\n\n") >= 3
    assert body.endswith(b"data: second\n\n")


def test_no_ping_when_events_keep_coming(serve):
    app = Ember()

    @app.get("/busy")
    async def busy():
        async def gen():
            for i in range(10):
                await asyncio.sleep(0.01)
                yield i
        return SSEResponse(gen(), ping_interval=0.5)

    url = serve(app)
    body = httpx.get(url + "/busy").content
    assert b": ping" not in body
    assert [e["data"] for e in parse_sse(body)] == [str(i) for i in range(10)]


@pytest.mark.parametrize("ping_interval", [None, 0.05, 30.0])
@pytest.mark.parametrize("where", ["between", "blocked"])
def test_client_disconnect_runs_the_generator_finally(serve, ping_interval, where):
    app = Ember()
    finished = threading.Event()
    state: dict[str, Any] = {}

    @app.get("/stream")
    async def stream():
        async def gen():
            try:
                yield "hello"
                if where == "blocked":
                    await asyncio.sleep(3600)  # the client leaves while we wait upstream
                while True:
                    yield "tick"
                    await asyncio.sleep(0.01)
            except BaseException as exc:
                state["exc"] = type(exc).__name__
                raise
            finally:
                finished.set()
        return SSEResponse(gen(), ping_interval=ping_interval)

    url = serve(app)
    sock = _connect(url)
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"data: hello" in _read_until(sock, b"data: hello")
    sock.close()
    assert finished.wait(5), "the generator's finally did not run after the disconnect"
    assert state["exc"] in ("CancelledError", "GeneratorExit")


def test_error_mid_stream_ends_cleanly_with_an_error_event(serve, caplog):
    app = Ember()

    @app.get("/boom")
    async def boom():
        async def gen():
            yield "first"
            raise RuntimeError("secret upstream detail")
        return sse_stream(gen())

    url = serve(app)
    sock = _connect(url)
    with caplog.at_level(logging.ERROR, logger="ember.sse"):
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = _read_until(sock, b"\r\n0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"\r\n0\r\n\r\n")
    events = parse_sse(_dechunk(body))
    assert events[0] == {"data": "first"}
    assert events[-1]["event"] == "error"
    assert orjson.loads(events[-1]["data"]) == {"error": "stream failed"}
    assert b"secret upstream detail" not in body  # generic unless debug
    # the connection is still usable: the body was terminated properly
    sock.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    again = _read_until(sock, b"\r\n0\r\n\r\n")
    sock.close()
    assert again.startswith(b"HTTP/1.1 200")
    assert any("secret upstream detail" in (r.exc_text or "") or
               "secret upstream detail" in str(r.exc_info) for r in caplog.records)


def test_error_event_has_details_in_debug_mode(serve):
    app = Ember(debug=True)

    @app.get("/boom")
    async def boom():
        async def gen():
            yield "x"
            raise ValueError("details please")
        return sse_stream(gen())

    url = serve(app)
    events = parse_sse(httpx.get(url + "/boom").content)
    assert orjson.loads(events[-1]["data"]) == {"error": "ValueError: details please"}


def test_head_of_an_event_stream(serve, sse_app):
    url = serve(sse_app)
    r = httpx.head(url + "/events")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"].startswith("text/event-stream")


# -- TokenStreamResponse ---------------------------------------------------------------------


class _Chunk:
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.fixture
def token_app() -> Ember:
    app = Ember()

    async def tokens(fail: bool = False):
        for t in ["Hel", "lo", "", " wörld", _Chunk("!")]:
            await asyncio.sleep(0)
            yield t
        if fail:
            raise RuntimeError("model crashed")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        fail = body.get("messages", [{}])[-1].get("content") == "fail"
        usage = ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
                 if (body.get("stream_options") or {}).get("include_usage") else None)
        return TokenStreamResponse(tokens(fail), model=body["model"], usage=usage,
                                   id="chatcmpl-test123")

    @app.get("/openai")
    async def openai_frames(request: Request):
        done = request.query_params.get("done", "1") == "1"
        return TokenStreamResponse(iter(["a", "b"]), model="m", done=done)

    @app.get("/sse")
    async def sse_frames():
        return TokenStreamResponse(tokens(), format="sse")

    @app.get("/text")
    async def text_frames():
        async def slow():
            yield "one "
            await asyncio.sleep(0.2)
            yield "two"
        return TokenStreamResponse(slow(), format="text", ping_interval=0.01)

    @app.get("/text-fail")
    async def text_fail():
        return TokenStreamResponse(tokens(fail=True), format="text")

    return app


def test_openai_wire_format(serve, token_app):
    url = serve(token_app)
    r = httpx.get(url + "/openai")
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = r.content.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b"data: [DONE]"
    chunks = [orjson.loads(f.removeprefix(b"data: ")) for f in frames[:-2]]
    assert all(f.startswith(b"data: {") for f in frames[:-2])
    first, *content, last = chunks
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    for c in chunks:
        assert c["object"] == "chat.completion.chunk" and c["model"] == "m"
        assert isinstance(c["created"], int) and len(c["choices"]) == 1
        assert c["choices"][0]["index"] == 0
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["choices"][0]["finish_reason"] is None
    assert [c["choices"][0]["delta"] for c in content] == [{"content": "a"}, {"content": "b"}]
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                  "finish_reason": "stop"}
    no_done = httpx.get(url + "/openai?done=0").content
    assert b"[DONE]" not in no_done and b'"finish_reason":"stop"' in no_done


def test_sse_and_text_formats(serve, token_app):
    url = serve(token_app)
    events = parse_sse(httpx.get(url + "/sse").content)
    assert [e["data"] for e in events] == ["Hel", "lo", "", " wörld", "!", "[DONE]"]
    r = httpx.get(url + "/text")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "one two"  # no pings in a plain-text stream
    r = httpx.get(url + "/text-fail")
    assert r.status_code == 200 and r.text == "Hello wörld!"


def test_token_stream_with_the_official_openai_sdk(serve, token_app):
    openai = pytest.importorskip("openai")
    url = serve(token_app)
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="ember-test", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "hi"}])
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello wörld!"
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[0].id == "chatcmpl-test123" and chunks[0].model == "ember-test"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
        with pytest.raises(openai.APIError):
            list(client.chat.completions.create(
                model="ember-test", stream=True,
                messages=[{"role": "user", "content": "fail"}]))


def test_token_stream_with_the_async_openai_sdk(serve, token_app):
    openai = pytest.importorskip("openai")
    url = serve(token_app)

    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": "hi"}])
            return "".join([ch.choices[0].delta.content or "" async for ch in stream
                            if ch.choices])

    assert asyncio.run(main()) == "Hello wörld!"


def test_sse_over_http2(serve, sse_app):
    pytest.importorskip("h2")
    url = serve(sse_app, http2=True)
    with httpx.Client(http1=False, http2=True, base_url=url) as c:
        r = c.get("/events", headers={"last-event-id": "9"})
        assert r.http_version == "HTTP/2"
        assert r.headers["x-accel-buffering"] == "no"
        assert parse_sse(r.content)[-1] == {"data": "last=9|9"}
