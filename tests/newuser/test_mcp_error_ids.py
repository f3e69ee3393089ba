"""MCP session errors answer with the request's id (JSON-RPC 2.0 §5: ``"id": null`` only
when the id could not be read), so a client can match the error to its call."""

from __future__ import annotations

import httpx
import pytest

from ember import Ember
from ember.ai.tools import ToolRegistry
from ember.mcp import add_mcp
from ember.testing import LiveServer

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _app() -> Ember:
    tools = ToolRegistry()

    @tools.register
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    app = Ember()
    add_mcp(app, "/mcp", tools=tools, name="t", version="1")
    return app


@pytest.fixture(scope="module")
def mcp():
    with LiveServer(_app()) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def _session(client: httpx.Client, version: str = "2025-03-26") -> str:
    r = client.post("/mcp", headers=HEADERS, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "t", "version": "0"}}})
    assert r.status_code == 200, r.text
    return r.headers["mcp-session-id"]


@pytest.mark.parametrize("request_id", [7, "call-7", 0, -1])
def test_missing_session_answers_the_request_id(mcp, request_id):
    r = mcp.post("/mcp", headers=HEADERS,
                 json={"jsonrpc": "2.0", "id": request_id, "method": "tools/list"})
    assert r.status_code == 400
    body = r.json()
    assert body["id"] == request_id and body["error"]["code"] == -32600
    assert "Mcp-Session-Id" in body["error"]["message"]


def test_unknown_session_answers_the_request_id(mcp):
    r = mcp.post("/mcp", headers={**HEADERS, "Mcp-Session-Id": "gone"},
                 json={"jsonrpc": "2.0", "id": "x1", "method": "ping"})
    assert r.status_code == 404 and r.json()["id"] == "x1"


def test_ended_session_and_version_mismatch_answer_the_request_id(mcp):
    sid = _session(mcp)
    r = mcp.post("/mcp", headers={**HEADERS, "Mcp-Session-Id": sid,
                                  "MCP-Protocol-Version": "2025-06-18"},
                 json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
    assert r.status_code == 400 and r.json()["id"] == 9
    assert "does not match" in r.json()["error"]["message"]
    assert mcp.delete("/mcp", headers={"Mcp-Session-Id": sid}).status_code == 200
    r = mcp.post("/mcp", headers={**HEADERS, "Mcp-Session-Id": sid},
                 json={"jsonrpc": "2.0", "id": 10, "method": "tools/list"})
    assert r.status_code == 404 and r.json()["id"] == 10


def test_a_batch_gets_one_error_per_request_id_and_none_for_notifications(mcp):
    r = mcp.post("/mcp", headers={**HEADERS, "Mcp-Session-Id": "gone"}, json=[
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
        {"not": "a message"},
    ])
    assert r.status_code == 404
    assert [(e["id"], e["error"]["code"]) for e in r.json()] == [(1, -32600), ("two", -32600)]


@pytest.mark.parametrize(("body", "status"), [
    (b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', 400),  # no id to answer
    (b'{"jsonrpc": "2.0", "id": 3, "method": ', 400),                    # unreadable: parse error
    (b'[{"jsonrpc": "2.0", "method": "notifications/initialized"}]', 400),
])
def test_id_is_null_only_when_there_is_none_to_read(mcp, body, status):
    r = mcp.post("/mcp", headers=HEADERS, content=body)
    assert r.status_code == status
    assert r.json()["id"] is None
