"""The official ``mcp`` SDK (2.x) client against an Ember app, in both protocol eras."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

mcp = pytest.importorskip("mcp")
from mcp.client import Client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

MODES = [pytest.param("auto", id="2026-07-28-discover"),
         pytest.param("legacy", id="2025-11-25-initialize")]


def run(url: str, mode: str, body: Any) -> Any:
    async def main() -> Any:
        async with Client(url, mode=mode) as client:
            return await body(client)
    return asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_negotiates_era(mcp_url: str, mode: str) -> None:
    async def body(client: Client) -> Any:
        session = client.session
        return session.protocol_version, session.server_info, session.server_capabilities, \
            session.instructions
    version, info, caps, instructions = run(mcp_url, mode, body)
    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert info.name == "ember-app" and info.version == "1.0.0"
    assert caps.tools is not None and caps.resources is not None and caps.prompts is not None
    assert instructions == "Use the tools."


@pytest.mark.parametrize("mode", MODES)
def test_tools(mcp_url: str, mode: str) -> None:
    async def body(client: Client) -> Any:
        listed = await client.list_tools()
        add = await client.call_tool("add", {"a": 2, "b": 40})
        weather = await client.call_tool("weather", {"city": "Paris"})
        primes = await client.call_tool("primes", {"limit": 12})
        failed = await client.call_tool("fail", {"reason": "boom"})
        bad_args = await client.call_tool("add", {"a": "two", "b": 1})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        return listed, add, weather, primes, failed, bad_args, unknown.value
    listed, add, weather, primes, failed, bad_args, unknown = run(mcp_url, mode, body)

    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"add", "weather", "primes", "fail"}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["properties"]["a"] == {"type": "integer"}
    assert tools["weather"].input_schema["required"] == ["city"]

    assert add.is_error is False and add.content[0].text == "42"
    assert add.structured_content is None
    assert weather.structured_content == {"city": "Paris", "temp": 21, "unit": "c"}
    assert json.loads(weather.content[0].text) == weather.structured_content
    assert primes.structured_content == {"result": [2, 3, 5, 7, 11]}
    assert failed.is_error is True and "tool failed: boom" in failed.content[0].text
    assert bad_args.is_error is True and "'a'" in bad_args.content[0].text
    assert unknown.code == -32602 and "nope" in unknown.message


@pytest.mark.parametrize("mode", MODES)
def test_resources(mcp_url: str, mode: str) -> None:
    async def body(client: Client) -> Any:
        listed = await client.list_resources()
        templates = await client.list_resource_templates()
        config = await client.read_resource("config://app")
        logo = await client.read_resource("data://logo")
        profile = await client.read_resource("users://7/profile")
        with pytest.raises(MCPError) as missing:
            await client.read_resource("config://nope")
        with pytest.raises(MCPError) as raised:
            await client.read_resource("users://0/profile")
        return listed, templates, config, logo, profile, missing.value, raised.value
    listed, templates, config, logo, profile, missing, raised = run(mcp_url, mode, body)

    by_uri = {str(r.uri): r for r in listed.resources}
    assert set(by_uri) == {"config://app", "data://logo"}
    assert by_uri["config://app"].mime_type == "application/json"
    assert by_uri["config://app"].description == "App settings"
    assert [t.uri_template for t in templates.resource_templates] == ["users://{user_id}/profile"]
    assert config.contents[0].text == '{"debug": false}'
    assert base64.b64decode(logo.contents[0].blob) == b"\x89PNG\r\n"
    assert logo.contents[0].mime_type == "image/png"
    assert profile.contents[0].text == "profile of 7"
    assert str(profile.contents[0].uri) == "users://7/profile"
    # SEP-2164: -32602 from 2026-07-28 on, -32002 before
    assert missing.code == (-32602 if mode == "auto" else -32002)
    assert raised.code == -32602 and raised.message == "no user 0"


@pytest.mark.parametrize("mode", MODES)
def test_prompts(mcp_url: str, mode: str) -> None:
    async def body(client: Client) -> Any:
        listed = await client.list_prompts()
        review = await client.get_prompt("review", {"code": "x = 1", "language": "python"})
        chat = await client.get_prompt("chat", {"topic": "owls"})
        with pytest.raises(MCPError) as missing_arg:
            await client.get_prompt("review", {})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("nope", {})
        return listed, review, chat, missing_arg.value, unknown.value
    listed, review, chat, missing_arg, unknown = run(mcp_url, mode, body)

    prompts = {p.name: p for p in listed.prompts}
    assert set(prompts) == {"review", "chat"}
    assert prompts["review"].description == "Review some code."
    assert [(a.name, a.required) for a in prompts["review"].arguments] == [
        ("code", True), ("language", False)]
    assert prompts["chat"].description == "A short conversation"
    assert review.messages[0].role == "user"
    assert review.messages[0].content.text == "Please review this python code:\nx = 1"
    assert [(m.role, m.content.text) for m in chat.messages] == [
        ("user", "Tell me about owls"), ("assistant", "Sure."),
        ("user", "More on owls, please.")]
    assert missing_arg.code == -32602 and "code" in missing_arg.message
    assert unknown.code == -32602


def test_ping_handshake_era(mcp_url: str) -> None:
    async def body(client: Client) -> Any:
        return await client.session.send_ping()
    assert run(mcp_url, "legacy", body).model_dump(exclude_none=True) == {}


def test_ember_app_methods(serve: Any) -> None:
    """``app.add_mcp`` / ``@app.mcp_resource`` / ``@app.mcp_prompt`` wire the same server."""
    from ember import Ember
    from ember.ai.tools import ToolRegistry

    tools = ToolRegistry()

    @tools.register
    def echo(text: str) -> str:
        """Echo."""
        return text

    app = Ember()
    if not hasattr(app, "add_mcp"):
        pytest.skip("Ember.add_mcp not available")
    server = app.add_mcp(path="/tools", tools=tools, name="svc", version="2.0")

    @app.mcp_resource("note://1")
    def note() -> str:
        return "hello"

    @app.mcp_prompt()
    def greet(name: str) -> str:
        return f"Hi {name}"

    assert app._mcp_server is server
    url = serve(app) + "/tools"

    async def body(client: Client) -> Any:
        return (client.session.server_info, await client.call_tool("echo", {"text": "yo"}),
                await client.read_resource("note://1"), await client.get_prompt("greet", {"name": "Al"}))
    for mode in ("auto", "legacy"):
        info, echoed, read, prompt = run(url, mode, body)
        assert (info.name, info.version) == ("svc", "2.0")
        assert echoed.content[0].text == "yo"
        assert read.contents[0].text == "hello"
        assert prompt.messages[0].content.text == "Hi Al"
