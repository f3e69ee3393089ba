"""The route cache key includes the host: a forged ``Host`` only poisons its own entries,
and ``invalidate`` reaches every host's entries without scanning keys (real backends)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from ember import Ember, MemcachedCache, RedisCache, Request, StaticCache


def _cache(kind: str, request: pytest.FixtureRequest) -> Any:
    prefix = f"t{time.time_ns()}h:"
    if kind == "static":
        return StaticCache()
    if kind == "redis":
        return RedisCache(url=request.getfixturevalue("redis_server").url, prefix=prefix)
    server = request.getfixturevalue("memcached_server")
    return MemcachedCache(host=server.host, port=server.port, prefix=prefix)


def _app(cache: Any, **options: Any) -> Ember:
    app = Ember(**options)
    n = {"calls": 0}

    @app.get("/page", cache=cache)
    async def page(request: Request) -> dict[str, Any]:
        n["calls"] += 1
        return {"link": str(request.url), "n": n["calls"]}

    return app


@pytest.mark.parametrize("kind", ["static", "redis", "memcached"])
def test_forged_host_cannot_poison_other_clients(serve: Any, kind: str,
                                                 request: pytest.FixtureRequest) -> None:
    cache = _cache(kind, request)
    base = serve(_app(cache))
    with httpx.Client(base_url=base) as c:
        evil = c.get("/page", headers={"host": "evil.example"})
        assert evil.json()["link"] == "http://evil.example/page"
        assert c.get("/page", headers={"host": "evil.example"}).headers["x-cache"] == "HIT"
        good = c.get("/page", headers={"host": "shop.example"})
        assert good.headers["x-cache"] == "MISS"
        assert good.json()["link"] == "http://shop.example/page"
        # case, a trailing dot and the same port are the same host; another port is not
        for same in ("SHOP.example", "shop.example."):
            r = c.get("/page", headers={"host": same})
            assert r.headers["x-cache"] == "HIT" and "evil" not in r.text
        assert c.get("/page", headers={"host": "shop.example:8080"}).headers["x-cache"] == "MISS"
        # absolute-form targets key on their authority
        raw = c.get("/page", headers={"host": "shop.example"})
        assert raw.json()["link"] == "http://shop.example/page"

        async def invalidate() -> None:
            try:
                await cache.invalidate("/page")
            finally:
                if hasattr(cache, "_clients"):
                    await cache.shutdown()
        asyncio.run(invalidate())
        for host in ("evil.example", "shop.example", "shop.example:8080"):
            assert c.get("/page", headers={"host": host}).headers["x-cache"] == "MISS", host


def test_forwarded_scheme_and_host_are_part_of_the_key(serve: Any) -> None:
    app = _app(StaticCache(), trusted_proxies=["127.0.0.1"],
               forwarded_fields=["for", "proto", "host"])
    base = serve(app)
    with httpx.Client(base_url=base) as c:
        h = {"x-forwarded-proto": "https", "x-forwarded-host": "shop.example"}
        assert c.get("/page", headers=h).json()["link"] == "https://shop.example/page"
        plain = c.get("/page", headers={"x-forwarded-host": "shop.example"})
        assert plain.headers["x-cache"] == "MISS"
        assert plain.json()["link"] == "http://shop.example/page"
        assert c.get("/page", headers=h).headers["x-cache"] == "HIT"


def test_two_servers_share_a_redis_cache_per_host(serve: Any,
                                                  request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url
    prefix = f"t{time.time_ns()}two:"
    a = serve(_app(RedisCache(url=url, prefix=prefix)))
    b = serve(_app(RedisCache(url=url, prefix=prefix)))
    assert httpx.get(a + "/page", headers={"host": "x.example"}).headers["x-cache"] == "MISS"
    hit = httpx.get(b + "/page", headers={"host": "x.example"})
    assert hit.headers["x-cache"] == "HIT" and hit.json()["link"] == "http://x.example/page"
    assert httpx.get(b + "/page", headers={"host": "y.example"}).headers["x-cache"] == "MISS"
