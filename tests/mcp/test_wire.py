"""The streamable HTTP wire, byte for byte: raw httpx requests, good and bad."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.mcp.conftest import ACCEPT, Wire

HANDSHAKE = ["2025-03-26", "2025-06-18", "2025-11-25"]
MODERN = "2026-07-28"

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("tools/list", {}),
    ("tools/call", {"name": "weather", "arguments": {"city": "Rome"}}),
    ("tools/call", {"name": "fail", "arguments": {"reason": "x"}}),
    ("resources/list", {}),
    ("resources/templates/list", {}),
    ("resources/read", {"uri": "config://app"}),
    ("resources/read", {"uri": "data://logo"}),
    ("resources/read", {"uri": "users://5/profile"}),
    ("prompts/list", {}),
    ("prompts/get", {"name": "review", "arguments": {"code": "1"}}),
    ("prompts/get", {"name": "chat", "arguments": {"topic": "t"}}),
]


def rpc_error(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["jsonrpc"] == "2.0" and "result" not in body
    return body["error"]


# -- results validate against the SDK's per-version wire schemas ---------------------------------


@pytest.mark.parametrize("version", HANDSHAKE)
def test_handshake_results_match_schema(wire: Wire, version: str) -> None:
    from mcp_types import methods

    result = wire.initialize(version)
    assert result["protocolVersion"] == version
    assert result["serverInfo"] == {"name": "ember-app", "version": "1.0.0"}
    methods.validate_server_result("initialize", version, result)
    r = wire.call("ping")
    assert r.status_code == 200 and r.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert r.headers["mcp-session-id"] == wire.session_id
    for i, (method, params) in enumerate(CALLS):
        r = wire.call(method, params, id=f"req-{i}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == f"req-{i}", body
        methods.validate_server_result(method, version, body["result"])
        if method == "tools/call" and params["name"] == "weather":
            assert ("structuredContent" in body["result"]) == (version != "2025-03-26")


def test_modern_results_match_schema(wire: Wire) -> None:
    from mcp_types import methods

    r = wire.modern("server/discover")
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    result = r.json()["result"]
    methods.validate_server_result("server/discover", MODERN, result)
    assert result["supportedVersions"] == [MODERN]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "ember-app"
    for i, (method, params) in enumerate(CALLS):
        r = wire.modern(method, params, id=i)
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert result["resultType"] == "complete"
        methods.validate_server_result(method, MODERN, result)


def test_unsupported_initialize_version_counter_offers_latest(wire: Wire) -> None:
    assert wire.initialize("2024-11-05")["protocolVersion"] == "2025-11-25"
    w = Wire(wire.url)
    assert w.initialize("1999-01-01")["protocolVersion"] == "2025-11-25"
    w.close()


# -- transport-level errors ------------------------------------------------------------------


def test_parse_error(wire: Wire) -> None:
    r = wire.post(None, raw=b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert r.status_code == 400
    body = r.json()
    assert body["id"] is None and body["error"]["code"] == -32700


@pytest.mark.parametrize("body", [
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},
    {"jsonrpc": "2.0", "id": True, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1},
    "ping",
    42,
    [],
])
def test_invalid_request(wire: Wire, body: Any) -> None:
    wire.initialize()
    r = wire.post(body)
    assert r.status_code == 400, r.text
    assert rpc_error(r)["code"] == -32600


def test_invalid_request_keeps_a_usable_id(wire: Wire) -> None:
    r = wire.post({"jsonrpc": "1.0", "id": "abc", "method": "ping"})
    assert r.status_code == 400 and r.json()["id"] == "abc"


def test_unknown_method_and_bad_params(wire: Wire) -> None:
    wire.initialize()
    r = wire.call("tools/frobnicate")
    assert r.status_code == 200 and rpc_error(r)["code"] == -32601
    assert wire.call("server/discover").json()["error"]["code"] == -32601
    assert rpc_error(wire.call("tools/call", {"name": 3}))["code"] == -32602
    assert rpc_error(wire.call("tools/call", {"name": "add", "arguments": [1]}))["code"] == -32602
    assert rpc_error(wire.call("tools/call", {"name": "zzz"}))["code"] == -32602
    assert rpc_error(wire.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                "params": [1]}))["code"] == -32602
    assert rpc_error(wire.call("tools/list", {"cursor": "x"}))["code"] == -32602
    assert rpc_error(wire.call("resources/read", {}))["code"] == -32602
    err = rpc_error(wire.call("resources/read", {"uri": "config://missing"}))
    assert err["code"] == -32002 and err["data"] == {"uri": "config://missing"}
    assert rpc_error(wire.call("prompts/get", {"name": "zzz"}))["code"] == -32602
    err = rpc_error(wire.call("prompts/get", {"name": "review", "arguments": {"x": "1"}}))
    assert err["code"] == -32602 and "'x'" in err["message"]
    err = rpc_error(wire.call("prompts/get", {"name": "review", "arguments": {"code": 5}}))
    assert err["code"] == -32602


def test_initialize_needs_a_protocol_version(wire: Wire) -> None:
    r = wire.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
    assert rpc_error(r)["code"] == -32602 and "mcp-session-id" not in r.headers


def test_tool_errors_are_results(wire: Wire) -> None:
    wire.initialize()
    result = wire.call("tools/call", {"name": "fail", "arguments": {"reason": "r"}}).json()["result"]
    assert result["isError"] is True and len(result["content"]) == 1
    assert result["content"][0]["type"] == "text"
    assert "tool failed: r" in result["content"][0]["text"]
    result = wire.call("tools/call", {"name": "add", "arguments": {"a": 1}}).json()["result"]
    assert result["isError"] is True and "'b'" in \
        result["content"][0]["text"]
    result = wire.call("tools/call", {"name": "add",
                                      "arguments": {"a": 1, "b": 2, "c": 3}}).json()["result"]
    assert result["isError"] is True and "'c'" in result["content"][0]["text"]


# -- sessions (handshake era) ------------------------------------------------------------------


def test_missing_session_is_400(wire: Wire) -> None:
    r = wire.call("tools/list")
    assert r.status_code == 400 and rpc_error(r)["code"] == -32600
    r = wire.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert r.status_code == 400


@pytest.mark.parametrize("session_id", ["nope", "abc.2025-11-25.0123456789abcdef0123456789abcdef",
                                        ".", "caf\u00e9.2025-11-25.\u00e9\u00e9"])
def test_unknown_session_is_404(wire: Wire, session_id: str) -> None:
    r = wire.client.post(wire.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                         headers=[(b"Accept", ACCEPT.encode()), (b"Mcp-Session-Id",
                                                                 session_id.encode("latin-1"))])
    assert r.status_code == 404 and rpc_error(r)["code"] == -32600


def test_session_id_is_visible_ascii_and_unique(wire: Wire) -> None:
    wire.initialize()
    first = wire.session_id
    assert first and all(0x21 <= ord(c) <= 0x7E for c in first)
    wire.session_id = None
    wire.initialize()
    assert wire.session_id != first


def test_delete_ends_session(wire: Wire) -> None:
    wire.initialize()
    h = {"Mcp-Session-Id": wire.session_id, "MCP-Protocol-Version": wire.version}
    assert wire.client.delete(wire.url, headers=h).status_code == 200
    assert wire.call("ping").status_code == 404
    assert wire.client.delete(wire.url, headers=h).status_code == 404
    assert wire.client.delete(wire.url).status_code == 400


def test_get_is_405(wire: Wire) -> None:
    wire.initialize()
    r = wire.client.get(wire.url, headers={"Accept": "text/event-stream",
                                           "Mcp-Session-Id": wire.session_id})
    assert r.status_code == 405 and "POST" in r.headers["allow"]


def test_notifications_and_client_responses_are_202(wire: Wire) -> None:
    wire.initialize()
    for body in ({"jsonrpc": "2.0", "method": "notifications/cancelled",
                  "params": {"requestId": 1}},
                 {"jsonrpc": "2.0", "method": "notifications/whatever"},
                 {"jsonrpc": "2.0", "id": 5, "result": {}},
                 {"jsonrpc": "2.0", "id": 6, "error": {"code": 1, "message": "x"}}):
        r = wire.post(body)
        assert r.status_code == 202 and r.content == b"", body


# -- MCP-Protocol-Version header (handshake era) ----------------------------------------------


def test_protocol_version_header(wire: Wire) -> None:
    wire.initialize("2025-06-18")
    assert wire.call("ping").status_code == 200
    # absent: tolerated (the spec says to assume the negotiated/default version)
    r = wire.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  headers={"MCP-Protocol-Version": None})
    assert r.status_code == 200
    for bad in ("2025-11-25", "2024-11-05", "garbage"):
        r = wire.post({"jsonrpc": "2.0", "id": 1, "method": "ping"},
                      headers={"MCP-Protocol-Version": bad})
        assert r.status_code == 400, bad
        assert rpc_error(r)["code"] == -32600


# -- batches --------------------------------------------------------------------------------------


def test_batch_at_2025_03_26(wire: Wire) -> None:
    wire.initialize("2025-03-26")
    r = wire.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"},
                   {"jsonrpc": "2.0", "method": "notifications/initialized"},
                   {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "add", "arguments": {"a": 1, "b": 1}}},
                   {"jsonrpc": "2.0", "id": 3, "method": "nope"},
                   {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}},
                   {"bogus": True}])
    assert r.status_code == 200
    answers = r.json()
    assert [a["id"] for a in answers] == [1, 2, 3, 4, None]
    assert answers[0]["result"] == {}
    assert answers[1]["result"]["content"][0]["text"] == "2"
    assert [a["error"]["code"] for a in answers[2:]] == [-32601, -32600, -32600]
    only_notes = wire.post([{"jsonrpc": "2.0", "method": "notifications/initialized"}])
    assert only_notes.status_code == 202 and only_notes.content == b""


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_batch_rejected_from_2025_06_18(wire: Wire, version: str) -> None:
    wire.initialize(version)
    r = wire.post([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert r.status_code == 400 and rpc_error(r)["code"] == -32600


def test_batch_without_session(wire: Wire) -> None:
    r = wire.post([{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-03-26"}}])
    assert r.status_code == 400


# -- HTTP-level checks ----------------------------------------------------------------------


def test_content_type_and_accept(wire: Wire) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
    r = wire.post(None, raw=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = wire.post(None, raw=body, headers={"Accept": "text/html"})
    assert r.status_code == 406


def test_origin_check(serve: Any) -> None:
    from tests.mcp.conftest import make_app

    base = serve(make_app())
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}
    h = {"Accept": ACCEPT}
    assert httpx.post(base + "/mcp", json=init,
                      headers={**h, "Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(base + "/mcp", json=init, headers={**h, "Origin": base}).status_code == 200
    for odd in ("null", "http://[::1", ""):
        assert httpx.post(base + "/mcp", json=init,
                          headers={**h, "Origin": odd}).status_code == 403, odd
    allowed = serve(make_app(allowed_origins=["https://app.example"]))
    assert httpx.post(allowed + "/mcp", json=init,
                      headers={**h, "Origin": "https://app.example"}).status_code == 200
    assert httpx.post(allowed + "/mcp", json=init,
                      headers={**h, "Origin": allowed}).status_code == 403


# -- 2026-07-28 per-request envelope ---------------------------------------------------------


def test_modern_errors(wire: Wire) -> None:
    r = wire.modern("tools/frobnicate")
    assert r.status_code == 404 and rpc_error(r)["code"] == -32601
    r = wire.modern("ping")  # removed in 2026-07-28
    assert r.status_code == 404 and rpc_error(r)["code"] == -32601
    r = wire.modern("initialize", {"protocolVersion": "2025-11-25"})
    assert r.status_code == 404
    r = wire.modern("tools/call", {"name": "nope", "arguments": {}})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32602
    r = wire.modern("resources/read", {"uri": "config://missing"})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32602  # SEP-2164
    r = wire.modern("tools/call", {"name": "fail", "arguments": {"reason": "m"}})
    assert r.status_code == 200 and r.json()["result"]["isError"] is True


def test_modern_envelope_checks(wire: Wire) -> None:
    r = wire.modern("tools/list", meta={})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32602
    r = wire.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                  headers={"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32602
    r = wire.modern("tools/list", headers={"Mcp-Method": "prompts/list"})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32020
    r = wire.modern("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}},
                    headers={"Mcp-Name": "fail"})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32020
    r = wire.modern("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}},
                    headers={"Mcp-Name": "=?base64?YWRk?="})  # "add", base64-wrapped
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "3"
    r = wire.modern("tools/list", meta={
        "io.modelcontextprotocol/protocolVersion": "2025-11-25",
        "io.modelcontextprotocol/clientCapabilities": {}})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32020


def test_modern_unsupported_version(wire: Wire) -> None:
    r = wire.modern("server/discover", version="2099-01-01")
    assert r.status_code == 400
    err = rpc_error(r)
    assert err["code"] == -32022
    assert err["data"] == {"supported": [MODERN], "requested": "2099-01-01"}


def test_modern_notifications_and_batches(wire: Wire) -> None:
    h = {"MCP-Protocol-Version": MODERN}
    r = wire.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 1}}, headers=h)
    assert r.status_code == 202 and r.content == b""
    r = wire.post({"jsonrpc": "2.0", "method": "notifications/cancelled"},
                  headers={"MCP-Protocol-Version": "2099-01-01"})
    assert r.status_code == 400 and rpc_error(r)["code"] == -32022
    r = wire.post([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}], headers=h)
    assert r.status_code == 400 and rpc_error(r)["code"] == -32600
    r = wire.post({"jsonrpc": "2.0", "id": 1, "result": {}}, headers=h)
    assert r.status_code == 400 and rpc_error(r)["code"] == -32600
    r = wire.post(None, raw=b"{nope", headers=h)
    assert r.status_code == 400 and rpc_error(r)["code"] == -32700


def test_modern_requests_ignore_sessions(wire: Wire) -> None:
    wire.initialize()
    r = wire.modern("tools/list", headers={"MCP-Protocol-Version": MODERN})
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
