"""ToolRegistry: JSON schemas from typed functions, validated execution, tool-call helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
from typing import Annotated, Literal, Optional, TypedDict

import orjson
import pydantic
import pytest

from ember import ToolRegistry
from ember.ai import ToolError, ToolExecutionError
from ember.models.schemas import ToolCall
from tests.models import _wire
from tests.models._fake import Reply


class Unit(enum.Enum):
    C = "c"
    F = "f"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Filters(TypedDict, total=False):
    tag: str
    limit: int


class Address(pydantic.BaseModel):
    city: str


class Person(pydantic.BaseModel):
    name: str
    address: Address


def _tools() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.register
    async def get_weather(city: str, unit: Unit = Unit.C, days: int = 1) -> dict:
        """Current weather for a city.

        Args:
            city: The city name,
                for example "Paris".
            days: How many days ahead.
        """
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
    def move(p: Point, tags: list[str] | None = None, scale: Optional[float] = None) -> dict:  # noqa: UP045
        """Move a point."""
        return {"x": p.x + 1, "tags": tags or [], "scale": scale}

    @tools.register
    def where() -> str:
        """Which thread runs sync tools."""
        return threading.current_thread().name

    @tools.register
    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError(f"boom {x}")

    @tools.register
    def kinds(counts: dict[str, int], pair: tuple[int, str], ids: set[int],
              filters: Filters | None = None,
              who: Annotated[str, "Who is asking"] = "me",
              person: Person | None = None) -> dict:
        """Many kinds of arguments."""
        return {"counts": counts, "pair": list(pair), "ids": sorted(ids),
                "filters": filters, "who": who,
                "person": person.model_dump() if person else None}

    return tools


def _by_name(tools: ToolRegistry) -> dict[str, dict]:
    return {t["function"]["name"]: t["function"] for t in tools.to_openai()}


def test_openai_schemas():
    fns = _by_name(_tools())
    weather = fns["get_weather"]
    assert weather["description"] == "Current weather for a city."
    params = weather["parameters"]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string",
                                            "description": 'The city name, for example "Paris".'}
    assert params["properties"]["unit"] == {"enum": ["c", "f"], "default": "c"}
    assert params["properties"]["days"] == {"type": "integer", "default": 1,
                                            "description": "How many days ahead."}
    assert fns["add"]["description"] == "Add numbers"
    assert fns["add"]["parameters"]["properties"]["mode"]["enum"] == ["exact", "round"]
    move = fns["move"]["parameters"]
    assert move["required"] == ["p"]
    assert move["properties"]["p"]["required"] == ["x"]
    assert move["properties"]["tags"] == {"type": "array", "items": {"type": "string"},
                                          "default": None}
    assert move["properties"]["scale"]["type"] == "number"
    kinds = fns["kinds"]["parameters"]
    props = kinds["properties"]
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    assert props["filters"]["properties"] == {"tag": {"type": "string"},
                                              "limit": {"type": "integer"}}
    assert props["filters"]["required"] == []
    assert props["who"]["description"] == "Who is asking"
    assert props["person"]["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert "Address" in kinds["$defs"]  # nested pydantic definitions hoisted to the root


def test_anthropic_and_mcp_shapes():
    tools = _tools()
    openai = tools.to_openai()
    anthropic = tools.to_anthropic()
    mcp = tools.to_mcp()
    assert len(openai) == len(anthropic) == len(mcp) == len(tools) == 7
    assert openai[0]["type"] == "function"
    assert anthropic[0] == {"name": "get_weather", "description": "Current weather for a city.",
                            "input_schema": openai[0]["function"]["parameters"]}
    assert mcp[0] == {"name": "get_weather", "description": "Current weather for a city.",
                      "inputSchema": openai[0]["function"]["parameters"]}
    assert "add" in tools and "nope" not in tools and tools.names[0] == "get_weather"


def test_calls_validate_coerce_and_run():
    tools = _tools()

    async def main():
        assert await tools.call("get_weather", {"city": "Paris", "unit": "f"}) == {
            "city": "Paris", "unit": "f", "days": 1}
        assert await tools.call("get_weather", '{"city": "Oslo", "days": 2.0}') == {
            "city": "Oslo", "unit": "c", "days": 2}
        assert await tools.call("add", b'{"a": 1, "b": 2.5}') == 3.5
        assert await tools.call("move", {"p": {"x": 1}, "tags": None}) == {
            "x": 2, "tags": [], "scale": None}
        assert await tools.call("where") != threading.current_thread().name
        result = await tools.call("kinds", {
            "counts": {"a": 1}, "pair": [1, "x"], "ids": [3, 1, 3],
            "filters": {"tag": "t"}, "person": {"name": "Ada", "address": {"city": "London"}}})
        assert result == {"counts": {"a": 1}, "pair": [1, "x"], "ids": [1, 3],
                          "filters": {"tag": "t"}, "who": "me",
                          "person": {"name": "Ada", "address": {"city": "London"}}}

    asyncio.run(main())


@pytest.mark.parametrize(("name", "args", "message"), [
    ("nope", {}, "unknown tool 'nope'; known tools"),
    ("get_weather", {}, r"missing required argument\(s\) \['city'\]"),
    ("get_weather", {"city": 3}, "argument 'city': expected a string, got 3"),
    ("get_weather", {"city": "x", "extra": 1}, r"unknown argument\(s\) \['extra'\]"),
    ("get_weather", {"city": "x", "unit": "k"}, "must be one of"),
    ("get_weather", {"city": "x", "days": 1.5}, "expected an integer"),
    ("add", "{not json", "not valid JSON"),
    ("add", "[1, 2]", "must be a JSON object"),
    ("add", {"a": True, "b": 1}, "expected a number"),
    ("add", {"a": 1, "b": 1, "mode": "fast"}, "must be one of"),
    ("move", {"p": {"x": "1"}}, r"argument 'p'\.x: expected an integer"),
    ("move", {"p": {"x": 1, "z": 2}}, "unknown field"),
    ("move", {"p": {"x": 1}, "tags": ["a", 2]}, r"tags'\[1\]"),
    ("kinds", {"counts": {"a": "x"}, "pair": [1, "x"], "ids": []}, "expected an integer"),
    ("kinds", {"counts": {}, "pair": [1], "ids": []}, "expected 2 items"),
    ("kinds", {"counts": {}, "pair": [1, "a"], "ids": [], "person": {"name": "x"}}, "address"),
    ("slow", {}, "timed out after 0.05 s"),
])
def test_bad_calls(name, args, message):
    tools = _tools()
    with pytest.raises(ToolError, match=message) as info:
        asyncio.run(tools.call(name, args))
    assert info.value.tool == name


def test_tool_failures_are_wrapped():
    with pytest.raises(ToolExecutionError, match="tool 'broken' failed: RuntimeError: boom 2") \
            as info:
        asyncio.run(_tools().call("broken", {"x": 2}))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_call_timeout_override():
    tools = ToolRegistry()

    @tools.register
    async def nap(seconds: float) -> str:
        """Sleeps."""
        await asyncio.sleep(seconds)
        return "done"

    assert asyncio.run(tools.call("nap", {"seconds": 0.01}, timeout=1)) == "done"
    with pytest.raises(ToolError, match="timed out"):
        asyncio.run(tools.call("nap", {"seconds": 1}, timeout=0.05))


def test_run_tool_calls_and_tool_uses():
    tools = _tools()

    async def main():
        messages = await tools.run_tool_calls([
            {"id": "c1", "type": "function", "function": {"name": "add",
                                                          "arguments": '{"a":1,"b":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
            ToolCall(id="c3", name="get_weather", arguments='{"city": "Rome"}'),
            {"id": "c4", "function": {"name": "broken", "arguments": '{"x": 1}'}},
        ])
        assert messages[0] == {"role": "tool", "tool_call_id": "c1", "content": "2.0"}
        assert messages[1]["tool_call_id"] == "c2"
        assert "unknown tool" in orjson.loads(messages[1]["content"])["error"]
        assert orjson.loads(messages[2]["content"]) == {"city": "Rome", "unit": "c", "days": 1}
        assert "boom 1" in messages[3]["content"]
        blocks = await tools.run_tool_uses([
            {"type": "text", "text": "let me check"},
            {"type": "tool_use", "id": "t1", "name": "add", "input": {"a": 2, "b": 2}},
            {"type": "tool_use", "id": "t2", "name": "add", "input": {"a": "x", "b": 2}},
        ])
        assert blocks[0] == {"type": "tool_result", "tool_use_id": "t1", "content": "4.0"}
        assert blocks[1]["is_error"] is True and "expected a number" in blocks[1]["content"]

    asyncio.run(main())


def test_registration_errors():
    tools = _tools()
    with pytest.raises(ValueError, match="already registered"):
        @tools.register(name="add")
        def other(x: int) -> int:
            return x
    with pytest.raises(TypeError, match="cannot describe"):
        @tools.register
        def weird(x: complex) -> None:
            """No schema for complex."""
    with pytest.raises(ValueError, match="tool name"):
        tools.register(lambda: None, name="has space")
    with pytest.raises(TypeError, match="positional-only"):
        tools.register(len, name="length")

    def plain(x: int) -> int:
        return x

    assert tools.register(name="plain")(plain) is plain  # the function comes back unchanged


def test_tool_calling_loop_against_an_openai_compatible_upstream(fake, registry, monkeypatch):
    tools = _tools()
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    fake.queue("openai",
               Reply(body=orjson.dumps(_wire.openai_completion(None, tool_calls=[call],
                                                               finish="tool_calls"))),
               Reply(body=orjson.dumps(_wire.openai_completion("It is mild in Paris."))))
    from ember.ai.router import ModelRouter

    router = ModelRouter(["gpt-4o"], registry=registry)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    final = asyncio.run(tools.run_loop(router, messages))
    assert final.text == "It is mild in Paris."
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert orjson.loads(messages[2]["content"])["city"] == "Paris"
    first, second = fake.requests
    assert first.body["tools"] == tools.to_openai()
    assert second.body["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert second.body["messages"][2] == {"role": "tool", "tool_call_id": "call_1",
                                          "content": messages[2]["content"]}

    fake.handler = lambda seen: Reply(body=orjson.dumps(_wire.openai_completion(
        None, tool_calls=[call], finish="tool_calls")))
    with pytest.raises(ToolError, match="after 2 rounds"):
        asyncio.run(tools.run_loop(router, [{"role": "user", "content": "loop"}], max_rounds=2))
