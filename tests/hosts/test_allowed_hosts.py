"""``Ember(allowed_hosts=...)``: other Host values get 400 before routing (real server)."""

from __future__ import annotations

import logging

import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.hosts import AllowedHosts, compile_allowed_hosts, parse_host, warn_if_open
from tests.conftest import raw_exchange

CALLS: list[str] = []


def _app(**kw: object) -> Ember:
    app = Ember(allowed_hosts=["api.example.com", "*.example.org", "10.0.0.5:8080", "[::1]",
                               "localhost"], **kw)  # type: ignore[arg-type]

    @app.get("/")
    async def index(request):
        CALLS.append(request.url)
        return {"url": request.url}

    @app.middleware_
    async def mw(request, call_next):
        CALLS.append("middleware")
        return await call_next(request)

    app.add_health()
    return app


def _get(url: str, host: bytes | None, target: bytes = b"/", version: bytes = b"1.1") -> bytes:
    head = b"GET " + target + b" HTTP/" + version + b"\r\n"
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    return raw_exchange(url, head + b"Connection: close\r\n\r\n")


ALLOWED = [b"api.example.com", b"API.Example.COM", b"api.example.com.", b"api.example.com:443",
           b"a.example.org", b"x.y.example.org:1", b"10.0.0.5:8080", b"[::1]", b"[::1]:80",
           b"[0:0::1]", b"localhost:9", b"api.example.com\t"]
REFUSED = [b"evil.example", b"example.org", b"api.example.com.evil", b"10.0.0.5",
           b"10.0.0.5:8081", b"user@api.example.com", b"api.example.com:99999",
           b"api.example.com:", b"api.example.com:8a", b"::1", b"[::1", b"[::2]",
           b"api.example.com..", b"api example.com", b"", b"api.example.com/x",
           b"xn--80ak6aa92e.example.com.evil", b"*.example.org", b".example.org",
           b"a.example.org:80:80",
           # Starlette's IPv6 fix let "[::1]evil.example.org" match "*.example.org"
           b"[::1]evil.example.org", b"[::1]:80evil.example.org", b"[::1].example.org",
           b"a.example.org%2f", b"a..example.org"]


@pytest.mark.parametrize("host", ALLOWED, ids=lambda h: h.decode("latin-1") or "empty")
def test_allowed_hosts_pass(serve, host: bytes) -> None:
    url = serve(_app())
    assert _get(url, host).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("host", REFUSED, ids=lambda h: h.decode("latin-1") or "empty")
def test_other_hosts_get_400_before_routing(serve, host: bytes) -> None:
    url = serve(_app())
    CALLS.clear()
    reply = _get(url, host)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"allowed_hosts" in reply or b"Host" in reply
    assert CALLS == []  # neither middleware nor handler ran


def test_missing_host_on_http10_and_two_hosts(serve) -> None:
    url = serve(_app())
    assert _get(url, None, version=b"1.0").startswith(b"HTTP/1.1 400 ")
    two = raw_exchange(url, b"GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: evil\r\n"
                            b"Connection: close\r\n\r\n")
    assert two.startswith(b"HTTP/1.1 400 ")


def test_absolute_form_authority_is_checked(serve) -> None:
    url = serve(_app())
    CALLS.clear()
    bad = _get(url, b"api.example.com", target=b"http://evil.example/")
    assert bad.startswith(b"HTTP/1.1 400 ") and CALLS == []
    good = _get(url, b"whatever", target=b"http://api.example.com/")
    assert good.startswith(b"HTTP/1.1 200 ")
    assert b'"http://api.example.com/"' in good
    userinfo = _get(url, b"api.example.com", target=b"http://api.example.com@evil.example/")
    assert userinfo.startswith(b"HTTP/1.1 400 ")


def test_probes_are_exempt_and_skip_middleware(serve) -> None:
    url = serve(_app())
    CALLS.clear()
    for path in (b"/livez", b"/readyz"):
        reply = _get(url, b"10.1.2.3:8000", target=path)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert CALLS == []


def test_mcp_keeps_its_own_421_and_hosts(serve) -> None:
    app = Ember(allowed_hosts=["api.example.com"])
    app.add_mcp(allowed_hosts=["mcp.internal"])
    url = serve(app)
    body = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
            b'"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}')

    def post(host: bytes) -> bytes:
        return raw_exchange(url, b"POST /mcp HTTP/1.1\r\nHost: " + host +
                            b"\r\nContent-Type: application/json\r\nAccept: application/json, "
                            b"text/event-stream\r\nContent-Length: " + str(len(body)).encode() +
                            b"\r\nConnection: close\r\n\r\n" + body)

    assert post(b"mcp.internal").startswith(b"HTTP/1.1 200 ")
    assert post(b"evil.example").startswith(b"HTTP/1.1 421 ")
    # the app's own hosts do not widen the MCP server's list
    assert post(b"api.example.com").startswith(b"HTTP/1.1 421 ")
    assert _get(url, b"mcp.internal").startswith(b"HTTP/1.1 400 ")


def test_websocket_on_a_refused_host_is_not_upgraded(serve) -> None:
    app = Ember(allowed_hosts=["ok.example"])

    @app.websocket("/ws")
    async def ws(websocket):
        await websocket.accept()
        await websocket.close()

    url = serve(app)
    req = (b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert raw_exchange(url, req % b"evil.example", until_close=False, expect=1
                        ).startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(url, req % b"ok.example", until_close=False, timeout=1).startswith(
        b"HTTP/1.1 101 ")


def test_fast_path_cannot_skip_the_check(serve) -> None:
    # NOTE: a bare app with a plain handler normally takes the connection's fast path
    app = Ember(allowed_hosts=["ok.example"], openapi_url=None)

    @app.get("/plain")
    def plain() -> str:
        return "hi"

    url = serve(app)
    for _ in range(3):
        assert _get(url, b"evil.example", target=b"/plain").startswith(b"HTTP/1.1 400 ")
        assert _get(url, b"ok.example", target=b"/plain").startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("bad", ["example.com", [""], ["a b"], ["*.[::1]"], ["user@x"],
                                 ["x:0"], [], [None], ["x:65536"], {"x": 1}])
def test_bad_configuration_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        Ember(allowed_hosts=bad)  # type: ignore[arg-type]


def test_parse_host_normalises() -> None:
    assert parse_host("Example.COM.:0080") == ("example.com", 80)
    assert parse_host("[0:0:0:0:0:0:0:1]:443") == ("[::1]", 443)
    assert parse_host("١٢٣.example") is None  # non-ASCII digits
    assert parse_host("x" * 300) is None
    assert parse_host("a:１２") is None
    hosts = compile_allowed_hosts(["*"])
    assert isinstance(hosts, AllowedHosts) and hosts.allows("anything")


def test_one_warning_on_a_public_bind(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ember.hosts"):
        assert warn_if_open(Ember(), "0.0.0.0")
        assert not warn_if_open(Ember(), "127.0.0.1")
        assert not warn_if_open(Ember(), "::1")
        assert not warn_if_open(Ember(), "localhost")
        assert not warn_if_open(Ember(allowed_hosts=["x.example"]), "0.0.0.0")
    assert len([r for r in caplog.records if "allowed_hosts=None" in r.message]) == 1


def test_http2_authority_is_checked(serve) -> None:
    import httpx

    url = serve(_app(), http2=True)
    with httpx.Client(http1=False, http2=True, timeout=10) as c:
        ok = c.get(url + "/", headers={"host": "api.example.com"})
        assert ok.http_version == "HTTP/2" and ok.status_code == 200
        assert ok.json()["url"] == "http://api.example.com/"
        assert c.get(url + "/", headers={"host": "evil.example"}).status_code == 400
        assert c.get(url + "/livez", headers={"host": "evil.example"}).status_code == 200


def test_test_client_needs_an_allowed_base_url() -> None:
    app = _app()
    with app.test_client() as c:
        r = c.get("/")
        assert r.status_code == 400 and "base_url" in r.json()["detail"]
    with app.test_client(base_url="https://api.example.com") as c:
        assert c.get("/").json()["url"] == "https://api.example.com/"
