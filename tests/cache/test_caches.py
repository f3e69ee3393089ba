"""Route caches against real redis-server and memcached processes (tests/_services.py)."""

from __future__ import annotations

import asyncio
import logging
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
from tests._clock import FakeClock


def _run(cache, op):
    """Run ``op(cache)`` on a fresh loop and close that loop's connections."""
    async def main():
        try:
            return await op(cache)
        finally:
            await cache.shutdown()

    return asyncio.run(main())


def _prefix(tag: str) -> str:
    return f"t{time.time_ns()}{tag}:"


def _make_cache(kind: str, request: pytest.FixtureRequest, **kw):
    if kind == "static":
        return StaticCache(**kw)
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return RedisCache(url=server.url, prefix=_prefix("r"), **kw)
    server = request.getfixturevalue("memcached_server")
    return MemcachedCache(host=server.host, port=server.port, prefix=_prefix("m"), **kw)


@pytest.fixture(params=["static", "redis", "memcached"])
def cache_kind(request):
    return request.param


def _app(cache, counter: dict) -> Ember:
    app = Ember()

    def hit(name: str) -> int:
        counter[name] = counter.get(name, 0) + 1
        return counter[name]

    @app.get("/items", cache=cache)
    async def items(request: Request):
        return {"n": hit("n"), "q": request.args.get("q")}

    @app.get("/items/{item_id}", cache=cache)
    async def item(item_id: str):
        return {"id": item_id, "n": hit("item")}

    @app.get("/cookie", cache=cache)
    async def cookie():
        r = Response(str(hit("c")))
        r.set_cookie("session", "secret")
        return r

    @app.get("/nostore", cache=cache)
    async def nostore():
        return Response(str(hit("ns")), headers={"cache-control": "no-store"})

    @app.get("/private", cache=cache)
    async def private():
        return Response(str(hit("pv")), headers={"cache-control": "private, max-age=60"})

    @app.get("/varies", cache=cache)
    async def varies():
        return Response(str(hit("v")), headers={"vary": "accept-language"})

    @app.get("/stream", cache=cache)
    async def stream():
        hit("s")

        async def gen():
            yield b"x"
        return StreamingResponse(gen())

    @app.get("/error", cache=cache)
    async def error():
        return Response(str(hit("e")), 500)

    @app.get("/notfound", cache=cache)
    async def notfound():
        return Response(str(hit("nf")), 404)

    @app.get("/slow", cache=cache)
    async def slow():
        n = hit("slow")
        await asyncio.sleep(0.2)
        return {"slow": n}

    @app.get("/slowcookie", cache=cache)
    async def slowcookie():
        n = hit("sc")
        await asyncio.sleep(0.1)
        r = Response(f"user-{n}")
        r.set_cookie("session", f"s{n}")
        return r

    @app.get("/big", cache=cache)
    async def big():
        return Response(b"x" * 2_000_000 + str(hit("big")).encode())

    @app.head("/explicit-head", cache=cache)
    async def explicit_head():
        hit("eh")
        return Response(b"")

    @app.get("/explicit-head", cache=cache)
    async def explicit_get():
        return Response(f"full body {hit('eg')}")

    @app.post("/items", cache=cache)
    async def post_items():
        return {"posted": hit("p")}

    return app


def test_cache_rules(cache_kind, request):
    counter: dict = {}
    app = _app(_make_cache(cache_kind, request), counter)
    with app.test_client() as c:
        a = c.get("/items?q=1&z=2")
        b = c.get("/items?z=2&q=1")  # same key: sorted query
        assert a.json() == b.json() == {"n": 1, "q": "1"}
        assert a.headers["x-cache"] == "MISS" and b.headers["x-cache"] == "HIT"
        assert b.headers["content-type"] == a.headers["content-type"]
        head = c.head("/items?q=1&z=2")  # HEAD reads GET's entry
        assert head.headers["x-cache"] == "HIT" and head.content == b""
        assert c.get("/items?q=2").json()["n"] == 2
        assert c.get("/items?q=1&z=2&z=3").json()["n"] == 3  # repeated keys differ
        # Authorization bypasses the cache (neither read nor written)
        r = c.get("/items?q=1&z=2", headers={"authorization": "Bearer t"})
        assert r.json()["n"] == 4 and "x-cache" not in r.headers
        # request no-store bypasses
        assert c.get("/items?q=1&z=2", headers={"cache-control": "no-store"}).json()["n"] == 5
        assert c.get("/items?q=1&z=2").json()["n"] == 1  # the entry is still there
        # POST is never cached
        assert c.post("/items").json() == {"posted": 1}
        assert c.post("/items").json() == {"posted": 2}
        # never Set-Cookie, no-store, private, an unexpected Vary, streaming, 500, 404
        for path, key in (("/cookie", "c"), ("/nostore", "ns"), ("/private", "pv"),
                          ("/varies", "v"), ("/stream", "s"), ("/error", "e"),
                          ("/notfound", "nf")):
            c.get(path)
            second = c.get(path)
            assert counter[key] == 2, path
            assert second.headers.get("x-cache") != "HIT", path
        assert c.get("/cookie").headers["set-cookie"].startswith("session=")
        assert c.get("/stream").content == b"x"
        # a request carrying a Cookie bypasses the cache (SPEC §5): drop the jar
        assert c.get("/items?q=1&z=2").json()["n"] == 6 and c.cookies
        c.cookies.clear()
        # the query is keyed as bytes: %ff and %fe never share an entry
        assert c.get("/items?q=%ff").headers["x-cache"] == "MISS"
        assert c.get("/items?q=%fe").headers["x-cache"] == "MISS"
        assert c.get("/items?q=%ff").headers["x-cache"] == "HIT"


def test_canonical_keys():
    from ember.cache.keys import canonical_path, canonical_query

    assert canonical_query("b=2&a=1&a=0") == canonical_query(b"a=0&a=1&b=2") == "a=0&a=1&b=2"
    assert canonical_query({"q": "é", "t": [1, 2]}) == canonical_query("t=1&q=%C3%A9&t=2")
    assert canonical_query("q=é") == canonical_query("q=%C3%A9")
    assert canonical_query("a=%ff") != canonical_query("a=%fe")
    assert canonical_query("flag") == canonical_query("flag=")
    assert canonical_path("/a b/?#") == "/a%20b/%3F%23"


def test_head_never_writes_the_get_entry(cache_kind, request):
    counter: dict = {}
    app = _app(_make_cache(cache_kind, request), counter)
    with app.test_client() as c:
        c.head("/explicit-head")
        r = c.get("/explicit-head")
        assert r.text == "full body 1" and r.headers["x-cache"] == "MISS"
        assert c.get("/explicit-head").headers["x-cache"] == "HIT"


def test_path_parameters_and_invalidation(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request)
    app = _app(cache, counter)

    async def run():
        async with app.test_client() as c:
            async def n(url: str) -> int:
                r = await c.get(url)
                return r.json()["n"]

            assert [await n("/items?q=1"), await n("/items?q=2"), await n("/items?q=1")] == \
                [1, 2, 1]
            await cache.invalidate("/items", {"q": "1"})  # one query only
            assert await n("/items?q=1") == 3
            assert await n("/items?q=2") == 2
            await cache.invalidate("/items")  # every query of the path
            assert await n("/items?q=2") == 4 and await n("/items?q=1") == 5
            assert (await c.get("/items/a%20b")).json() == {"id": "a b", "n": 1}
            assert (await c.get("/items/%61%20b")).headers["x-cache"] == "HIT"  # same path
            await cache.invalidate("/items/a b", "")
            assert (await c.get("/items/a%20b")).json()["n"] == 2
            await cache.clear()
            assert (await c.get("/items?q=1")).headers["x-cache"] == "MISS"
            assert (await c.get("/items/a%20b")).headers["x-cache"] == "MISS"
        await cache.shutdown()

    asyncio.run(run())
    with pytest.raises(ValueError):
        _run(cache, lambda cache: cache.invalidate("items"))


def test_invalidation_during_computation_is_not_stored(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request)
    app = _app(cache, counter)

    async def run():
        async with app.test_client() as c:
            pending = asyncio.ensure_future(c.get("/slow"))
            await asyncio.sleep(0.05)
            await cache.invalidate("/slow")  # the data changed while it was computed
            assert (await pending).json() == {"slow": 1}
            assert (await c.get("/slow")).json() == {"slow": 2}
            assert (await c.get("/slow")).json() == {"slow": 2}
        await cache.shutdown()

    asyncio.run(run())


def test_clear_is_seen_by_every_worker(request):
    """Two instances with one prefix behave like two workers sharing a backend."""
    for kind in ("redis", "memcached"):
        a = _make_cache(kind, request)
        if kind == "redis":
            b = RedisCache(url=a.url, prefix=a.prefix)
        else:
            b = MemcachedCache(host=a.host, port=a.port, prefix=a.prefix)
        counter: dict = {}
        app_a, app_b = _app(a, counter), _app(b, counter)
        with app_a.test_client() as ca, app_b.test_client() as cb:
            assert ca.get("/items").json()["n"] == 1
            assert cb.get("/items").headers["x-cache"] == "HIT"  # shared across workers
            _run(a, lambda cache: cache.clear())
            assert cb.get("/items").json()["n"] == 2, kind
            _run(b, lambda cache: cache.invalidate("/items"))
            assert ca.get("/items").json()["n"] == 3, kind


def test_stampede_one_computation_per_key(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request)
    app = _app(cache, counter)

    async def run():
        async with app.test_client() as c:
            results = await asyncio.gather(*[c.get("/slow") for _ in range(10)])
            cookies = await asyncio.gather(*[c.get("/slowcookie") for _ in range(5)])
        await cache.shutdown()
        return results, cookies

    results, cookies = asyncio.run(run())
    assert counter["slow"] == 1 and all(r.json() == {"slow": 1} for r in results)
    # a Set-Cookie response is never handed to another client, even in a stampede
    assert sorted(r.text for r in cookies) == [f"user-{i}" for i in range(1, 6)]
    assert len({r.headers["set-cookie"] for r in cookies}) == 5


def test_vary_and_authorized_caching(cache_kind, request):
    counter: dict = {}
    cache = _make_cache(cache_kind, request, vary=["Accept-Language"], cache_authorized=True)
    app = _app(cache, counter)
    with app.test_client() as c:
        en = {"accept-language": "en"}
        assert c.get("/varies", headers=en).text == "1"
        assert c.get("/varies", headers=en).headers["x-cache"] == "HIT"  # Vary is covered
        assert c.get("/varies", headers={"accept-language": "fr"}).text == "2"
        alice = {"authorization": "Bearer alice"}
        bob = {"authorization": "Bearer bob"}
        assert c.get("/items", headers=alice).json()["n"] == 1
        assert c.get("/items", headers=bob).json()["n"] == 2  # per credential
        assert c.get("/items", headers=alice).headers["x-cache"] == "HIT"
        assert c.get("/items").json()["n"] == 3  # anonymous never sees alice's entry
        # a header value cannot forge another variant
        assert c.get("/items", headers={"accept-language": "authorization=x"}).json()["n"] == 4


def test_ttl_expires(monkeypatch):
    clock = FakeClock.install(monkeypatch, "ember.cache.static")
    counter: dict = {}
    app = _app(StaticCache(ttl=0.2), counter)
    with app.test_client() as c:
        c.get("/items")
        clock.advance(0.2)  # exactly the TTL: still fresh
        assert c.get("/items").headers["x-cache"] == "HIT"
        clock.advance(0.001)
        assert c.get("/items").headers["x-cache"] == "MISS"


def test_redis_ttl(request):
    counter: dict = {}
    cache = _make_cache("redis", request, ttl=0.3)
    with _app(cache, counter).test_client() as c:
        c.get("/items")
        assert c.get("/items").headers["x-cache"] == "HIT"
        time.sleep(0.45)
        assert c.get("/items").headers["x-cache"] == "MISS"


def test_static_cache_is_bounded():
    cache = StaticCache(max_entries=3)
    counter: dict = {}
    with _app(cache, counter).test_client() as c:
        for i in range(10):
            c.get(f"/items?q={i}")
        assert len(cache) == 3
        assert c.get("/items?q=9").headers["x-cache"] == "HIT"
        assert c.get("/items?q=0").headers["x-cache"] == "MISS"


def test_middleware_still_runs_before_the_cache():
    counter: dict = {}
    app = _app(StaticCache(per_credential=True), counter)  # x-api-key is a credential
    app.add_middleware(APIKeyMiddleware(api_keys=["k"]))
    with app.test_client() as c:
        assert c.get("/items", headers={"x-api-key": "k"}).status_code == 200
        assert c.get("/items").status_code == 401  # cached, but authentication still runs
        assert c.get("/items", headers={"x-api-key": "wrong"}).status_code == 401
        assert c.get("/items", headers={"x-api-key": "k"}).headers["x-cache"] == "HIT"


def test_backend_down_fails_open_and_logs_once(closed_port, caplog):
    caplog.set_level(logging.WARNING, "ember.cache")
    for cache in (RedisCache(url=f"redis://127.0.0.1:{closed_port}", ttl=5, retry_interval=0),
                  MemcachedCache(host="127.0.0.1", port=closed_port, ttl=5, retry_interval=0)):
        caplog.clear()
        counter: dict = {}
        with _app(cache, counter).test_client() as c:
            for i in range(4):
                r = c.get("/items")
                assert r.status_code == 200 and r.json()["n"] == i + 1
                assert "x-cache" not in r.headers
        failures = [r for r in caplog.records if "serving uncached" in r.getMessage()]
        assert len(failures) == 1, cache
        assert failures[0].name == "ember.cache"


def test_backend_hung_fails_open_quickly(blackhole_port):
    for cache in (RedisCache(url=f"redis://127.0.0.1:{blackhole_port}", timeout=0.1,
                             retry_interval=3600),
                  MemcachedCache(host="127.0.0.1", port=blackhole_port, timeout=0.1,
                                 retry_interval=3600)):
        counter: dict = {}
        with _app(cache, counter).test_client() as c:
            assert c.get("/items").status_code == 200  # one timeout, served uncached
            connections, sent = len(blackhole_port.connections), blackhole_port.received()
            assert sent, "the first request should have tried the backend"
            for _ in range(4):
                assert c.get("/items").status_code == 200
            # the breaker skips the hung backend: no new connection, not one more byte
            assert len(blackhole_port.connections) == connections, cache
            assert blackhole_port.received() == sent, cache
        assert counter["n"] == 5


def test_backend_recovers_after_outage(request, closed_port):
    server = request.getfixturevalue("redis_server")
    cache = RedisCache(url=f"redis://127.0.0.1:{closed_port}", retry_interval=0,
                       prefix=_prefix("rec"))
    counter: dict = {}
    with _app(cache, counter).test_client() as c:
        assert c.get("/items").json()["n"] == 1
        cache.url = server.url  # the backend comes back (same object, new address)
        cache._clients.clear()
        assert c.get("/items").headers["x-cache"] == "MISS"
        assert c.get("/items").headers["x-cache"] == "HIT"


def test_memcached_long_keys_and_big_values(request):
    counter: dict = {}
    cache = _make_cache("memcached", request)
    long_query = "q=" + "x" * 3000 + "&sp=a%20b%0d%0a&u=%C3%A9"
    with _app(cache, counter).test_client() as c:
        c.get("/items?" + long_query)
        assert c.get("/items?" + long_query).headers["x-cache"] == "HIT"
        # over Memcached's 1 MB item limit: served, not stored, not an outage
        assert c.get("/big").content.endswith(b"1") and c.get("/big").content.endswith(b"2")
        assert c.get("/items?" + long_query).headers["x-cache"] == "HIT"
    key = cache.storage_key("k " * 5000)
    assert len(key) < 250 and b" " not in key and key.isascii()


@pytest.mark.parametrize("make", [
    lambda: StaticCache(ttl=-1), lambda: StaticCache(ttl=0), lambda: StaticCache(ttl=True),
    lambda: StaticCache(max_entries=0), lambda: StaticCache(vary="accept"),
    lambda: RedisCache(url="http://x"), lambda: RedisCache(url="redis://"),
    lambda: RedisCache(url="redis://h:notaport"), lambda: RedisCache(url="redis://h/x"),
    lambda: RedisCache(ttl=0), lambda: RedisCache(ttl=-5), lambda: RedisCache(timeout=0),
    lambda: RedisCache(prefix="has space"), lambda: MemcachedCache(port=70000),
    lambda: MemcachedCache(port="11211"), lambda: MemcachedCache(host=""),
    lambda: MemcachedCache(ttl=31 * 24 * 3600), lambda: MemcachedCache(prefix="x" * 200),
])
def test_cache_config_errors(make):
    with pytest.raises(ConfigError):
        make()


def test_constructing_caches_imports_no_client_library():
    import subprocess
    import sys

    code = ("import sys, ember\n"
            "from ember import RedisCache, MemcachedCache, StaticCache, GlobalTokenBucket\n"
            "from ember import RateLimitMiddleware\n"
            "RedisCache(); MemcachedCache(); StaticCache()\n"
            "RateLimitMiddleware(GlobalTokenBucket('redis://localhost:6379', 1, 1))\n"
            "bad = [m for m in ('redis', 'aiomcache') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cache_argument_validated_at_registration():
    app = Ember()
    with pytest.raises(ConfigError, match="cache="):
        @app.get("/x", cache="redis")
        async def x():
            return ""


def test_caches_connect_and_close_with_the_server(serve, request):
    import httpx

    redis_server = request.getfixturevalue("redis_server")
    cache = RedisCache(url=redis_server.url, prefix=_prefix("srv"))
    counter: dict = {}
    url = serve(_app(cache, counter))
    with httpx.Client(base_url=url) as client:
        assert client.get("/items").headers["x-cache"] == "MISS"
        r = client.get("/items")
        assert r.headers["x-cache"] == "HIT" and r.json() == {"n": 1, "q": None}
        assert client.head("/items").headers["x-cache"] == "HIT"
    assert cache.connected
    serve.servers[0].stop()
    assert not cache.connected


def test_handler_errors_are_not_chained_to_a_cache_outage(closed_port):
    """With the backend down, a handler's own exception carries no cache error context."""
    app = Ember()
    seen: list[BaseException] = []

    @app.exception_handler(ValueError)
    async def record(request, exc):
        seen.append(exc)
        return Response(str(exc), 400)

    @app.get("/tasks", cache=RedisCache(url=f"redis://127.0.0.1:{closed_port}", ttl=30))
    async def tasks(page: str = "1"):
        return {"page": int(page)}

    with app.test_client() as client:
        assert client.get("/tasks?page=abc").status_code == 400
    [exc] = seen
    assert exc.__context__ is None and exc.__cause__ is None
