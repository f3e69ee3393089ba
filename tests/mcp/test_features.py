"""Registration rules for resources and prompts, and result shapes, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ember import Ember
from ember.mcp import MCPError, MCPServer, Prompt, Resource, add_mcp
from ember.mcp.server import _tool_result


def test_add_mcp_sets_app_server_and_route() -> None:
    app = Ember()
    server = add_mcp(app, path="/agent", name="n", version="v", instructions="i")
    assert isinstance(server, MCPServer) and app._mcp_server is server
    assert (server.name, server.version, server.instructions, server.path) == \
        ("n", "v", "i", "/agent")
    assert server.capabilities() == {}
    server.tools = object()
    assert set(server.capabilities()) == {"tools"}


def test_resource_rules() -> None:
    server = MCPServer()

    @server.resource("a://x")
    def x() -> str:
        """Doc line."""
        return "x"

    with pytest.raises(ValueError, match="already registered"):
        server.resource("a://x")(x)
    with pytest.raises(ValueError, match="URI template"):
        server.resource("a://y")(lambda name: name)
    with pytest.raises(ValueError, match="must match the template"):
        server.resource("a://{id}")(lambda other: other)
    with pytest.raises(ValueError, match="non-empty"):
        Resource("", x)
    assert server.resources["a://x"].describe() == {
        "uri": "a://x", "name": "x", "description": "Doc line.", "mimeType": "text/plain"}

    tpl = Resource("files://{dir}/{name}.txt", lambda dir, name: f"{dir}/{name}")
    assert tpl.is_template and tpl.describe()["uriTemplate"] == "files://{dir}/{name}.txt"
    assert tpl.match("files://docs/read%20me.txt") == {"dir": "docs", "name": "read me"}
    assert tpl.match("files://a/b/c.txt") is None
    assert tpl.match("files://docs/readme.md") is None


def test_resource_values() -> None:
    async def read(fn: Any, mime: str | None = "text/plain") -> list[dict[str, Any]]:
        return await Resource("r://1", fn, mime_type=mime).read("r://1", {})
    assert asyncio.run(read(lambda: "t")) == [{"uri": "r://1", "mimeType": "text/plain",
                                               "text": "t"}]
    assert asyncio.run(read(lambda: b"\x00\x01", None)) == [{"uri": "r://1", "blob": "AAE="}]
    assert asyncio.run(read(lambda: {"k": [1]}))[0]["text"] == '{"k":[1]}'


def test_prompt_rules() -> None:
    server = MCPServer()

    @server.prompt
    def plain(topic: str, count: int = 3, loud: bool = False) -> str:
        """Plain prompt."""
        return f"{topic} {count} {loud}"

    assert server.prompts["plain"].describe() == {
        "name": "plain", "description": "Plain prompt.",
        "arguments": [{"name": "topic", "required": True},
                      {"name": "count", "required": False},
                      {"name": "loud", "required": False}]}
    with pytest.raises(ValueError, match="already registered"):
        server.prompt()(plain)
    with pytest.raises(TypeError, match="must be typed str"):
        Prompt(_listy)

    p = server.prompts["plain"]
    out = asyncio.run(p.render({"topic": "t", "count": "5", "loud": "yes"}))
    assert out["messages"][0]["content"]["text"] == "t 5 True"
    for bad in ({"topic": "t", "count": "many"}, {"topic": "t", "loud": "maybe"}, {},
                {"topic": "t", "extra": "1"}, {"topic": 1}):
        with pytest.raises(MCPError) as info:
            asyncio.run(p.render(bad))
        assert info.value.code == -32602


def _listy(items: list) -> str:
    return ""


def test_prompt_message_shapes() -> None:
    def conversation() -> list:
        return [{"role": "assistant", "content": {"type": "image", "data": "AA==",
                                                  "mimeType": "image/png"}}]
    out = asyncio.run(Prompt(conversation).render({}))
    assert out["messages"][0]["content"]["type"] == "image"
    with pytest.raises(TypeError, match="role"):
        asyncio.run(Prompt(lambda: [{"role": "system", "content": "x"}], name="p").render({}))
    with pytest.raises(TypeError, match="must return"):
        asyncio.run(Prompt(lambda: 5, name="p").render({}))


def test_tool_result_shapes() -> None:
    assert _tool_result("hi", "2025-11-25") == {
        "content": [{"type": "text", "text": "hi"}], "isError": False}
    assert _tool_result(None, "2025-11-25") == {"content": [], "isError": False}
    assert _tool_result(1.5, "2025-11-25")["content"][0]["text"] == "1.5"
    assert _tool_result({"a": 1}, "2026-07-28")["structuredContent"] == {"a": 1}
    assert _tool_result((1, 2), "2025-06-18")["structuredContent"] == {"result": [1, 2]}
    assert "structuredContent" not in _tool_result({"a": 1}, "2025-03-26")
