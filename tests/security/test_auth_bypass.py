"""Regression: bearer / API-key checks hold against header variants and encoded paths.

What held on main when issue #10 was filed (constant-time comparisons, header variants,
11 encoded-path bypass attempts), kept as tests.  Peers' bugs turned into cases:
Starlette/FastAPI path-prefix exclusions that matched ``/public`` for ``/publicity``,
``..``/``%2e%2e``/``%2f`` tricks around excluded prefixes, and duplicate headers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ember import APIKeyMiddleware, BearerAuthMiddleware, Ember
from tests.conftest import raw_exchange

TOKEN = "tok-0123456789"


def protected_app(kind: str) -> Ember:
    app = Ember()
    if kind == "bearer":
        app.add_middleware(BearerAuthMiddleware(lambda t: t == TOKEN,
                                                exclude_paths=["/health", "/public/*"]))
    else:
        app.add_middleware(APIKeyMiddleware([TOKEN, "other-key-xyz"],
                                            exclude_paths=["/health", "/public/*"]))

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/public/{name}")
    async def public(name: str) -> str:
        return "public"

    @app.get("/admin/{rest:path}")
    async def admin(rest: str) -> str:
        return "SECRET"

    @app.get("/admin")
    async def admin_root() -> str:
        return "SECRET"

    return app


def get(base: str, target: str, headers: dict[str, str] | None = None,
        raw_headers: bytes = b"") -> tuple[int, bytes]:
    lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
    reply = raw_exchange(base, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                         + lines + raw_headers + b"Connection: close\r\n\r\n")
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return status, reply


ENCODED_PATHS = [
    "/admin", "/admin/", "/ADMIN", "/%61dmin", "/admin%2f", "/public/../admin",
    "/public/%2e%2e/admin", "/public%2f..%2fadmin", "/health/../admin", "/health%2f..%2fadmin",
    "//admin", "/./admin", "/admin;/public/x", "/public/x/../../admin", "/healthz",
    "/health/x", "/publicity", "/admin%00", "/public/..%252fadmin", "/admin?/public/x",
    "/admin#/public/x", "http://t/admin",
]


@pytest.mark.parametrize("kind", ["bearer", "api_key"])
def test_encoded_path_bypass_attempts(serve: Any, kind: str) -> None:
    base = serve(protected_app(kind))
    for target in ENCODED_PATHS:
        status, reply = get(base, target)
        assert b"SECRET" not in reply, (target, reply[:200])
        assert status in (400, 401, 404, 405) or reply.endswith(b"public"), (target, status)
    assert get(base, "/health")[0] == 200 and get(base, "/public/x")[0] == 200


BEARER_VARIANTS = [
    ({"authorization": f"Bearer {TOKEN}"}, 200),
    ({"authorization": f"bearer {TOKEN}"}, 200),
    ({"authorization": f"BEARER   {TOKEN}  "}, 200),
    ({"authorization": f"Basic {TOKEN}"}, 401),
    ({"authorization": TOKEN}, 401),
    ({"authorization": "Bearer"}, 401),
    ({"authorization": "Bearer "}, 401),
    ({"authorization": f"Bearer {TOKEN}x"}, 401),
    ({"authorization": f"Bearer {TOKEN[:-1]}"}, 401),
    ({"authorization": f"Bearer {TOKEN.upper()}"}, 401),
    ({"x-authorization": f"Bearer {TOKEN}"}, 401),
    ({"authorization": f"Token {TOKEN}"}, 401),
]


@pytest.mark.parametrize("headers,status", BEARER_VARIANTS)
def test_bearer_header_variants(headers: dict[str, str], status: int) -> None:
    with protected_app("bearer").test_client() as c:
        r = c.get("/admin", headers=headers)
        assert r.status_code == status
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")


API_KEY_VARIANTS = [
    ({"x-api-key": TOKEN}, 200),
    ({"X-API-KEY": TOKEN}, 200),
    ({"x-api-key": "other-key-xyz"}, 200),
    ({"x-api-key": TOKEN + " "}, 200),  # RFC 9110: surrounding whitespace is not the value
    ({"x-api-key": TOKEN + "\t."}, 401),
    ({"x-api-key": TOKEN.upper()}, 401),
    ({"x-api-key": ""}, 401),
    ({"x-api-key": TOKEN[:4]}, 401),
    ({"x-api-key": "é" + TOKEN}, 401),
    ({"authorization": f"Bearer {TOKEN}"}, 401),  # allow_bearer is off by default
    ({"x-api_key": TOKEN}, 401),
]


@pytest.mark.parametrize("headers,status", API_KEY_VARIANTS)
def test_api_key_header_variants(headers: dict[str, str], status: int) -> None:
    with protected_app("api_key").test_client() as c:
        assert c.get("/admin", headers=headers).status_code == status


def test_duplicate_credential_headers_use_the_first_only(serve: Any) -> None:
    base = serve(protected_app("api_key"))
    # a proxy-appended second header must not authenticate a request whose first is bad
    status, _ = get(base, "/admin", raw_headers=b"x-api-key: wrong\r\nx-api-key: "
                    + TOKEN.encode() + b"\r\n")
    assert status == 401
    status, _ = get(base, "/admin", raw_headers=b"x-api-key: " + TOKEN.encode()
                    + b"\r\nx-api-key: wrong\r\n")
    assert status == 200


def test_api_key_comparison_is_over_digests_of_every_key() -> None:
    """Constant time: every key is compared, on fixed-length digests (no early exit)."""
    mw = APIKeyMiddleware(["a" * 5, "b" * 500])
    assert mw._digests == [hashlib.sha256(k.encode()).digest() for k in ("a" * 5, "b" * 500)]
    assert all(len(d) == 32 for d in mw._digests)
    assert mw.valid("b" * 500) and not mw.valid("b" * 499) and not mw.valid("\udcff")


def test_bearer_verify_that_returns_truthy_is_denied() -> None:
    for result in ("yes", 1, [TOKEN], None, False):
        app = Ember()
        app.add_middleware(BearerAuthMiddleware(lambda t, r=result: r))
        app.get("/x")(lambda: "SECRET")
        with app.test_client() as c:
            assert c.get("/x", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
