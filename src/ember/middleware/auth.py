"""Authentication middleware: bearer tokens and API keys.

Both skip ``exclude_paths`` (exact paths, or prefixes written ``"/public/*"``)
and answer failures with 401, ``WWW-Authenticate`` and a JSON reason.

CORS preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``;
browsers never send credentials on them) pass untouched when no route handles
OPTIONS for that path, so CORS works in either middleware order.  A preflight-
looking request to a path with an explicit OPTIONS route is authenticated like any
other request: it would otherwise run that handler unauthenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ember.exceptions import ConfigError
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.auth")


def _excluder(paths: Sequence[str]) -> Callable[[str], bool]:
    if isinstance(paths, str):
        raise ConfigError("exclude_paths must be a list of paths, not a string")
    exact = frozenset(p for p in paths if not p.endswith("*"))
    prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))

    def excluded(path: str) -> bool:
        return path in exact or (bool(prefixes) and path.startswith(prefixes))
    return excluded


def _is_preflight(request: Any) -> bool:
    """A CORS preflight that no handler of ours would run for (see the module doc)."""
    if request.method != "OPTIONS" or getattr(request, "route", None) is not None:
        return False
    headers = request.headers
    return "origin" in headers and "access-control-request-method" in headers


class BearerAuthMiddleware:
    """``Authorization: Bearer <token>`` checked by ``verify_fn(token)`` (sync or async).

    Only a result that *is* ``True`` lets the request through: ``None``, ``False``,
    a non-empty string or any other object is a 401, and so is an exception in
    ``verify_fn`` (logged on ``ember.auth``).  This strictness catches the classic
    bug of a verify function that returns an error message or forgets ``return``.
    The accepted token is available as ``request.state.token``.
    """

    #: headers this middleware reads a credential from (route caches bypass or key on them)
    credential_headers = ("authorization",)

    def __init__(self, verify_fn: Callable[[str], Any], exclude_paths: Sequence[str] = (),
                 realm: str = "api") -> None:
        if not callable(verify_fn):
            raise ConfigError("BearerAuthMiddleware needs a callable verify_fn(token)")
        self.verify_fn = verify_fn
        self.excluded = _excluder(exclude_paths)
        self.realm = realm
        self._warned = False

    def _deny(self, error: str | None, description: str) -> Response:
        challenge = f'Bearer realm="{self.realm}"'
        if error:
            challenge += f', error="{error}"'
        return JSONResponse({"detail": description}, 401, headers={"www-authenticate": challenge})

    async def __call__(self, request: Any, call_next: Any) -> Response:
        if _is_preflight(request) or self.excluded(request.path):
            return await call_next(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._deny(None, "missing bearer token")
        try:
            result = self.verify_fn(token)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            logger.exception("bearer verify_fn raised; denying the request")
            return self._deny("invalid_token", "invalid token")
        if result is not True:
            if result is not None and result is not False and not self._warned:
                self._warned = True  # NOTE: once: a misuse, not a per-request event
                logger.warning("bearer verify_fn returned %s, not True; denying the request",
                               type(result).__name__)
            return self._deny("invalid_token", "invalid token")
        request.state.token = token
        return await call_next(request)


class APIKeyMiddleware:
    """An API key in ``header`` (default ``x-api-key``), compared in constant time.

    Every configured key is compared (``hmac.compare_digest`` on SHA-256 digests, so
    neither the position of a matching key nor the key lengths leak through timing).
    ``allow_bearer=True`` also accepts ``Authorization: Bearer <key>``; it is off by
    default so that an API-key middleware never swallows tokens meant for another
    scheme.
    """

    def __init__(self, api_keys: Sequence[str], header: str = "x-api-key",
                 exclude_paths: Sequence[str] = (), allow_bearer: bool = False) -> None:
        if isinstance(api_keys, str):
            raise ConfigError("api_keys must be a list of keys, not a single string")
        keys = list(api_keys)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError("APIKeyMiddleware needs a non-empty list of non-empty string keys")
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        self.header = header.lower()
        self.excluded = _excluder(exclude_paths)
        self.allow_bearer = allow_bearer
        #: headers this middleware reads a credential from (route caches bypass or key
        #: on them, see ember.cache.credentials)
        self.credential_headers = (self.header, "authorization") if allow_bearer \
            else (self.header,)

    def valid(self, candidate: str) -> bool:
        """Compare against every key without stopping early (no timing oracle)."""
        given = hashlib.sha256(candidate.encode("utf-8", "surrogateescape")).digest()
        ok = False
        for key in self._digests:
            ok |= hmac.compare_digest(given, key)
        return ok

    async def __call__(self, request: Any, call_next: Any) -> Response:
        if _is_preflight(request) or self.excluded(request.path):
            return await call_next(request)
        candidate = request.headers.get(self.header)
        if candidate is None and self.allow_bearer:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer":
                candidate = token.strip()
        if not candidate:
            return JSONResponse({"detail": f"missing API key (send it in the {self.header} "
                                           "header)"}, 401,
                                headers={"www-authenticate": f'ApiKey header="{self.header}"'})
        if not self.valid(candidate):
            return JSONResponse({"detail": "invalid API key"}, 401,
                                headers={"www-authenticate": f'ApiKey header="{self.header}"'})
        return await call_next(request)
