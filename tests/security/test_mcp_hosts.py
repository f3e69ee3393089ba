"""MCP DNS-rebinding protection: Host × Origin × loopback/public bindings, over real sockets.

A rebinding page controls both ``Host`` and ``Origin`` (issue #10, fault 1): the server must
check ``Host`` against loopback names plus ``allowed_hosts`` (421 otherwise) and ``Origin``
against its own allow-list (403 otherwise), never one against the other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from ember import Ember
from ember.ai.tools import ToolRegistry
from ember.exceptions import ConfigError
from ember.mcp.security import HostOriginGuard

ACCEPT = "application/json, text/event-stream"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}
CALLS: list[str] = []


def make_app(**options: Any) -> Ember:
    tools = ToolRegistry()

    @tools.register
    def touch(path: str) -> str:
        """A tool with a side effect (what a rebinding attack wants to run)."""
        CALLS.append(path)
        return "done"

    app = Ember()
    app.add_mcp("/mcp", tools=tools, **options)
    return app


def post(base: str, host: str | None, origin: str | None, body: Any = INIT,
         extra: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Accept": ACCEPT, **(extra or {})}
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    return httpx.post(base + "/mcp", json=body, headers=headers)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


# (Host, Origin, expected status) for the default configuration; {p} is the server's port
DEFAULT_MATRIX = [
    ("127.0.0.1:{p}", None, 200),
    ("localhost:{p}", None, 200),
    ("LOCALHOST:{p}", None, 200),
    ("[::1]:{p}", None, 200),
    ("localhost", None, 200),
    ("127.0.0.1:{p}", "http://127.0.0.1:{p}", 200),
    ("127.0.0.1:{p}", "http://localhost:5173", 200),
    ("127.0.0.1:{p}", "https://[::1]:9", 200),
    # the rebinding attack: attacker's name in Host, with its Origin or none
    ("evil.example:{p}", "http://evil.example:{p}", 421),
    ("evil.example:{p}", None, 421),
    ("evil.example", None, 421),
    ("localhost.evil.example:{p}", None, 421),
    ("127.0.0.1.nip.io:{p}", None, 421),
    # NOTE (issue 23): an invalid Host value is refused by the engine first: 400
    # (RFC 9112 §3.2 MUST), before any app or MCP check
    ("localhost@evil.example", None, 400),
    ("localhost:{p}:1", None, 400),
    ("[::1", None, 400),
    ("", None, 421),
    # loopback Host, foreign Origin: a page elsewhere calling a local server
    ("127.0.0.1:{p}", "http://evil.example:{p}", 403),
    ("127.0.0.1:{p}", "http://evil.example", 403),
    ("127.0.0.1:{p}", "null", 403),
    ("127.0.0.1:{p}", "http://[::1", 403),
    ("127.0.0.1:{p}", "", 403),
    ("127.0.0.1:{p}", "file://localhost", 403),
    ("127.0.0.1:{p}", "http://localhost.evil.example", 403),
    ("127.0.0.1:{p}", "http://user@localhost", 403),
    ("127.0.0.1:{p}", "http://127.0.0.1:99999", 403),
]

# with a public name configured (as a deployment behind a real host name would be)
PUBLIC = {"allowed_hosts": ["mcp.example.com", "alt.example.com:8443"],
          "allowed_origins": ["https://app.example.com", "http://dev.example.com:*"]}
PUBLIC_MATRIX = [
    ("mcp.example.com", None, 200),
    ("MCP.example.com:{p}", "https://app.example.com", 200),
    ("alt.example.com:8443", None, 200),
    ("alt.example.com:8444", None, 421),
    ("127.0.0.1:{p}", None, 200),                       # loopback names still served
    ("evil.example:{p}", None, 421),
    ("evil.example:{p}", "https://app.example.com", 421),
    ("mcp.example.com", "http://dev.example.com:3000", 200),
    ("mcp.example.com", "http://dev.example.com", 200),
    ("mcp.example.com", "https://dev.example.com:3000", 403),  # scheme is part of it
    ("mcp.example.com", "https://app.example.com:444", 403),
    ("mcp.example.com", "http://127.0.0.1:{p}", 403),   # the configured list replaces
    ("mcp.example.com", "https://evil.example", 403),
    ("mcp.example.com", "https://mcp.example.com", 403),  # Origin never compared with Host
]


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("host,origin,status", DEFAULT_MATRIX)
def test_default_binding_matrix(serve: Any, bind: str, host: str, origin: str | None,
                                status: int) -> None:
    base = serve(make_app(), host=bind).replace("0.0.0.0", "127.0.0.1")
    p = port_of(base)
    r = post(base, host.format(p=p), origin.format(p=p) if origin is not None else None)
    assert r.status_code == status, r.text
    if status != 200:
        assert "mcp-session-id" not in r.headers
        if status != 400:  # NOTE: the engine's 400 is plain text, before MCP runs
            assert r.json()["error"]["message"]


@pytest.mark.parametrize("host,origin,status", PUBLIC_MATRIX)
def test_public_name_matrix(serve: Any, host: str, origin: str | None, status: int) -> None:
    base = serve(make_app(**PUBLIC), host="0.0.0.0").replace("0.0.0.0", "127.0.0.1")
    p = port_of(base)
    r = post(base, host.format(p=p), origin.format(p=p) if origin is not None else None)
    assert r.status_code == status, r.text


def test_rebinding_cannot_call_a_tool(serve: Any) -> None:
    """The whole attack of fault 1: no session, and the tool never runs."""
    base = serve(make_app())
    p = port_of(base)
    evil = {"Host": f"evil.example:{p}", "Origin": f"http://evil.example:{p}"}
    r = post(base, evil["Host"], evil["Origin"])
    assert r.status_code == 421
    # even with a valid session obtained legitimately, rebound requests are refused
    ok = post(base, None, None)
    sid = ok.headers["mcp-session-id"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "touch", "arguments": {"path": "/etc/x"}}}
    CALLS.clear()
    r = post(base, evil["Host"], evil["Origin"], call,
             {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 421 and CALLS == []
    r = post(base, None, None, call, {"Mcp-Session-Id": sid,
                                       "MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 200 and CALLS == ["/etc/x"]
    # DELETE and GET go through the same check
    r = httpx.delete(base + "/mcp", headers={"Host": evil["Host"], "Mcp-Session-Id": sid})
    assert r.status_code == 421
    assert httpx.get(base + "/mcp", headers={"Host": evil["Host"]}).status_code == 421


def test_modern_era_checked_too(serve: Any) -> None:
    base = serve(make_app())
    p = port_of(base)
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}
    r = post(base, f"evil.example:{p}", None, body, {"MCP-Protocol-Version": "2026-07-28",
                                                     "Mcp-Method": "server/discover"})
    assert r.status_code == 421


def test_wildcards_opt_out(serve: Any) -> None:
    base = serve(make_app(allowed_hosts=["*"], allowed_origins=["*"]))
    assert post(base, "anything.example", "https://anything.example").status_code == 200


def test_app_add_mcp_passes_both_through() -> None:
    app = make_app(allowed_hosts=["a.example"], allowed_origins=["https://b.example"])
    server = app._mcp_server
    assert server.allowed_hosts == ["a.example"]
    assert server.allowed_origins == ["https://b.example"]


@pytest.mark.parametrize("bad", [
    {"allowed_hosts": "localhost"}, {"allowed_origins": "https://a.example"},
    {"allowed_hosts": [""]}, {"allowed_hosts": ["a b"]}, {"allowed_hosts": [7]},
    {"allowed_hosts": ["x:port"]}, {"allowed_origins": [None]},
])
def test_bad_configuration_is_a_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        make_app(**bad)


def test_guard_unit_edges() -> None:
    g = HostOriginGuard()
    assert g.host_ok("[::1]:80") and not g.host_ok(None) and not g.host_ok("[::1]x")
    assert not g.host_ok("localhost:") and not g.host_ok("localhost:123456")
    assert g.origin_ok(None) and not g.origin_ok("http://localhost/path")


def test_official_sdk_client_still_works(serve: Any) -> None:
    pytest.importorskip("mcp")
    from mcp.client import Client

    base = serve(make_app())

    async def main() -> Any:
        for mode in ("auto", "legacy"):
            async with Client(base + "/mcp", mode=mode) as client:
                result = await client.call_tool("touch", {"path": mode})
                assert result.content[0].text == "done"
        async with Client(base.replace("127.0.0.1", "localhost") + "/mcp") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["touch"]
    asyncio.run(main())


@pytest.mark.parametrize("bind", ["127.0.0.2", "0.0.0.0"])
def test_the_address_the_connection_arrived_on_is_served(serve: Any, bind: str) -> None:
    """The bound address as Host (an IP literal cannot be rebound); other IPs are not."""
    base = serve(make_app(), host=bind).replace("0.0.0.0", "127.0.0.2")
    p = port_of(base)
    assert post(base, f"127.0.0.2:{p}", None).status_code == 200
    assert post(base, "127.0.0.2", None).status_code == 200
    assert post(base, f"127.0.0.3:{p}", None).status_code == 421
    assert post(base, f"192.0.2.99:{p}", None).status_code == 421


def test_local_ip_literal_forms() -> None:
    from ember.mcp.security import _ip_literal

    assert _ip_literal("::1") == "[::1]" and _ip_literal("::ffff:10.0.0.1") == "10.0.0.1"
    assert _ip_literal("fe80::1%eth0") == "[fe80::1]" and _ip_literal("name") is None
    g = HostOriginGuard()
    assert g.host_ok("[fe80::1]:80", "fe80::1%eth0") and not g.host_ok("evil", "10.0.0.1")


def test_rejected_requests_issue_no_session(serve: Any) -> None:
    """python-sdk #3228 kind: a request the server refuses must not leave a session."""
    base = serve(make_app())
    for headers, content in (({"Accept": "text/html"}, None), ({"Content-Type": "text/plain"},
                                                               b"{}"),
                             ({"Content-Type": "application/json"}, b"{not json")):
        r = httpx.post(base + "/mcp", json=INIT if content is None else None, content=content,
                       headers={"Accept": ACCEPT, **headers})
        assert r.status_code in (400, 406, 415) and "mcp-session-id" not in r.headers
