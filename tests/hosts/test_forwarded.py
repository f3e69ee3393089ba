"""Behind a trusted proxy: scheme, url, client and host follow the configured header family."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ember import Ember, Request
from ember.exceptions import ConfigError
from ember.responses import RedirectResponse
from ember.sessions import SessionMiddleware


def view_app(**options: Any) -> Ember:
    app = Ember(**options)

    @app.get("/view")
    async def view(request: Request) -> dict[str, Any]:
        return {"scheme": request.scheme, "url": str(request.url),
                "client": request.client.host if request.client else None}

    @app.get("/go")
    async def go(request: Request) -> Any:
        scheme, _, rest = str(request.url).partition("://")
        return RedirectResponse(f"{scheme}://{rest.split('/')[0]}/view", 302)

    return app


XFF = {"x-forwarded-for": "198.51.100.7", "x-forwarded-proto": "https",
       "x-forwarded-host": "shop.example.com"}
FWD = {"forwarded": 'for=198.51.100.7;proto=https;host="shop.example.com"'}


@pytest.mark.parametrize("header,headers", [("x-forwarded-for", XFF), ("forwarded", FWD),
                                            ("x-real-ip", {**XFF, "x-real-ip": "198.51.100.7"})])
def test_trusted_proxy_sets_scheme_url_client_host(serve: Any, header: str,
                                                   headers: dict[str, str]) -> None:
    base = serve(view_app(trusted_proxies=["127.0.0.1"], forwarded_header=header,
                          forwarded_fields=["for", "proto", "host"]))
    r = httpx.get(base + "/view?q=1", headers=headers)
    assert r.json() == {"scheme": "https", "url": "https://shop.example.com/view?q=1",
                        "client": "198.51.100.7"}
    go = httpx.get(base + "/go", headers=headers)
    assert go.headers["location"] == "https://shop.example.com/view"


def test_websocket_proto_from_traefik_counts(serve: Any) -> None:
    base = serve(view_app(trusted_proxies=["127.0.0.1"]))
    assert httpx.get(base + "/view", headers={"x-forwarded-proto": "wss"}).json()[
        "scheme"] == "https"
    assert httpx.get(base + "/view", headers={"x-forwarded-proto": "ws"}).json()[
        "scheme"] == "http"


def test_host_is_not_believed_unless_configured(serve: Any) -> None:
    base = serve(view_app(trusted_proxies=["127.0.0.1"]))
    r = httpx.get(base + "/view", headers=XFF)
    assert r.json()["scheme"] == "https"
    assert r.json()["url"].startswith("https://127.0.0.1:")
    assert r.json()["client"] == "198.51.100.7"


def test_only_proto_configured(serve: Any) -> None:
    base = serve(view_app(trusted_proxies=["127.0.0.1"], forwarded_fields=["proto"]))
    r = httpx.get(base + "/view", headers=XFF).json()
    assert r["scheme"] == "https" and r["client"] == "127.0.0.1"


@pytest.mark.parametrize("headers", [
    XFF, FWD, {"x-forwarded-proto": "https, http"}, {"x-forwarded-host": "a.example, b.example"},
])
def test_untrusted_peer_cannot_spoof(serve: Any, headers: dict[str, str]) -> None:
    base = serve(view_app(trusted_proxies=["10.0.0.0/8"],
                          forwarded_fields=["for", "proto", "host"]))
    r = httpx.get(base + "/view", headers=headers).json()
    assert r["scheme"] == "http" and r["client"] == "127.0.0.1"
    assert r["url"].startswith("http://127.0.0.1:")


def test_other_family_ignored(serve: Any) -> None:
    """With ``forwarded`` configured, X-Forwarded-* (passed through by a proxy) count for nothing."""
    base = serve(view_app(trusted_proxies=["127.0.0.1"], forwarded_header="forwarded",
                          forwarded_fields=["for", "proto", "host"]))
    r = httpx.get(base + "/view", headers=XFF).json()
    assert r == {"scheme": "http", "url": r["url"], "client": "127.0.0.1"}
    assert r["url"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("headers", [
    {"x-forwarded-proto": "gopher", "x-forwarded-host": "a b"},
    {"x-forwarded-proto": "", "x-forwarded-host": "user@evil.example"},
    {"x-forwarded-proto": "javascript", "x-forwarded-host": "evil.example:99999"},
    {"x-forwarded-host": "[::1"}, {"x-forwarded-host": "x" * 400},
])
def test_garbage_forwarded_values_are_ignored(serve: Any, headers: dict[str, str]) -> None:
    base = serve(view_app(trusted_proxies=["127.0.0.1"],
                          forwarded_fields=["for", "proto", "host"]))
    r = httpx.get(base + "/view", headers=headers)
    assert r.status_code == 200
    assert r.json()["url"].startswith("http://127.0.0.1:")


def test_allowed_hosts_check_the_forwarded_host(serve: Any) -> None:
    app = view_app(trusted_proxies=["127.0.0.1"], forwarded_fields=["for", "proto", "host"],
                   allowed_hosts=["shop.example.com"])
    base = serve(app)
    assert httpx.get(base + "/view", headers=XFF).status_code == 200
    assert httpx.get(base + "/view", headers={**XFF, "x-forwarded-host": "evil.example"}
                     ).status_code == 400
    # no forwarded host: the Host header (127.0.0.1:port) is checked, and refused
    assert httpx.get(base + "/view").status_code == 400


def test_session_cookie_secure_follows_the_proxy(serve: Any) -> None:
    app = Ember(trusted_proxies=["127.0.0.1"])
    app.add_middleware(SessionMiddleware("k" * 32))

    @app.get("/login")
    async def login(request: Request) -> str:
        request.session["u"] = "a"
        return "ok"

    base = serve(app)
    secure = httpx.get(base + "/login", headers={"x-forwarded-proto": "https"})
    assert "secure" in secure.headers["set-cookie"].lower()
    plain = httpx.get(base + "/login")
    assert "secure" not in plain.headers["set-cookie"].lower()
    app2 = Ember(trusted_proxies=["127.0.0.1"], forwarded_fields=["for"])
    app2.add_middleware(SessionMiddleware("k" * 32))
    app2.get("/login")(login)
    base2 = serve(app2)
    assert "secure" not in httpx.get(base2 + "/login", headers={"x-forwarded-proto": "https"}
                                     ).headers["set-cookie"].lower()


@pytest.mark.parametrize("fields", ["for", ["for", "path"], [1], None, {"for": 1}])
def test_bad_forwarded_fields(fields: Any) -> None:
    with pytest.raises(ConfigError, match="forwarded_fields"):
        Ember(forwarded_fields=fields)
