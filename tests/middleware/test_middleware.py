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
        return {"auth": getattr(request.state, "auth", None) if "auth" in request.state else None}

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


def test_cors_bad_config():
    with pytest.raises(ConfigError):
        CORSMiddleware(allow_origins="https://myapp.com")
    with pytest.raises(ConfigError):
        CORSMiddleware(allow_origins=["https://myapp.com/path"])


def test_bearer_auth():
    async def verify(token):
        if token == "boom":
            raise RuntimeError("db down")
        if token == "none":
            return None
        return {"user": "ann"} if token == "user" else token == "secret"

    app = _app(BearerAuthMiddleware(verify_fn=verify, exclude_paths=["/public/*"]))
    with app.test_client() as c:
        r = c.get("/data")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/data", headers={"authorization": "Bearer secret"}).status_code == 200
        for token in ("wrong", "boom", "none"):
            r = c.get("/data", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers[
                "www-authenticate"]
        assert c.get("/data", headers={"authorization": "Basic abc"}).status_code == 401
        assert c.get("/public/info").text == "public"
        assert c.get("/whoami", headers={"authorization": "Bearer user"}).json() == {
            "auth": {"user": "ann"}}


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


def test_rate_limit_in_process():
    app = _app(RateLimitMiddleware(TokenBucket(rate=1, capacity=2)))
    with app.test_client() as c:
        r1, r2, r3 = c.get("/data"), c.get("/data"), c.get("/data")
        assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
        assert r1.headers["ratelimit-limit"] == "2" and r1.headers["ratelimit-remaining"] == "1"
        assert int(r3.headers["retry-after"]) >= 1


def test_rate_limit_by_api_key_and_custom_key():
    app = _app(RateLimitMiddleware(TokenBucket(rate=0.01, capacity=1), key="api_key"))
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


def test_global_token_bucket_fails_open(closed_port, caplog):
    async def main():
        bucket = GlobalTokenBucket(f"redis://127.0.0.1:{closed_port}", rate=1, capacity=1)
        results = [await bucket.take("k") for _ in range(3)]
        await bucket.close()
        return results

    assert all(r[0] for r in asyncio.run(main()))
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
