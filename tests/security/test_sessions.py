"""Session fixation, regenerate(), cookie flags (issue #10, fault 3), Memory and Redis stores."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from ember import Ember, Request
from ember.exceptions import ConfigError
from ember.sessions import MemorySessionStore, RedisSessionStore, SessionMiddleware

SECRET = "k" * 32


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemorySessionStore()
    url = request.getfixturevalue("redis_server").url
    return RedisSessionStore(url, prefix=f"sess{time.time_ns()}:")


def make_app(store: Any = None, **options: Any) -> Ember:
    app = Ember(**{k: options.pop(k) for k in ("trusted_proxies", "forwarded_header")
                   if k in options})
    app.add_middleware(SessionMiddleware(SECRET, store=store, **options))

    @app.get("/browse")
    async def browse(request: Request) -> dict:
        request.session["cart"] = ["book"]
        return {}

    @app.get("/login")
    async def login(request: Request) -> dict:
        request.session.clear()  # the handler did the right thing...
        request.session["user"] = "victim"
        return {}

    @app.get("/login-regenerate")
    async def login_regenerate(request: Request) -> dict:
        request.session["user"] = "victim"
        request.session.regenerate()
        return {}

    @app.get("/whoami")
    async def whoami(request: Request) -> dict:
        return dict(request.session)

    return app


def sid_of(response: Any) -> str:
    cookie = response.headers["set-cookie"]
    return cookie.split("ember_session=", 1)[1].split(";", 1)[0].strip('"')


def test_fixation_clear_then_login_renews_the_id(serve: Any, store: Any) -> None:
    base = serve(make_app(store))
    # the attacker gets a session with data and plants its id in the victim's browser
    planted = sid_of(httpx.get(base + "/browse"))
    r = httpx.get(base + "/login", headers={"cookie": f"ember_session={planted}"})
    fresh = sid_of(r)
    assert fresh != planted
    assert httpx.get(base + "/whoami", headers={"cookie": f"ember_session={fresh}"}).json() \
        == {"user": "victim"}
    # the attacker's cookie sees nothing: the old id is gone from the store
    assert httpx.get(base + "/whoami", headers={"cookie": f"ember_session={planted}"}).json() \
        == {}


def test_regenerate_new_id_same_data_old_deleted(serve: Any, store: Any) -> None:
    base = serve(make_app(store))
    first = sid_of(httpx.get(base + "/browse"))
    second = sid_of(httpx.get(base + "/login-regenerate",
                              headers={"cookie": f"ember_session={first}"}))
    assert second != first
    assert httpx.get(base + "/whoami", headers={"cookie": f"ember_session={second}"}).json() \
        == {"cart": ["book"], "user": "victim"}
    assert httpx.get(base + "/whoami", headers={"cookie": f"ember_session={first}"}).json() \
        == {}


def test_unknown_or_forged_id_is_never_adopted(store: Any) -> None:
    mw = SessionMiddleware(SECRET)
    forged = mw._sign("attacker-chosen-id")  # even correctly signed (leaked key)
    with make_app(store).test_client(cookies={"ember_session": forged}) as c:
        assert "attacker-chosen-id" not in sid_of(c.get("/browse"))
    with make_app(store).test_client(cookies={"ember_session": "x.y"}) as c:
        assert sid_of(c.get("/browse")) != "x.y"


def test_unmodified_session_keeps_its_id(store: Any) -> None:
    with make_app(store).test_client() as c:
        c.get("/browse")
        assert "set-cookie" not in c.get("/whoami").headers
        assert sid_of(c.get("/browse")) == c.cookies["ember_session"]


def flags(response: Any) -> set[str]:
    parts = response.headers["set-cookie"].split(";")[1:]
    return {p.strip().split("=")[0].lower() + ("=" + p.split("=")[1].strip().lower()
                                                if p.strip().lower().startswith("samesite")
                                                else "") for p in parts}


def test_default_flags_over_plain_http() -> None:
    with make_app().test_client() as c:
        f = flags(c.get("/browse"))
    assert {"httponly", "samesite=lax", "path"} <= f and "secure" not in f


def test_secure_via_trusted_proxy_only() -> None:
    https = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}
    with make_app(trusted_proxies=["127.0.0.1"]).test_client() as c:
        assert "secure" in flags(c.get("/browse", headers=https))
        assert "secure" not in flags(c.get("/browse", headers={"x-forwarded-proto": "http"}))
    with make_app().test_client() as c:  # not a trusted proxy: the header proves nothing
        assert "secure" not in flags(c.get("/browse", headers=https))
    fwd = {"forwarded": "for=203.0.113.9;proto=https"}
    with make_app(trusted_proxies=["127.0.0.1"], forwarded_header="forwarded").test_client() as c:
        assert "secure" in flags(c.get("/browse", headers=fwd))
        # the companion header of another family is not believed
        assert "secure" not in flags(c.get("/browse", headers=https))


def test_secure_over_tls(serve: Any, tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    base = serve(make_app(), ssl_certfile=cert, ssl_keyfile=key)
    assert "secure" in flags(httpx.get(base + "/browse", verify=False))


def test_explicit_https_only_and_samesite() -> None:
    with make_app(https_only=True, same_site="none").test_client() as c:
        f = flags(c.get("/browse"))
    assert "secure" in f and "samesite=none" in f
    with make_app(https_only=False).test_client() as c:
        assert "secure" not in flags(c.get("/browse", headers={"x-forwarded-proto": "https"}))
    with make_app(same_site="strict").test_client() as c:
        assert "samesite=strict" in flags(c.get("/browse"))


@pytest.mark.parametrize("options", [
    {"same_site": "none"}, {"same_site": "none", "https_only": False},
    {"same_site": "None", "https_only": None}, {"same_site": "sometimes"},
    {"same_site": None}, {"https_only": "yes"},
])
def test_bad_cookie_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SessionMiddleware(SECRET, **options)


def test_regenerate_on_an_empty_session_is_harmless(store: Any) -> None:
    app = Ember()
    app.add_middleware(SessionMiddleware(SECRET, store=store))

    @app.get("/r")
    async def r(request: Request) -> str:
        request.session.regenerate()
        return "ok"

    with app.test_client() as c:
        r = c.get("/r")
        assert r.status_code == 200


@pytest.mark.parametrize("cookie", ["", ".", '""', "." + "0" * 32, " ", "a.b.c"])
def test_empty_or_odd_session_keys_never_load_a_session(store: Any, cookie: str) -> None:
    """Django GHSA-6wgp-fwfm-mxp3 kind: an empty session key must not reach a session."""
    mw = SessionMiddleware(SECRET)
    for value in (cookie, mw._sign(cookie.strip('"'))):
        app = make_app(store)
        with app.test_client(cookies={"ember_session": value}) as c:
            assert c.get("/whoami").json() == {}
            fresh = sid_of(c.get("/browse"))
            assert fresh.rpartition(".")[0] not in ("", cookie)
