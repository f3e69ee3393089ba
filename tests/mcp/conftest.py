"""An Ember app with tools, resources and prompts behind ``ember.mcp.add_mcp``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ember import Ember
from ember.ai.tools import ToolRegistry
from ember.mcp import MCPError, add_mcp
from ember.mcp.protocol import INVALID_PARAMS

ACCEPT = "application/json, text/event-stream"


def make_app(**options: Any) -> Ember:
    tools = ToolRegistry()

    @tools.register
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tools.register
    async def weather(city: str, unit: str = "c") -> dict:
        """Current weather for a city."""
        return {"city": city, "temp": 21, "unit": unit}

    @tools.register
    def primes(limit: int) -> list:
        """Primes below a limit."""
        return [n for n in range(2, limit) if all(n % d for d in range(2, n))]

    @tools.register
    def fail(reason: str) -> str:
        """Always raises."""
        raise RuntimeError(f"tool failed: {reason}")

    app = Ember()
    server = add_mcp(app, "/mcp", tools=tools, name="ember-app", version="1.0.0",
                     instructions="Use the tools.", **options)

    @server.resource("config://app", description="App settings", mime_type="application/json")
    def config() -> str:
        return '{"debug": false}'

    @server.resource("data://logo", mime_type="image/png")
    async def logo() -> bytes:
        return b"\x89PNG\r\n"

    @server.resource("users://{user_id}/profile")
    def profile(user_id: str) -> str:
        """A user's profile."""
        if user_id == "0":
            raise MCPError(INVALID_PARAMS, "no user 0")
        return f"profile of {user_id}"

    @server.prompt()
    def review(code: str, language: str = "python") -> str:
        """Review some code."""
        return f"Please review this {language} code:\n{code}"

    @server.prompt(name="chat", description="A short conversation")
    async def conversation(topic: str) -> list:
        return [{"role": "user", "content": f"Tell me about {topic}"},
                {"role": "assistant", "content": "Sure."},
                f"More on {topic}, please."]

    return app


@pytest.fixture
def mcp_url(serve: Callable[..., str]) -> str:
    return serve(make_app()) + "/mcp"


class Wire:
    """Raw JSON-RPC over HTTP, for the handshake era (2025-*) and 2026-07-28."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=10)
        self.session_id: str | None = None
        self.version: str | None = None

    def post(self, body: Any, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> httpx.Response:
        h = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        if self.version and self.session_id:
            h["MCP-Protocol-Version"] = self.version
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        if raw is not None:
            return self.client.post(self.url, content=raw, headers=h)
        return self.client.post(self.url, json=body, headers=h)

    def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        r = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}})
        assert r.status_code == 200, r.text
        self.session_id = r.headers["mcp-session-id"]
        result = r.json()["result"]
        self.version = result["protocolVersion"]
        r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert r.status_code == 202 and r.content == b""
        return result

    def call(self, method: str, params: dict[str, Any] | None = None,
             id: Any = 1) -> httpx.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body)

    def modern(self, method: str, params: dict[str, Any] | None = None, id: Any = 1,
               version: str = "2026-07-28", headers: dict[str, str] | None = None,
               meta: dict[str, Any] | None = None) -> httpx.Response:
        params = dict(params or {})
        params["_meta"] = meta if meta is not None else {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}
        h = {"MCP-Protocol-Version": version, "Mcp-Method": method}
        name_key = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
        if method in name_key and name_key[method] in params:
            h["Mcp-Name"] = params[name_key[method]]
        h.update(headers or {})
        return self.post({"jsonrpc": "2.0", "id": id, "method": method, "params": params}, h)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def wire(mcp_url: str):
    w = Wire(mcp_url)
    yield w
    w.close()
