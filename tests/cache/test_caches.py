"""Route caches against real redis-server and memcached processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from ember import (
    APIKeyMiddleware,
    Ember,
    MemcachedCache,
    RedisCache,
    Request,
    Response,
    StaticCache,
    StreamingResponse,
)
from ember.exceptions import ConfigError


def _make_cache(kind: str, request: pytest.FixtureRequest, **kw):
    if kind == "static":
        return StaticCache(**kw)
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return RedisCache(url=server.url, **kw)
    server = request.getfixturevalue("memcached_server")
    return MemcachedCache(host=server.host, port=server.port, **kw)


@pytest.fixture(params=["static", "redis", "memcached"])
def cache_kind(request):
    return request.param


def _app(cache, counter: dict) -> Ember:
    app = Ember()

    @app.get("/items", cache=cache)
    async def items(request: Request):
        counter["n"] = counter.get("n", 0) + 1
        return {"n": counter["n"], "q": request.args.get("q")}

    @app.get("/cookie", cache=cache)
    async def cookie():
        counter["c"] = counter.get("c", 0) + 1
        r = Response(str(counter["c"]))
        r.set_cookie("a", "b")
        return r

    @app.get("/nostore", cache=cache)
    async def nostore():
        counter["ns"] = counter.get("ns", 0) + 1
        return Response(str(counter["ns"]), headers={"cache-control": "no-store"})

    @app.get("/stream", cache=cache)
    async def stream():
        counter["s"] = counter.get("s", 0) + 1

        async def gen():
            yield b"x"
        return StreamingResponse(gen())

    @app.get("/error", cache=cache)
    async def error():
        counter["e"] = counter.get("e", 0) + 1
        return Response("boom", 500)

    @app.get("/slow", cache=cache)
    async def slow():
        counter["slow"] = counter.get("slow", 0) + 1
        await asyncio.sleep(0.2)
        return {"slow": counter["slow"]}

    return app


def test_cache_rules(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request, prefix=f"t{time.time_ns()}:")
    app = _app(cache, counter)
    with app.test_client() as c:
        a = c.get("/items?q=1&z=2")
        b = c.get("/items?z=2&q=1")  # same key: sorted query
        assert a.json() == b.json() == {"n": 1, "q": "1"}
        assert a.headers["x-cache"] == "MISS" and b.headers["x-cache"] == "HIT"
        assert c.head("/items?q=1&z=2").headers["x-cache"] == "HIT"  # HEAD shares GET's entry
        assert c.get("/items?q=2").json()["n"] == 2
        # Authorization bypasses the cache
        assert c.get("/items?q=1&z=2", headers={"authorization": "Bearer t"}).json()["n"] == 3
        # request no-store bypasses
        assert c.get("/items?q=1&z=2", headers={"cache-control": "no-store"}).json()["n"] == 4
        # never Set-Cookie, never response no-store, never streaming, never 500
        for path, key in (("/cookie", "c"), ("/nostore", "ns"), ("/stream", "s"),
                          ("/error", "e")):
            c.get(path)
            c.get(path)
            assert counter[key] == 2, path


def test_invalidate_and_clear(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request, prefix=f"inv{time.time_ns()}:")
    app = _app(cache, counter)
    async def run():
        async with app.test_client() as c:
            await c.get("/items?q=1")
            await c.get("/items?q=2")
            await cache.invalidate("/items", {"q": "1"})
            assert (await c.get("/items?q=1")).json()["n"] == 3  # recomputed
            assert (await c.get("/items?q=2")).headers["x-cache"] == "HIT"
            await cache.clear()
            assert (await c.get("/items?q=2")).headers["x-cache"] == "MISS"

    asyncio.run(run())


def test_stampede_one_computation_per_key(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request, prefix=f"st{time.time_ns()}:")
    app = _app(cache, counter)

    async def run():
        async with app.test_client() as c:
            results = await asyncio.gather(*[c.get("/slow") for _ in range(10)])
            return [r.json() for r in results]

    results = asyncio.run(run())
    assert counter["slow"] == 1 and all(r == {"slow": 1} for r in results)


def test_ttl_expires(request):
    counter: dict = {}
    app = _app(StaticCache(ttl=0.2), counter)
    with app.test_client() as c:
        c.get("/items")
        assert c.get("/items").headers["x-cache"] == "HIT"
        time.sleep(0.3)
        assert c.get("/items").headers["x-cache"] == "MISS"


def test_middleware_still_runs_before_the_cache():
    counter: dict = {}
    app = _app(StaticCache(), counter)
    app.add_middleware(APIKeyMiddleware(api_keys=["k"]))
    with app.test_client() as c:
        assert c.get("/items", headers={"x-api-key": "k"}).status_code == 200
        assert c.get("/items").status_code == 401  # cached, but authentication still runs
        assert c.get("/items", headers={"x-api-key": "k"}).headers["x-cache"] == "HIT"


def test_backend_down_fails_open(closed_port, caplog):
    counter: dict = {}
    cache = RedisCache(url=f"redis://127.0.0.1:{closed_port}", ttl=5)
    app = _app(cache, counter)
    with app.test_client() as c:
        for i in range(3):
            r = c.get("/items")
            assert r.status_code == 200 and r.json()["n"] == i + 1
    assert sum("serving uncached" in r.getMessage() for r in caplog.records) == 1
    counter.clear()
    mc = MemcachedCache(host="127.0.0.1", port=closed_port, ttl=5)
    with _app(mc, counter).test_client() as c:
        assert c.get("/items").status_code == 200 and c.get("/items").json()["n"] == 2


def test_backend_hung_fails_open_quickly(blackhole_port):
    counter: dict = {}
    for cache in (RedisCache(url=f"redis://127.0.0.1:{blackhole_port}", timeout=0.1),
                  MemcachedCache(host="127.0.0.1", port=blackhole_port, timeout=0.1)):
        with _app(cache, counter).test_client() as c:
            started = time.monotonic()
            assert c.get("/items").status_code == 200
            assert time.monotonic() - started < 2


def test_memcached_long_keys_hashed(request):
    server = request.getfixturevalue("memcached_server")
    counter: dict = {}
    cache = MemcachedCache(host=server.host, port=server.port, prefix=f"lk{time.time_ns()}:")
    app = _app(cache, counter)
    long_query = "q=" + "x" * 2000 + "&sp=a%20b"
    with app.test_client() as c:
        c.get("/items?" + long_query)
        assert c.get("/items?" + long_query).headers["x-cache"] == "HIT"
    assert len(cache.storage_key("k" * 5000, 1)) < 250


@pytest.mark.parametrize("make", [
    lambda: StaticCache(ttl=-1), lambda: RedisCache(url="http://x"),
    lambda: RedisCache(ttl=0), lambda: MemcachedCache(port=70000),
    lambda: MemcachedCache(host=""), lambda: StaticCache(vary="accept"),
])
def test_cache_config_errors(make):
    with pytest.raises(ConfigError):
        make()


def test_cache_argument_validated_at_registration():
    app = Ember()
    with pytest.raises(ConfigError, match="cache="):
        @app.get("/x", cache="redis")
        async def x():
            return ""


def test_caches_connect_and_close_with_the_server(serve, request):
    redis_server = request.getfixturevalue("redis_server")
    cache = RedisCache(url=redis_server.url)
    counter: dict = {}
    url = serve(_app(cache, counter))
    import httpx

    assert httpx.get(url + "/items").status_code == 200
    assert cache._client is not None
    serve.servers[0].stop()
    assert cache._client is None
