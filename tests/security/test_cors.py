"""Regression: CORS never grants an origin it should not (held on main; kept as tests).

Kinds from peers' trackers (Starlette's CORSMiddleware, FastAPI, Django-cors-headers):
suffix/prefix look-alikes of a listed origin, unanchored regexes, ``null``, a reflected
origin or ``*`` together with credentials, a missing ``Vary: Origin`` (cache poisoning),
preflights that let any method/header through, and CORS headers on error responses.
"""

from __future__ import annotations

from typing import Any

import pytest

from ember import CORSMiddleware, Ember, HTTPException
from ember.exceptions import ConfigError

LISTED = "https://myapp.com"


def app_with(**options: Any) -> Ember:
    app = Ember()
    app.add_middleware(CORSMiddleware(**options))

    @app.get("/data")
    async def data() -> dict:
        return {"x": 1}

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(403, "no")

    return app


LOOKALIKES = [
    "https://myapp.com.evil.com", "https://evilmyapp.com", "https://evil-myapp.com",
    "http://myapp.com", "https://myapp.com:8443", "https://sub.myapp.com", "null",
    "https://myapp.co", "https://myapp.com%60.evil.com", "",
    "https://myapp.com/", "https://myapp.com@evil.com", "file://", "https://MYAPP.com.evil",
]


@pytest.mark.parametrize("credentials", [False, True])
@pytest.mark.parametrize("origin", LOOKALIKES)
def test_lookalike_origins_get_nothing(origin: str, credentials: bool) -> None:
    with app_with(allow_origins=[LISTED], allow_credentials=credentials).test_client() as c:
        r = c.get("/data", headers={"origin": origin})
        assert "access-control-allow-origin" not in r.headers, origin
        assert "access-control-allow-credentials" not in r.headers
        assert "origin" in r.headers.get("vary", "").lower()
        pre = c.options("/data", headers={"origin": origin,
                                          "access-control-request-method": "GET"})
        assert pre.status_code == 400 and "access-control-allow-origin" not in pre.headers


def test_listed_origin_is_granted_case_insensitively() -> None:
    with app_with(allow_origins=[LISTED], allow_credentials=True).test_client() as c:
        for origin in (LISTED, "HTTPS://MYAPP.COM"):
            r = c.get("/data", headers={"origin": origin})
            assert r.headers["access-control-allow-origin"] == origin
            assert r.headers["access-control-allow-credentials"] == "true"


def test_wildcard_with_credentials_never_reflects() -> None:
    with app_with(allow_origins=["*"], allow_credentials=True).test_client() as c:
        r = c.get("/data", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-credentials" not in r.headers
    with app_with(allow_origins=["*"]).test_client() as c:
        r = c.get("/data", headers={"origin": "https://evil.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize("origin,granted", [
    ("https://a.myapp.com", True), ("https://a.myapp.com.evil.com", False),
    ("https://amyapp.com", False), ("https://a.myapp.com:1", False),
    ("http://a.myapp.com", False), ("https://.myapp.com", False),
])
def test_regex_is_anchored(origin: str, granted: bool) -> None:
    opts = {"allow_origin_regex": r"https://[a-z0-9-]+\.myapp\.com", "allow_credentials": True}
    with app_with(**opts).test_client() as c:
        r = c.get("/data", headers={"origin": origin})
        assert ("access-control-allow-origin" in r.headers) is granted


def test_preflight_refuses_unlisted_methods_and_headers() -> None:
    opts = {"allow_origins": [LISTED], "allow_methods": ["GET"], "allow_headers": ["x-ok"]}
    with app_with(**opts).test_client() as c:
        base = {"origin": LISTED}
        ok = c.options("/data", headers={**base, "access-control-request-method": "GET",
                                         "access-control-request-headers": "X-Ok"})
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == LISTED
        for extra in ({"access-control-request-method": "DELETE"},
                      {"access-control-request-method": "GET",
                       "access-control-request-headers": "x-ok, authorization"}):
            r = c.options("/data", headers={**base, **extra})
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_error_responses_carry_cors_for_allowed_origins_only() -> None:
    with app_with(allow_origins=[LISTED]).test_client() as c:
        r = c.get("/fail", headers={"origin": LISTED})
        assert r.status_code == 403 and r.headers["access-control-allow-origin"] == LISTED
        r = c.get("/nope", headers={"origin": "https://evil.example"})
        assert r.status_code == 404 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("bad", [
    {"allow_origins": "https://myapp.com"}, {"allow_origins": ["https://myapp.com/path"]},
    {"allow_origins": ["myapp.com"]}, {"allow_origin_regex": "("}, {"max_age": -1},
])
def test_bad_cors_configuration(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        CORSMiddleware(**bad)
