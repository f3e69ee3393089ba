"""@app.ai_route end to end: the seed examples, context persistence, token limits, SSE."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from ember import (
    ConversationContext,
    Ember,
    JSONResponse,
    Request,
    SSEResponse,
    StreamingResponse,
    TokenLimits,
    TokenStreamResponse,
    ToolRegistry,
)
from ember.ai import MemoryConversationStore
from ember.sse import ServerSentEvent

# The seed's "AI / LLM Routes" and "Limits & Rate Limiting" examples, verbatim but for
# app.run(); each runs as the module it would be.
SEED_AI = """
from ember import Ember, Request, SSEResponse, ConversationContext, sse_stream
import asyncio

app = Ember()

async def token_stream(prompt: str):
    for word in f"You asked: {prompt}".split():
        await asyncio.sleep(0.05)
        yield word + " "

@app.ai_route("/v1/chat", methods=["POST"], streaming=True)
async def chat(request: Request, context: ConversationContext) -> SSEResponse:
    body = await request.json()
    prompt = body.get("message", "")
    context.add_message("user", prompt)
    return sse_stream(token_stream(prompt))
"""

SEED_LIMITS = """
from ember import Ember, RouteLimits, TokenLimits, ServerLimits

app = Ember(
    server_limits=ServerLimits(keep_alive_timeout=30),
)

@app.post(
    "/upload",
    limits=RouteLimits(max_body_size=50 * 1024 * 1024),  # 50 MB
)
async def upload(request):
    body = await request.body()
    return {"size": len(body)}

@app.ai_route(
    "/v1/chat",
    methods=["POST"],
    token_limits=TokenLimits(tokens_per_minute=10_000, max_prompt_tokens=4_096),
)
async def chat(request, context):
    ...
"""


def _run_seed(source: str) -> Ember:
    namespace: dict = {"__name__": "seed_example"}
    exec(compile(source, "<seed>", "exec", dont_inherit=True), namespace)
    return namespace["app"]


def seed_ai_app() -> Ember:
    return _run_seed(SEED_AI)


def seed_limits_app() -> Ember:
    return _run_seed(SEED_LIMITS)


def test_seed_ai_example_streams_over_a_real_socket(serve):
    url = serve(seed_ai_app())
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with httpx.stream("POST", url + "/v1/chat", json={"message": "one two three four five"},
                      timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        cid = r.headers["x-conversation-id"]
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, line[6:]))
    assert "".join(d for _, d in arrivals) == "You asked: one two three four five "
    assert len(arrivals) == 7
    # NOTE: not buffered: the first token arrived long before the last one.
    assert arrivals[-1][0] - arrivals[0][0] > 0.2
    assert len(cid) == 32


def test_seed_ai_example_keeps_the_conversation(serve):
    from ember.ai.routes import default_store

    app = seed_ai_app()
    with app.test_client() as c:
        r = c.post("/v1/chat", json={"message": "hello"})
        assert "".join(e["data"] for e in r.events()) == "You asked: hello "
        cid = r.headers["x-conversation-id"]
        r = c.post("/v1/chat", json={"message": "again"}, headers={"X-Conversation-Id": cid})
        assert r.headers["x-conversation-id"] == cid
        r = c.post("/v1/chat", json={"message": "third", "conversation_id": cid})
        assert r.headers["x-conversation-id"] == cid
    history = asyncio.run(default_store().load(cid))
    assert [m["content"] for m in history] == ["hello", "again", "third"]


def test_seed_limits_example():
    with seed_limits_app().test_client() as c:
        assert c.post("/upload", content=b"x" * 1000).json() == {"size": 1000}
        assert c.post("/v1/chat", json={"message": "hi"}).status_code == 204
        r = c.post("/v1/chat", json={"message": "word " * 5000})
        assert r.status_code == 413
        assert r.json()["max_prompt_tokens"] == 4096 and r.json()["prompt_tokens"] > 4096
        assert "at most 4096" in r.json()["detail"]


def _app(**route: object) -> Ember:
    app = Ember()

    @app.ai_route("/chat", **route)
    async def chat(request: Request, context: ConversationContext):
        body = await request.json()
        context.add_message("user", body.get("message", ""))
        return {"id": context.id, "messages": len(context.messages),
                "tools": context.tools.names if context.tools else None,
                "max_completion": context.max_completion_tokens}

    return app


def test_context_persists_by_header_and_body():
    tools = ToolRegistry()
    tools.register(lambda x: x, name="identity")
    with _app(tools=tools, token_limits=TokenLimits(max_completion_tokens=99)).test_client() as c:
        first = c.post("/chat", json={"message": "one"}).json()
        assert first["messages"] == 1 and first["tools"] == ["identity"]
        assert first["max_completion"] == 99
        again = c.post("/chat", json={"message": "two"},
                       headers={"x-conversation-id": first["id"]}).json()
        assert again["id"] == first["id"] and again["messages"] == 2
        body_id = c.post("/chat", json={"message": "3", "conversation_id": first["id"]}).json()
        assert body_id["messages"] == 3
        other = c.post("/chat", json={"message": "x", "conversation_id": "mine-1"}).json()
        assert other == {"id": "mine-1", "messages": 1, "tools": ["identity"],
                         "max_completion": 99}


@pytest.mark.parametrize(("kwargs", "detail"), [
    ({"content": b"{bad json", "headers": {"content-type": "application/json"}},
     "not valid JSON"),
    ({"json": {"message": "x", "conversation_id": 5}}, "conversation_id must be a string"),
    ({"json": {"message": "x"}, "headers": {"x-conversation-id": "a b"}}, "conversation id"),
])
def test_bad_input_is_a_400(kwargs, detail):
    with _app().test_client() as c:
        r = c.post("/chat", **kwargs)
        assert r.status_code == 400 and detail in r.json()["detail"]


def test_token_limits_per_caller():
    app = _app(token_limits=TokenLimits(tokens_per_minute=40, max_prompt_tokens=20))
    with app.test_client() as c:
        r = c.post("/chat", json={"messages": [{"role": "user", "content": "word " * 30}]})
        assert r.status_code == 413 and "at most 20" in r.json()["detail"]
        statuses = [c.post("/chat", json={"message": "a few words here"}).status_code
                    for _ in range(12)]
        assert statuses[0] == 200 and statuses[-1] == 429
        r = c.post("/chat", json={"prompt": "a few words here"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["retry_after"] == int(r.headers["retry-after"])
        assert r.headers["x-ratelimit-limit-tokens"] == "40"
        # another API key has its own budget; so has another bearer token
        assert c.post("/chat", json={"message": "hi"},
                      headers={"x-api-key": "k1"}).status_code == 200
        assert c.post("/chat", json={"message": "hi"},
                      headers={"authorization": "Bearer t1"}).status_code == 200


def test_a_prompt_larger_than_the_minute_budget_is_a_413():
    with _app(token_limits=TokenLimits(tokens_per_minute=10)).test_client() as c:
        r = c.post("/chat", json={"message": "word " * 30})
        assert r.status_code == 413 and "tokens per minute" in r.json()["detail"]


def test_real_usage_is_charged():
    from ember.api import models

    app = Ember()

    @app.ai_route("/ask", token_limits=TokenLimits(tokens_per_minute=1000))
    async def ask(request, context: ConversationContext):
        body = await request.json()
        response = await models.async_("offline/echo", body["message"])
        context.record_usage(response.usage)
        if body.get("fake_usage"):
            context.record_usage({"prompt_tokens": 1, "completion_tokens": 2000})
        return {"text": response.text}

    with app.test_client() as c:
        r = c.post("/ask", json={"message": "hello"})
        assert r.json()["text"] == "[offline echo] You said: hello"
        assert c.post("/ask", json={"message": "x", "fake_usage": True}).status_code == 200
        assert c.post("/ask", json={"message": "x"}).status_code == 429


def _stream_app(budget: int | None = None, max_completion: int | None = None) -> Ember:
    app = Ember()
    limits = TokenLimits(tokens_per_minute=budget, max_completion_tokens=max_completion)

    async def words(n: int):
        for i in range(n):
            yield f"word{i} "

    @app.ai_route("/gen", streaming=True, token_limits=limits)
    async def gen(request, context):
        body = await request.json()
        context.add_message("user", "go")
        return words(body.get("n", 5))  # a bare async generator

    @app.ai_route("/bytes", streaming=True)
    async def raw(request, context):
        return StreamingResponse(iter([b"a", b"b"]))

    @app.ai_route("/events", streaming=True)
    async def events(request, context):
        async def gen():
            yield ServerSentEvent({"k": 1}, event="meta", id="1")
            yield {"text": "hi"}
        return SSEResponse(gen(), headers={"x-mine": "yes"})

    @app.ai_route("/openai", streaming=True, token_limits=limits)
    async def openai(request, context):
        return TokenStreamResponse(iter(["Hel", "lo"]), model="m")

    @app.ai_route("/plain")  # not streaming: a generator goes out as a plain stream
    async def plain(request, context):
        context.add_message("assistant", "streamed")

        async def gen():
            yield "x"
            yield b"y"
        return gen()

    @app.ai_route("/model", streaming=True)
    async def model(request, context):
        from ember import ModelRouter

        return ModelRouter(["offline/echo"]).stream("hi there")

    return app


def test_streaming_routes_go_out_as_sse():
    with _stream_app().test_client() as c:
        r = c.post("/gen", json={"n": 3})
        assert r.headers["content-type"].startswith("text/event-stream")
        assert [e["data"] for e in r.events()] == ["word0 ", "word1 ", "word2 "]
        r = c.post("/bytes", json={})
        assert [e["data"] for e in r.events()] == ["a", "b"]
        r = c.post("/events", json={})
        assert r.headers["x-mine"] == "yes" and "x-conversation-id" in r.headers
        events = r.events()
        assert events[0]["event"] == "meta" and json.loads(events[0]["data"]) == {"k": 1}
        assert json.loads(events[1]["data"]) == {"text": "hi"}
        r = c.post("/openai", json={})
        data = [e["data"] for e in r.events()]
        assert data[-1] == "[DONE]"
        assert "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                       for d in data[:-1]) == "Hello"
        r = c.post("/model", json={})
        assert "".join(e["data"] for e in r.events()) == "[offline echo] You said: hi there"


def test_plain_stream_on_a_non_streaming_route_saves_after_the_end():
    from ember.ai.routes import default_store

    with _stream_app().test_client() as c:
        r = c.post("/plain", json={})
        assert r.text == "xy" and "event-stream" not in r.headers.get("content-type", "")
        cid = r.headers["x-conversation-id"]
    assert asyncio.run(default_store().load(cid)) == [{"role": "assistant",
                                                       "content": "streamed"}]


def test_streamed_tokens_are_charged_and_capped():
    with _stream_app(budget=60).test_client() as c:
        assert len(c.post("/gen", json={"n": 20}).events()) == 20
        # ~40+ tokens streamed were charged: the next long stream exhausts the minute
        c.post("/gen", json={"n": 20}).events()
        assert c.post("/gen", json={"n": 1}).status_code == 429
    with _stream_app(max_completion=6).test_client() as c:
        events = c.post("/gen", json={"n": 50}).events()
        assert 2 <= len(events) <= 6  # cut once the completion budget is spent


def test_openai_frames_are_charged_by_their_content():
    from ember.ai.routes import _frame_text, _text_of

    frame = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    assert _frame_text(frame) == "Hi" and _frame_text(b"data: [DONE]\n\n") == ""
    assert _text_of({"content": "c"}) == "c" and _text_of(ServerSentEvent("d")) == "d"


def test_custom_store_and_conversation_budget():
    app = _app()
    app.conversation_store = store = MemoryConversationStore(max_conversations=5)
    app.conversation_max_tokens = 40
    with app.test_client() as c:
        cid = None
        for i in range(10):
            headers = {"x-conversation-id": cid} if cid else {}
            cid = c.post("/chat", json={"message": f"message {i} with a few words"},
                         headers=headers).json()["id"]
    saved = asyncio.run(store.load(cid))
    assert 1 <= len(saved) < 10 and saved[-1]["content"] == "message 9 with a few words"
    ctx = ConversationContext(messages=saved)
    assert ctx.token_count() <= 40


def test_handler_errors_and_responses_pass_through():
    app = Ember()

    @app.ai_route("/teapot")
    async def teapot(request, context):
        return JSONResponse({"short": True}, 418)

    @app.ai_route("/get", methods=["GET"])
    def sync_get(context: ConversationContext):
        return {"id": context.id}

    with app.test_client() as c:
        r = c.post("/teapot", json={})
        assert r.status_code == 418 and "x-conversation-id" in r.headers
        r = c.get("/get", headers={"x-conversation-id": "g1"})
        assert r.json() == {"id": "g1"}
