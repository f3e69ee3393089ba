"""Route caches never serve one user's answer to another (issue #10, fault 2).

Every credential carrier × every backend: ``Authorization`` (BearerAuthMiddleware),
``Cookie``, ``x-api-key`` (APIKeyMiddleware), a header a custom middleware declares in
``credential_headers`` (app-level and blueprint-level); plus responses that only get
``Set-Cookie`` / ``Cache-Control: private`` outside the cache (SessionMiddleware).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from ember import (
    APIKeyMiddleware,
    BearerAuthMiddleware,
    Blueprint,
    Ember,
    MemcachedCache,
    RedisCache,
    Request,
    StaticCache,
)
from ember.sessions import SessionMiddleware

SECRET = "s" * 32


def make_cache(kind: str, request: pytest.FixtureRequest, **kw: Any) -> Any:
    prefix = f"sec{time.time_ns()}:"
    if kind == "static":
        return StaticCache(**kw)
    if kind == "redis":
        return RedisCache(url=request.getfixturevalue("redis_server").url, prefix=prefix, **kw)
    server = request.getfixturevalue("memcached_server")
    return MemcachedCache(host=server.host, port=server.port, prefix=prefix, **kw)


@pytest.fixture(params=["static", "redis", "memcached"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


class TenantAuth:
    """A custom auth middleware that declares the header it reads."""

    credential_headers = ("x-tenant-token",)

    async def __call__(self, request: Request, call_next: Any) -> Any:
        if request.path.startswith("/me") and not request.headers.get("x-tenant-token"):
            return {"detail": "no tenant"}, 401
        return await call_next(request)


def whoami(request: Request) -> str:
    h = request.headers
    return ((h.get("authorization") or "").removeprefix("Bearer ") or (h.get("x-api-key") or "").removeprefix("key-")
            or h.get("x-tenant-token")
            or request.cookies.get("user") or h.get("x-team") or "anonymous")


def credential_app(cache: Any, carrier: str) -> tuple[Ember, str]:
    """An app whose ``/me`` answers who asked, protected by ``carrier``'s middleware."""
    app = Ember()
    path = "/me"
    if carrier == "authorization":
        app.add_middleware(BearerAuthMiddleware(lambda t: True))
    elif carrier == "x-api-key":
        app.add_middleware(APIKeyMiddleware(["key-alice", "key-bob"]))
    elif carrier == "x-tenant-token":
        app.add_middleware(TenantAuth())
    elif carrier == "blueprint":
        class TeamAuth:
            credential_headers = ("x-team",)

            async def __call__(self, request: Request, call_next: Any) -> Any:
                return await call_next(request)

        bp = Blueprint()
        bp.add_middleware(TeamAuth())

        @bp.get("/team", cache=cache)
        async def team(request: Request) -> dict:
            return {"user": whoami(request)}

        app.add_blueprint(bp)
        return app, "/team"

    @app.get(path, cache=cache)
    async def me(request: Request) -> dict:
        return {"user": whoami(request)}

    return app, path


CARRIERS = {
    "authorization": ({"authorization": "Bearer alice"}, {"authorization": "Bearer bob"}),
    "cookie": ({"cookie": "user=alice"}, {"cookie": "user=bob"}),
    "x-api-key": ({"x-api-key": "key-alice"}, {"x-api-key": "key-bob"}),
    "x-tenant-token": ({"x-tenant-token": "alice"}, {"x-tenant-token": "bob"}),
    "blueprint": ({"x-team": "alice"}, {"x-team": "bob"}),
}


@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_credentials_bypass_the_cache(kind: str, carrier: str,
                                      request: pytest.FixtureRequest) -> None:
    cache = make_cache(kind, request, ttl=30)
    app, path = credential_app(cache, carrier)
    alice, bob = CARRIERS[carrier]
    with app.test_client() as c:
        for _ in range(2):
            r = c.get(path, headers=alice)
            assert r.json() == {"user": "alice"} and "x-cache" not in r.headers
        r = c.get(path, headers=bob)
        assert r.json() == {"user": "bob"} and "x-cache" not in r.headers
        if carrier in ("cookie", "blueprint"):  # no auth in front: anonymous is served
            first = c.get(path)
            assert first.json() == {"user": "anonymous"}
            assert first.headers["x-cache"] == "MISS"
            assert c.get(path, headers=alice).json() == {"user": "alice"}
            assert c.get(path).headers["x-cache"] == "HIT"


@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_per_credential_keys_on_the_credential(kind: str, carrier: str,
                                               request: pytest.FixtureRequest) -> None:
    cache = make_cache(kind, request, ttl=30, per_credential=True)
    app, path = credential_app(cache, carrier)
    alice, bob = CARRIERS[carrier]
    with app.test_client() as c:
        assert c.get(path, headers=alice).headers["x-cache"] == "MISS"
        r = c.get(path, headers=alice)
        assert r.json() == {"user": "alice"} and r.headers["x-cache"] == "HIT"
        r = c.get(path, headers=bob)
        assert r.json() == {"user": "bob"} and r.headers["x-cache"] == "MISS"
        assert c.get(path, headers=bob).json() == {"user": "bob"}
        if carrier in ("cookie", "blueprint"):
            r = c.get(path)
            assert r.json() == {"user": "anonymous"} and r.headers["x-cache"] == "MISS"


def test_issue_reproduction_alice_then_bob(serve: Any) -> None:
    """The measured attack, over real sockets: Bob must not get Alice's record."""
    app, path = credential_app(StaticCache(), "x-api-key")
    base = serve(app)
    a = httpx.get(base + path, headers={"x-api-key": "key-alice"})
    b = httpx.get(base + path, headers={"x-api-key": "key-bob"})
    assert a.json() == {"user": "alice"} and b.json() == {"user": "bob"}
    assert b.headers.get("x-cache") != "HIT"


def session_app(cache: Any) -> Ember:
    app = Ember()
    app.add_middleware(SessionMiddleware(SECRET))

    @app.get("/welcome", cache=cache)
    async def welcome(request: Request) -> dict:
        request.session["visited"] = True  # SessionMiddleware adds Set-Cookie afterwards
        return {"hello": "you"}

    @app.get("/plain", cache=cache)
    async def plain() -> dict:
        return {"plain": True}

    return app


def test_session_cookie_set_outside_the_cache_is_never_stored(
        kind: str, request: pytest.FixtureRequest) -> None:
    app = session_app(make_cache(kind, request, ttl=30))
    with app.test_client() as c:
        first = c.get("/welcome")
        assert "ember_session=" in first.headers["set-cookie"]
        c.cookies.clear()
        second = c.get("/welcome")
        # not a HIT: a stored answer would come without the cookie (or with someone else's)
        assert second.headers.get("x-cache") != "HIT"
        assert "ember_session=" in second.headers["set-cookie"]
        assert second.headers["set-cookie"] != first.headers["set-cookie"]
        c.cookies.clear()
        assert c.get("/plain").headers["x-cache"] == "MISS"
        assert c.get("/plain").headers["x-cache"] == "HIT"


def test_session_cookie_stampede_is_not_shared() -> None:
    app = Ember()
    app.add_middleware(SessionMiddleware(SECRET))
    gate = asyncio.Event()
    n = {"calls": 0}

    @app.get("/slow", cache=StaticCache())
    async def slow(request: Request) -> dict:
        n["calls"] += 1
        request.session["n"] = n["calls"]
        await asyncio.wait_for(gate.wait(), 10)
        return {"n": n["calls"]}

    async def main() -> list[Any]:
        async with app.test_client() as c:
            tasks = [asyncio.ensure_future(c.get("/slow")) for _ in range(4)]
            while n["calls"] < 1:
                await asyncio.sleep(0.01)
            gate.set()
            return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    cookies = [r.headers.get("set-cookie") for r in results]
    assert all(cookies) and len(set(cookies)) == 4  # each got its own session
    assert n["calls"] == 4


def test_outer_middleware_headers_decide_and_are_not_replayed() -> None:
    app = Ember()
    seen = {"n": 0}

    @app.middleware_
    async def outer(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        seen["n"] += 1
        response.headers["x-outer"] = str(seen["n"])
        if request.path == "/private":
            response.headers["cache-control"] = "private"
        if request.path == "/fails":
            response.status_code = 500
        return response

    for path in ("/shared", "/private", "/fails"):
        app.get(path, cache=StaticCache())(lambda: {"ok": True})

    with app.test_client() as c:
        assert c.get("/shared").headers["x-cache"] == "MISS"
        r = c.get("/shared")
        assert r.headers["x-cache"] == "HIT" and r.headers.getall("x-outer") == ["2"]
        for path in ("/private", "/fails"):
            c.get(path)
            assert c.get(path).headers.get("x-cache") == "MISS", path


def test_cache_control_no_store_private_honoured(kind: str,
                                                 request: pytest.FixtureRequest) -> None:
    from ember import JSONResponse

    cache = make_cache(kind, request, ttl=30)
    app = Ember()
    for i, cc in enumerate(("no-store", "private", "private, max-age=60", "No-Store",
                            "no-cache", 'private="set-cookie"')):
        app.get(f"/cc/{i}", cache=cache)(
            lambda cc=cc: JSONResponse({"cc": cc}, headers={"cache-control": cc}))
    with app.test_client() as c:
        for route in app.routes:
            if route.path.startswith("/cc/"):
                c.get(route.path)
                assert c.get(route.path).headers.get("x-cache") == "MISS", route.path
        app.get("/nostore-req", cache=cache)(lambda: {"x": 1})
        c.get("/nostore-req")
        assert c.get("/nostore-req", headers={"cache-control": "no-store"}) \
            .headers.get("x-cache") is None


def test_cache_authorized_is_the_old_name() -> None:
    assert StaticCache(cache_authorized=True).per_credential is True
    assert StaticCache().per_credential is False
