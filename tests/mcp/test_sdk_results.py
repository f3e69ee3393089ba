"""MCP per spec 2025-06-18+, with the official ``mcp`` SDK client: structured results with
an outputSchema for pydantic / dataclass / msgspec / TypedDict returns, redacted tool
errors, and ``notifications/cancelled`` stopping the running tool."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest

from ember import Ember
from ember.ai.tools import ToolRegistry
from ember.mcp import add_mcp

mcp = pytest.importorskip("mcp")
from mcp.client import Client  # noqa: E402

MODES = [pytest.param("auto", id="2026-07-28"), pytest.param("legacy", id="2025-11-25")]


class Forecast(pydantic.BaseModel):
    city: str
    temps: list[float]


@dataclasses.dataclass
class Point:
    x: int
    y: int
    label: str = "p"


class Book(msgspec.Struct):
    title: str
    year: int


class Totals(TypedDict):
    count: int
    total: float


STATE: dict[str, Any] = {}


def make_app() -> Ember:
    tools = ToolRegistry()

    @tools.register
    def forecast(city: str) -> Forecast:
        """A pydantic model."""
        return Forecast(city=city, temps=[21.5, 19.0])

    @tools.register
    def point(x: int) -> Point:
        """A dataclass."""
        return Point(x, x * 2)

    @tools.register
    def book() -> Book:
        """A msgspec Struct."""
        return Book("Dune", 1965)

    @tools.register
    def totals() -> Totals:
        """A TypedDict."""
        return {"count": 2, "total": 3.5}

    @tools.register
    def untyped():  # NOTE: no annotation: structured, but no schema
        """A model returned without an annotation."""
        return Forecast(city="Oslo", temps=[])

    @tools.register
    def leak() -> str:
        """Raises with the server's secrets in the message."""
        import os

        raise RuntimeError(f"upstream refused key {os.environ['OPENAI_API_KEY']} and token "
                           f"{os.environ['BILLING_SERVICE_TOKEN']} at "
                           f"https://admin:pa55word@db.internal/x")

    @tools.register(timeout=None)
    async def slow() -> str:
        """Runs until cancelled."""
        STATE["started"] = True
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            STATE["cancelled"] = True
            raise
        return "finished"

    @tools.register
    def state() -> dict:
        """What slow() saw."""
        return {"started": bool(STATE.get("started")), "cancelled": bool(STATE.get("cancelled"))}

    app = Ember()
    add_mcp(app, "/mcp", tools=tools, name="results", version="1.0.0")
    return app


@pytest.fixture
def url(serve) -> str:
    STATE.clear()
    return serve(make_app()) + "/mcp"


def run(url: str, mode: str, body: Any) -> Any:
    async def main() -> Any:
        async with Client(url, mode=mode) as client:
            return await body(client)
    return asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("mode", MODES)
def test_structured_results_with_output_schemas(url, mode):
    async def body(client: Client) -> Any:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        calls = {name: await client.call_tool(name, args) for name, args in (
            ("forecast", {"city": "Paris"}), ("point", {"x": 3}), ("book", {}),
            ("totals", {}), ("untyped", {}))}
        return listed, calls

    listed, calls = run(url, mode, body)
    expected = {"forecast": {"city": "Paris", "temps": [21.5, 19.0]},
                "point": {"x": 3, "y": 6, "label": "p"}, "book": {"title": "Dune", "year": 1965},
                "totals": {"count": 2, "total": 3.5}, "untyped": {"city": "Oslo", "temps": []}}
    for name, data in expected.items():
        result = calls[name]
        assert result.is_error is False
        assert result.structured_content == data, name  # the SDK validated it if a schema
        assert json.loads(result.content[0].text) == data  # and the text block for old clients
    for name in ("forecast", "point", "book", "totals"):
        schema = listed[name].output_schema
        assert schema["type"] == "object" and set(schema["properties"]) >= set(expected[name])
    assert listed["untyped"].output_schema is None and listed["state"].output_schema is None


@pytest.mark.parametrize("mode", MODES)
def test_tool_errors_are_redacted(url, mode, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-Abc123SecretValue")
    monkeypatch.setenv("BILLING_SERVICE_TOKEN", "tok_live_hunter2hunter2")

    async def body(client: Client) -> Any:
        return await client.call_tool("leak", {})

    result = run(url, mode, body)
    text = result.content[0].text
    assert result.is_error is True and "upstream refused key" in text
    for secret in ("sk-proj-Abc123SecretValue", "tok_live_hunter2hunter2", "pa55word"):
        assert secret not in text


def test_cancelled_notification_stops_the_running_tool(url):
    async def body(client: Client) -> Any:
        call = asyncio.create_task(client.call_tool("slow", {}))
        for _ in range(200):
            if (await client.call_tool("state", {})).structured_content["started"]:
                break
            await asyncio.sleep(0.02)
        call.cancel()  # the SDK sends notifications/cancelled for the abandoned request
        with contextlib.suppress(asyncio.CancelledError):
            await call
        for _ in range(200):
            seen = (await client.call_tool("state", {})).structured_content
            if seen["cancelled"]:
                return seen
            await asyncio.sleep(0.02)
        return seen

    assert run(url, "legacy", body) == {"started": True, "cancelled": True}


def test_cancel_is_scoped_to_its_session_and_garbage_is_ignored(serve):
    import threading
    import time

    from tests.mcp.conftest import Wire

    STATE.clear()
    app = make_app()
    url = serve(app) + "/mcp"
    server = app._mcp_server
    a, b = Wire(url), Wire(url)
    a.initialize()
    b.initialize()
    answer: dict[str, Any] = {}
    caller = threading.Thread(target=lambda: answer.update(
        r=a.call("tools/call", {"name": "slow", "arguments": {}}, id=7)))
    caller.start()
    deadline = time.monotonic() + 30  # hang guard
    while not server._running and time.monotonic() < deadline:
        time.sleep(0.01)
    (work,) = server._running.values()
    for params in ({"requestId": 7, "reason": "not yours"}, {}, {"requestId": {"x": 7}},
                   {"requestId": None}, {"requestId": True}, None, []):
        body = {"jsonrpc": "2.0", "method": "notifications/cancelled"}
        if params is not None:
            body["params"] = params
        r = b.post(body)
        assert r.status_code in (202, 400), r.text
        assert work.cancelling() == 0 and not work.done()  # still running
    r = a.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": "7"}})  # "7" is not 7
    assert r.status_code == 202 and work.cancelling() == 0
    r = a.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 7, "reason": "user pressed stop"}})
    assert r.status_code == 202
    caller.join(30)
    error = answer["r"].json()["error"]
    assert error["code"] == -32800 and error["message"] == "Request cancelled"
    assert STATE["cancelled"] is True and server._running == {}
    a.close()
    b.close()
