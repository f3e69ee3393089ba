"""Proxy headers and rate-limit keys (issue #10, fault 4), over real sockets where it matters."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from ember import APIKeyMiddleware, Ember, RateLimitMiddleware, Request, TokenBucket
from ember.exceptions import ConfigError


def ip_app(**options: Any) -> Ember:
    app = Ember(**options)

    @app.get("/ip")
    async def ip(request: Request) -> str:
        return request.client.host

    return app


def test_client_supplied_forwarded_never_wins(serve: Any) -> None:
    """The measured attack: 30 requests, each with its own ``Forwarded: for=``."""
    app = ip_app(trusted_proxies=["127.0.0.1"])
    app.add_middleware(RateLimitMiddleware(TokenBucket(rate=0.001, capacity=3)))
    base = serve(app)
    codes = []
    with httpx.Client(base_url=base) as c:
        for n in range(30):
            r = c.get("/ip", headers={"Forwarded": f"for=1.2.3.{n}",
                                      "X-Forwarded-For": "198.51.100.7"})
            codes.append(r.status_code)
            if r.status_code == 200:
                assert r.text == "198.51.100.7"
    assert codes.count(200) == 3 and codes.count(429) == 27


@pytest.mark.parametrize("header,headers,expected", [
    # default family: X-Forwarded-For, right-most untrusted hop
    ("x-forwarded-for", {"x-forwarded-for": "6.6.6.6, 198.51.100.7"}, "198.51.100.7"),
    ("x-forwarded-for", {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.1.2.3"}, "198.51.100.7"),
    ("x-forwarded-for", {"x-forwarded-for": "198.51.100.7:4711"}, "198.51.100.7"),
    ("x-forwarded-for", {"x-forwarded-for": "[2001:db8::1]:80"}, "2001:db8::1"),
    ("x-forwarded-for", {"forwarded": "for=6.6.6.6"}, "127.0.0.1"),
    ("x-forwarded-for", {"x-real-ip": "6.6.6.6"}, "127.0.0.1"),
    ("x-forwarded-for", {"x-forwarded-for": "6.6.6.6, garbage"}, "127.0.0.1"),
    ("x-forwarded-for", {"x-forwarded-for": "10.0.0.1, 10.0.0.2"}, "127.0.0.1"),
    ("x-forwarded-for", {"x-forwarded-for": ""}, "127.0.0.1"),
    # RFC 7239
    ("forwarded", {"forwarded": 'for=6.6.6.6, for="[2001:db8::2]:99";proto=https'},
     "2001:db8::2"),
    ("forwarded", {"forwarded": "for=198.51.100.7", "x-forwarded-for": "6.6.6.6"},
     "198.51.100.7"),
    ("forwarded", {"x-forwarded-for": "6.6.6.6"}, "127.0.0.1"),
    ("forwarded", {"forwarded": "for=unknown"}, "127.0.0.1"),
    # X-Real-IP: one address; the last one when repeated
    ("x-real-ip", {"x-real-ip": "198.51.100.7", "x-forwarded-for": "6.6.6.6"},
     "198.51.100.7"),
])
def test_exactly_one_configured_header(header: str, headers: dict[str, str],
                                       expected: str) -> None:
    app = ip_app(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], forwarded_header=header)
    with app.test_client() as c:
        assert c.get("/ip", headers=headers).text == expected


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded", "x-real-ip"])
def test_untrusted_peer_headers_ignored(header: str) -> None:
    app = ip_app(trusted_proxies=["10.0.0.1"], forwarded_header=header)
    spoof = {"x-forwarded-for": "6.6.6.6", "forwarded": "for=6.6.6.6", "x-real-ip": "6.6.6.6"}
    with app.test_client() as c:
        assert c.get("/ip", headers=spoof).text == "127.0.0.1"


@pytest.mark.parametrize("options", [
    {"forwarded_header": "x-client-ip"}, {"forwarded_header": None},
    {"trusted_proxies": "127.0.0.1"}, {"trusted_proxies": ["not-an-ip"]},
])
def test_bad_proxy_configuration(options: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, ValueError)):
        Ember(**options)


def test_key_guessing_shares_the_ip_bucket(serve: Any) -> None:
    """Fault 4b: 30 guessed keys must not mean 30 fresh buckets."""
    app = ip_app()
    app.add_middleware(RateLimitMiddleware(TokenBucket(rate=0.001, capacity=3), key="api_key"))
    app.add_middleware(APIKeyMiddleware(["real-key"]))
    base = serve(app)
    with httpx.Client(base_url=base) as c:
        codes = [c.get("/ip", headers={"x-api-key": f"guess-{n}"}).status_code
                 for n in range(30)]
        assert codes.count(401) == 3 and codes.count(429) == 27
        # a real key has its own bucket, unaffected by the guesses from the same IP
        assert c.get("/ip", headers={"x-api-key": "real-key"}).status_code == 200
        bearer = c.get("/ip", headers={"authorization": "Bearer guess-x"})
        assert bearer.status_code == 429


@pytest.mark.parametrize("source", ["api_keys", "validator", "async_validator"])
def test_known_keys_from_explicit_sources(source: str) -> None:
    async def avalid(key: str) -> bool:
        return key in ("k1", "k2")

    option = {"api_keys": {"api_keys": ["k1", "k2"]},
              "validator": {"validator": lambda k: k in ("k1", "k2")},
              "async_validator": {"validator": avalid}}[source]
    app = ip_app()
    app.add_middleware(RateLimitMiddleware(TokenBucket(rate=0.001, capacity=1), key="api_key",
                                           **option))
    with app.test_client() as c:
        assert c.get("/ip", headers={"x-api-key": "k1"}).status_code == 200
        assert c.get("/ip", headers={"x-api-key": "k1"}).status_code == 429
        assert c.get("/ip", headers={"x-api-key": "k2"}).status_code == 200
        assert c.get("/ip", headers={"x-api-key": "nope-1"}).status_code == 200  # IP bucket
        assert c.get("/ip", headers={"x-api-key": "nope-2"}).status_code == 429
        assert c.get("/ip").status_code == 429  # same IP bucket as the guesses


def test_validator_that_raises_or_returns_truthy_is_unknown(caplog: Any) -> None:
    caplog.set_level(logging.ERROR, "ember.ratelimit")
    for validator in (lambda k: 1 / 0, lambda k: "yes"):
        app = ip_app()
        app.add_middleware(RateLimitMiddleware(TokenBucket(rate=0.001, capacity=1),
                                               key="api_key", validator=validator))
        with app.test_client() as c:
            assert c.get("/ip", headers={"x-api-key": "a"}).status_code == 200
            assert c.get("/ip", headers={"x-api-key": "b"}).status_code == 429


def test_no_source_of_known_keys_limits_by_ip_and_warns(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "ember.ratelimit")
    app = ip_app()
    app.add_middleware(RateLimitMiddleware(TokenBucket(rate=0.001, capacity=1), key="api_key"))
    with app.test_client() as c:
        assert c.get("/ip", headers={"x-api-key": "a"}).status_code == 200
        assert c.get("/ip", headers={"x-api-key": "b"}).status_code == 429
        c.get("/ip", headers={"x-api-key": "c"})
    warnings = [r for r in caplog.records if "cannot tell real keys" in r.getMessage()]
    assert len(warnings) == 1


def test_bad_rate_limit_options() -> None:
    bucket = TokenBucket(rate=1, capacity=1)
    with pytest.raises(ConfigError):
        RateLimitMiddleware(bucket, key="api_key", api_keys=["a"], validator=lambda k: True)
    with pytest.raises(ConfigError):
        RateLimitMiddleware(bucket, key="api_key", validator="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        RateLimitMiddleware(bucket, key="api_key", api_keys="a")
