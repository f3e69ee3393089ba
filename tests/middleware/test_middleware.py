"""CORS, bearer and API-key authentication, rate limiting."""

from __future__ import annotations

import asyncio

import pytest

from ember import (
    APIKeyMiddleware,
    BearerAuthMiddleware,
    CORSMiddleware,
    Ember,
    GlobalTokenBucket,
    RateLimitMiddleware,
    Request,
    TokenBucket,
)
from ember.exceptions import ConfigError
from tests._clock import FakeClock


def _app(*middleware) -> Ember:
    app = Ember()
    for mw in middleware:
        app.add_middleware(mw)

    @app.get("/data")
    async def data():
        return {"ok": True}

    @app.post("/data")
    async def post_data():
        return {"posted": True}

    @app.get("/public/info")
    async def info():
        return "public"

    @app.get("/whoami")
    async def whoami(request: Request):
        return {"token": request.state.get("token")}

    @app.options("/explicit")
    async def explicit_options():
        return "explicit options handler"

    return app


PREFLIGHT = {"origin": "https://myapp.com", "access-control-request-method": "POST",
             "access-control-request-headers": "content-type, x-api-key"}


def test_cors_preflight_without_options_route():
    app = _app(CORSMiddleware(allow_origins=["https://myapp.com"], allow_headers=["x-api-key"]))
    with app.test_client() as c:
        r = c.options("/data", headers=PREFLIGHT)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "https://myapp.com"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == "content-type, x-api-key"
        assert "Origin" in r.headers["vary"]


@pytest.mark.parametrize("headers,reason", [
    ({**PREFLIGHT, "origin": "https://evil.com"}, "origin"),
    ({**PREFLIGHT, "access-control-request-method": "TRACE"}, "method"),
    ({**PREFLIGHT, "access-control-request-headers": "x-secret"}, "x-secret"),
])
def test_cors_preflight_refusals(headers, reason):
    app = _app(CORSMiddleware(allow_origins=["https://myapp.com"], allow_headers=["x-api-key"],
                              allow_methods=["GET", "POST"]))
    with app.test_client() as c:
        r = c.options("/data", headers=headers)
        assert r.status_code == 400 and reason in r.text
        assert "access-control-allow-origin" not in r.headers


def test_cors_on_actual_responses_and_errors():
    app = _app(CORSMiddleware(allow_origins=["https://myapp.com"], expose_headers=["x-total"]))
    with app.test_client() as c:
        r = c.get("/data", headers={"origin": "https://myapp.com"})
        assert r.headers["access-control-allow-origin"] == "https://myapp.com"
        assert r.headers["access-control-expose-headers"] == "x-total"
        assert "Origin" in r.headers["vary"]
        r = c.get("/data", headers={"origin": "https://evil.com"})
        assert "access-control-allow-origin" not in r.headers and "Origin" in r.headers["vary"]
        r = c.get("/missing", headers={"origin": "https://myapp.com"})
        assert r.status_code == 404 and r.headers["access-control-allow-origin"]


def test_cors_credentials_never_wildcard_or_reflected():
    app = _app(CORSMiddleware(allow_origins=["*"], allow_credentials=True))
    with app.test_client() as c:
        r = c.get("/data", headers={"origin": "https://anyone.com"})
        assert "access-control-allow-origin" not in r.headers
        r = c.options("/data", headers={**PREFLIGHT, "origin": "https://anyone.com",
                                        "access-control-request-headers": ""})
        assert r.status_code == 400
    app = _app(CORSMiddleware(allow_origins=["https://myapp.com"], allow_credentials=True))
    with app.test_client() as c:
        r = c.get("/data", headers={"origin": "https://myapp.com"})
        assert r.headers["access-control-allow-origin"] == "https://myapp.com"
        assert r.headers["access-control-allow-credentials"] == "true"
    app = _app(CORSMiddleware(allow_origins=["*"]))
    with app.test_client() as c:
        assert c.get("/data", headers={"origin": "https://x.org"}).headers[
            "access-control-allow-origin"] == "*"


@pytest.mark.parametrize("kwargs", [
    {"allow_origins": "https://myapp.com"}, {"allow_origins": ["https://myapp.com/path"]},
    {"allow_origins": ["myapp.com"]}, {"allow_methods": "GET"}, {"max_age": -1},
    {"allow_origin_regex": "("},
])
def test_cors_bad_config(kwargs):
    with pytest.raises(ConfigError):
        CORSMiddleware(**kwargs)


def test_cors_vary_without_origin_and_regex():
    mw = CORSMiddleware(allow_origin_regex=r"https://[a-z]+\.myapp\.com", allow_credentials=True)
    app = _app(mw)
    with app.test_client() as c:
        assert "Origin" in c.get("/data").headers["vary"]  # no Origin: still varies on it
        r = c.get("/data", headers={"origin": "https://eu.myapp.com"})
        assert r.headers["access-control-allow-origin"] == "https://eu.myapp.com"
        assert r.headers["access-control-allow-credentials"] == "true"
        r = c.get("/data", headers={"origin": "https://eu.myapp.com.evil.org"})
        assert "access-control-allow-origin" not in r.headers
        r = c.options("/data", headers={**PREFLIGHT, "origin": "https://evil.org",
                                        "access-control-request-headers": ""})
        assert r.status_code == 400
    with _app(CORSMiddleware(allow_origins=["*"])).test_client() as c:
        assert "vary" not in c.get("/data").headers  # the same "*" for everyone


@pytest.mark.parametrize("is_async", [False, True])
def test_bearer_auth(is_async, caplog):
    def check(token):
        if token == "boom":
            raise RuntimeError("db down")
        if token == "none":
            return None
        if token == "truthy":
            return "user-ann"  # truthy but not True: denied
        return token == "secret"

    async def acheck(token):
        return check(token)

    app = _app(BearerAuthMiddleware(verify_fn=acheck if is_async else check,
                                    exclude_paths=["/public/*"]))
    with app.test_client() as c:
        r = c.get("/data")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "error=" not in r.headers["www-authenticate"]  # no token: no error code
        assert c.get("/data", headers={"authorization": "Bearer secret"}).status_code == 200
        assert c.get("/data", headers={"authorization": "bearer  secret"}).status_code == 200
        for token in ("wrong", "boom", "none", "truthy"):
            r = c.get("/data", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401, token
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
            assert "db down" not in r.text
        for header in ("Basic abc", "Bearer", "Bearer ", "secret"):
            assert c.get("/data", headers={"authorization": header}).status_code == 401
        assert c.get("/public/info").text == "public"
        assert c.get("/public").status_code == 401  # "/public/*" is a prefix of /public/...
        assert c.get("/whoami", headers={"authorization": "Bearer secret"}).json() == {
            "token": "secret"}
    assert any("db down" in (r.exc_text or "") for r in caplog.records if r.name == "ember.auth")


def test_auth_does_not_skip_explicit_options_routes():
    app = _app(BearerAuthMiddleware(verify_fn=lambda t: t == "secret"))
    with app.test_client() as c:
        # a preflight-looking request must not run an OPTIONS handler unauthenticated
        assert c.options("/explicit", headers=PREFLIGHT).status_code == 401
        # with no OPTIONS route, the app's automatic answer is harmless: let it through
        r = c.options("/data", headers=PREFLIGHT)
        assert r.status_code == 204 and "GET" in r.headers["allow"]
        assert c.options("/data").status_code == 401  # not a preflight


def test_seed_middleware_stack_cors_preflight_passes_auth():
    app = _app(CORSMiddleware(allow_origins=["https://myapp.com"], allow_headers=["x-api-key"]),
               BearerAuthMiddleware(verify_fn=lambda token: token == "secret"),
               APIKeyMiddleware(api_keys=["key-1", "key-2"], header="x-api-key"))
    with app.test_client() as c:
        assert c.options("/data", headers=PREFLIGHT).status_code == 204
        assert c.get("/data").status_code == 401
        assert c.get("/data", headers={"authorization": "Bearer secret"}).status_code == 401
        r = c.get("/data", headers={"authorization": "Bearer secret", "x-api-key": "key-2",
                                    "origin": "https://myapp.com"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://myapp.com"


def test_api_key():
    mw = APIKeyMiddleware(api_keys=["key-1", "key-2"], header="X-Api-Key")
    app = _app(mw)
    with app.test_client() as c:
        assert c.get("/data").status_code == 401
        assert "missing" in c.get("/data").text
        assert c.get("/data", headers={"x-api-key": "key-3"}).status_code == 401
        assert c.get("/data", headers={"x-api-key": "key-1x"}).status_code == 401
        assert c.get("/data", headers={"x-api-key": "key-2"}).status_code == 200
        assert c.get("/data", headers={"x-api-key": "k\u00e9y"}).status_code == 401
    assert mw.valid("key-1") and not mw.valid("") and not mw.valid("key")
    with pytest.raises(ConfigError):
        APIKeyMiddleware(api_keys="key-1")
    with pytest.raises(ConfigError):
        APIKeyMiddleware(api_keys=[])
    with pytest.raises(ConfigError):
        APIKeyMiddleware(api_keys=["ok", ""])


def test_api_key_compares_every_key_in_constant_time(monkeypatch):
    import hmac

    from ember.middleware import auth

    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    mw = APIKeyMiddleware(api_keys=["first", "second-much-longer-key", "third"])
    for candidate in ("first", "third", "nope", "x" * 1000):
        calls.clear()
        mw.valid(candidate)
        # no early exit, and equal-length digests: nothing about the keys leaks
        assert calls == [(32, 32)] * 3


def test_api_key_bearer_option_and_exclusions():
    app = _app(APIKeyMiddleware(api_keys=["k1"], allow_bearer=True, exclude_paths=["/public/*"]))
    with app.test_client() as c:
        assert c.get("/data", headers={"authorization": "Bearer k1"}).status_code == 200
        assert c.get("/data", headers={"authorization": "Bearer k2"}).status_code == 401
        assert c.get("/public/info").status_code == 200
    app = _app(APIKeyMiddleware(api_keys=["k1"]))
    with app.test_client() as c:
        assert c.get("/data", headers={"authorization": "Bearer k1"}).status_code == 401


def test_rate_limit_headers_and_refill(monkeypatch):
    clock = FakeClock.install(monkeypatch, "ember.middleware.ratelimit")
    app = _app(RateLimitMiddleware(TokenBucket(rate=20, capacity=1), exclude_paths=["/public/*"]))
    with app.test_client() as c:
        assert c.get("/data").status_code == 200
        r = c.get("/data")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.headers["ratelimit-remaining"] == "0" and "rate limit" in r.json()["detail"]
        clock.advance(0.04)
        assert c.get("/data").status_code == 429  # 0.8 of a token so far
        clock.advance(0.01)
        assert c.get("/data").status_code == 200  # refilled at 20 tokens/s
        for _ in range(3):
            assert c.get("/public/info").status_code == 200
    with pytest.raises(ConfigError):
        RateLimitMiddleware(TokenBucket(1, 2), cost=3)
    with pytest.raises(ConfigError):
        RateLimitMiddleware(TokenBucket(1, 2), key="cookie")


def test_rate_limit_in_process():
    app = _app(RateLimitMiddleware(TokenBucket(rate=1, capacity=2)))
    with app.test_client() as c:
        r1, r2, r3 = c.get("/data"), c.get("/data"), c.get("/data")
        assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
        assert r1.headers["ratelimit-limit"] == "2" and r1.headers["ratelimit-remaining"] == "1"
        assert int(r3.headers["retry-after"]) >= 1


def test_rate_limit_by_api_key_and_custom_key():
    app = _app(RateLimitMiddleware(TokenBucket(rate=0.01, capacity=1), key="api_key",
                                   api_keys=["a", "b"]))
    with app.test_client() as c:
        assert c.get("/data", headers={"x-api-key": "a"}).status_code == 200
        assert c.get("/data", headers={"x-api-key": "a"}).status_code == 429
        assert c.get("/data", headers={"x-api-key": "b"}).status_code == 200
    app = _app(RateLimitMiddleware(TokenBucket(rate=0.01, capacity=1),
                                   key=lambda r: r.headers.get("x-tenant", "?")))
    with app.test_client() as c:
        assert c.get("/data", headers={"x-tenant": "t1"}).status_code == 200
        assert c.get("/data", headers={"x-tenant": "t1"}).status_code == 429


@pytest.mark.parametrize("args", [(0, 1), (1, 0), (-1, 5), (float("inf"), 1), ("1", 1)])
def test_bucket_config_errors(args):
    with pytest.raises(ConfigError):
        TokenBucket(*args)


@pytest.mark.services
def test_global_token_bucket_is_shared_and_atomic(redis_server):
    async def main():
        a = GlobalTokenBucket(redis_server.url, rate=0.001, capacity=5)
        b = GlobalTokenBucket(redis_server.url, rate=0.001, capacity=5)
        results = await asyncio.gather(*[(a if i % 2 else b).take("k1") for i in range(20)])
        await a.close()
        await b.close()
        return [r[0] for r in results]

    allowed = asyncio.run(main())
    assert allowed.count(True) == 5


def test_global_token_bucket_survives_script_flush(redis_server):
    async def main():
        bucket = GlobalTokenBucket(redis_server.url, rate=0.001, capacity=2, prefix="flush:")
        first = await bucket.take("k")
        await bucket._redis().script_flush()  # as after a Redis restart: EVALSHA -> NOSCRIPT
        second, third = await bucket.take("k"), await bucket.take("k")
        await bucket.close()
        return first[0], second[0], third[0]

    assert asyncio.run(main()) == (True, True, False)


def test_global_rate_limit_through_the_server(serve, redis_server):
    import httpx

    bucket = GlobalTokenBucket(redis_server.url, rate=0.001, capacity=3, prefix="srv:")
    apps = [_app(RateLimitMiddleware(bucket, key="api_key", api_keys=["abc", "other"]))
            for _ in range(2)]
    for app in apps:
        app.on_shutdown(bucket.close)  # closes that server loop's connections
    url_a, url_b = serve(apps[0]), serve(apps[1])  # two "workers" sharing one Redis
    codes = []
    for i in range(6):
        r = httpx.get((url_a if i % 2 else url_b) + "/data", headers={"x-api-key": "abc"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.headers["ratelimit-limit"] == "3"
    assert codes == [200, 200, 200, 429, 429, 429]
    assert httpx.get(url_a + "/data", headers={"x-api-key": "other"}).status_code == 200


def test_global_token_bucket_fails_open(closed_port, blackhole_port, caplog):
    async def main(port, probe=None):
        bucket = GlobalTokenBucket(f"redis://127.0.0.1:{port}", rate=1, capacity=1,
                                   timeout=0.1, retry_interval=3600)
        results = [await bucket.take("k")]
        sent = probe() if probe else None
        results += [await bucket.take("k") for _ in range(4)]
        # one timeout, then Redis is skipped: a hung one gets not one more byte
        assert probe is None or probe() == sent
        await bucket.close()
        return results

    for port, probe in ((closed_port, None), (blackhole_port, blackhole_port.received)):
        caplog.clear()
        results = asyncio.run(main(port, probe))
        assert all(r[0] for r in results)
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ConfigError):
        GlobalTokenBucket("http://localhost", 1, 1)


def test_seed_middleware_example_over_real_sockets(serve):
    """The README's Middleware example, unchanged, plus a route, served for real."""
    import httpx

    from ember import Ember as SeedEmber

    app = SeedEmber()
    app.add_middleware(CORSMiddleware(allow_origins=["https://myapp.com"]))
    app.add_middleware(BearerAuthMiddleware(verify_fn=lambda token: token == "secret"))
    app.add_middleware(APIKeyMiddleware(api_keys=["key-1", "key-2"], header="x-api-key"))

    @app.get("/data")
    async def data():
        return {"ok": True}

    url = serve(app)
    with httpx.Client(base_url=url) as client:
        ok = {"authorization": "Bearer secret", "x-api-key": "key-1",
              "origin": "https://myapp.com"}
        r = client.get("/data", headers=ok)
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert r.headers["access-control-allow-origin"] == "https://myapp.com"
        r = client.options("/data", headers={"origin": "https://myapp.com",
                                             "access-control-request-method": "GET"})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"]
        r = client.options("/data", headers={"origin": "https://evil.com",
                                             "access-control-request-method": "GET"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = client.get("/data", headers={**ok, "x-api-key": "nope"})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"]
        assert client.get("/data", headers={**ok, "authorization": "Bearer x"}).status_code == 401
        assert client.get("/missing", headers=ok).status_code == 404
