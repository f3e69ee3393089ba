"""ConversationContext, PromptTemplate, ToolRegistry, SemanticCache and @app.ai_route."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from typing import Literal

import pytest

from ember import (
    ConversationContext,
    Ember,
    PromptTemplate,
    Request,
    SemanticCache,
    TokenLimits,
    ToolRegistry,
    sse_stream,
)

# -- PromptTemplate ---------------------------------------------------------------------

def test_prompt_template():
    t = PromptTemplate("Summarise {text} in {n} words. {{literal}}")
    assert t.variables == ["text", "n"]
    assert t.format(text="this", n=3) == "Summarise this in 3 words. {literal}"
    with pytest.raises(ValueError, match=r"missing template variable.*n"):
        t.format(text="x")
    assert t.partial(n=5).format(text="y").endswith("5 words. {literal}")
    with pytest.raises(ValueError, match="unknown"):
        PromptTemplate("{a}", strict=True).format(a=1, b=2)
    with pytest.raises(ValueError):
        PromptTemplate("broken {")
    assert t.to_messages(system="be brief", text="a", n=1)[0] == {"role": "system",
                                                                   "content": "be brief"}


# -- ToolRegistry -------------------------------------------------------------------------

class Unit(enum.Enum):
    C = "c"
    F = "f"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def _tools() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.register
    async def get_weather(city: str, unit: Unit = Unit.C, days: int = 1) -> dict:
        """Current weather for a city."""
        return {"city": city, "unit": unit.value, "days": days}

    @tools.register(name="add", description="Add numbers")
    def add_numbers(a: float, b: float, mode: Literal["exact", "round"] = "exact") -> float:
        return round(a + b) if mode == "round" else a + b

    @tools.register(timeout=0.05)
    async def slow() -> str:
        """Takes too long."""
        await asyncio.sleep(1)
        return "never"

    @tools.register
    def move(p: Point, tags: list[str] | None = None) -> dict:
        """Move a point."""
        return {"x": p.x + 1, "tags": tags or []}

    return tools


def test_tool_schemas():
    tools = _tools()
    (weather, add, _slow, move) = tools.to_openai()
    fn = weather["function"]
    assert weather["type"] == "function" and fn["name"] == "get_weather"
    assert fn["description"] == "Current weather for a city."
    assert fn["parameters"]["required"] == ["city"]
    assert fn["parameters"]["properties"]["unit"] == {"enum": ["c", "f"], "default": "c"} or \
        fn["parameters"]["properties"]["unit"]["enum"] == ["c", "f"]
    assert add["function"]["name"] == "add" and add["function"]["description"] == "Add numbers"
    assert add["function"]["parameters"]["properties"]["mode"]["enum"] == ["exact", "round"]
    assert move["function"]["parameters"]["properties"]["p"]["required"] == ["x"]
    assert tools.to_anthropic()[0]["input_schema"] == fn["parameters"]
    assert tools.to_mcp()[0]["inputSchema"] == fn["parameters"]


def test_tool_calls_validate_and_run():
    tools = _tools()

    async def main():
        assert await tools.call("get_weather", {"city": "Paris", "unit": "f"}) == {
            "city": "Paris", "unit": "f", "days": 1}
        assert await tools.call("add", '{"a": 1, "b": 2.5}') == 3.5
        assert await tools.call("move", {"p": {"x": 1}}) == {"x": 2, "tags": []}
        from ember.ai.tools import ToolError

        for name, args, message in [
            ("nope", {}, "unknown tool"), ("get_weather", {}, "missing required"),
            ("get_weather", {"city": 3}, "expected a string"),
            ("get_weather", {"city": "x", "extra": 1}, "unknown argument"),
            ("get_weather", {"city": "x", "unit": "k"}, "must be one of"),
            ("add", "{not json", "not valid JSON"), ("add", {"a": True, "b": 1}, "number"),
            ("slow", {}, "timed out"),
        ]:
            with pytest.raises(ToolError, match=message):
                await tools.call(name, args)
        messages = await tools.run_tool_calls([
            {"id": "c1", "type": "function", "function": {"name": "add",
                                                          "arguments": '{"a":1,"b":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
        ])
        assert messages[0] == {"role": "tool", "tool_call_id": "c1", "content": "2.0"}
        assert "unknown tool" in messages[1]["content"]

    asyncio.run(main())


def test_duplicate_tool_names_rejected():
    tools = _tools()
    with pytest.raises(ValueError):
        @tools.register(name="add")
        def other(x: int) -> int:
            return x


# -- ConversationContext --------------------------------------------------------------------

def test_context_messages_and_trimming():
    ctx = ConversationContext(max_tokens=30)
    ctx.add_message("system", "You are terse.")
    for i in range(20):
        ctx.add_message("user", f"message number {i} with some words")
    assert ctx.token_count() > 30
    dropped = ctx.trim()
    assert dropped > 0 and ctx.messages[0]["role"] == "system" and ctx.token_count() <= 30
    with pytest.raises(ValueError):
        ctx.add_message("wizard", "x")
    with pytest.raises(ValueError):
        ConversationContext("bad id with spaces")


# -- SemanticCache ----------------------------------------------------------------------------

def test_semantic_cache_with_default_embedder():
    cache = SemanticCache(threshold=0.8)

    async def main():
        await cache.set("What is the capital of France?", "Paris")
        assert await cache.get("what is the capital of france") == "Paris"
        assert await cache.get("How do I bake bread?") is None
        calls = []

        async def compute(prompt):
            calls.append(prompt)
            return "computed"

        assert await cache.get_or_compute("Tell me a joke", compute) == "computed"
        assert await cache.get_or_compute("tell me a joke!", compute) == "computed"
        assert len(calls) == 1

    asyncio.run(main())
    assert cache.hits >= 2 and cache.misses >= 1


def test_semantic_cache_custom_embedder_and_validation():
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0], "a2": [0.99, 0.1]}
    cache = SemanticCache(threshold=0.95, embedder=lambda text: vectors[text])

    async def main():
        await cache.set("a", 1)
        assert await cache.get("a2") == 1
        assert await cache.get("b") is None

    asyncio.run(main())
    with pytest.raises(ValueError):
        SemanticCache(threshold=0)


# -- @app.ai_route -------------------------------------------------------------------------------

def _ai_app() -> Ember:
    app = Ember()

    async def tokens(prompt: str):
        for word in f"You asked: {prompt}".split():
            yield word + " "

    @app.ai_route("/v1/chat", methods=["POST"], streaming=True)
    async def chat(request: Request, context: ConversationContext):
        body = await request.json()
        context.add_message("user", body.get("message", ""))
        return sse_stream(tokens(body.get("message", "")))

    @app.ai_route("/v1/history")
    async def history(request, context):
        body = await request.json()
        context.add_message("user", body["message"])
        return {"messages": len(context.messages), "id": context.id}

    @app.ai_route("/v1/limited", token_limits=TokenLimits(tokens_per_minute=40,
                                                          max_prompt_tokens=20))
    async def limited(request, context):
        return {"ok": True}

    return app


def test_ai_route_streams_and_keeps_context():
    with _ai_app().test_client() as c:
        r = c.post("/v1/chat", json={"message": "hello"})
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "".join(e["data"] for e in r.events()) == "You asked: hello "
        first = c.post("/v1/history", json={"message": "one"}).json()
        assert first["messages"] == 1
        again = c.post("/v1/history", json={"message": "two"},
                       headers={"x-conversation-id": first["id"]}).json()
        assert again == {"messages": 2, "id": first["id"]}
        body_id = c.post("/v1/history", json={"message": "3", "conversation_id": first["id"]})
        assert body_id.json()["messages"] == 3


def test_ai_route_token_limits():
    with _ai_app().test_client() as c:
        long = " ".join(["word"] * 50)
        r = c.post("/v1/limited", json={"message": long})
        assert r.status_code == 413 and "at most 20" in r.json()["detail"]
        statuses = [c.post("/v1/limited", json={"message": "a few words here"}).status_code
                    for _ in range(12)]
        assert statuses[0] == 200 and 429 in statuses
        r = c.post("/v1/limited", json={"message": "x"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = c.post("/v1/limited", content=b"{bad json", headers={"content-type":
                                                                  "application/json"})
        assert r.status_code == 400


def test_ai_route_bad_conversation_id():
    with _ai_app().test_client() as c:
        r = c.post("/v1/history", json={"message": "x"}, headers={"x-conversation-id": "a b"})
        assert r.status_code == 400
