"""Authentication middleware: bearer tokens and API keys.

Both let CORS preflights through untouched (a browser never sends credentials on
a preflight) and skip ``exclude_paths`` (exact paths, or prefixes ending in
``*``).  Failures are 401 with ``WWW-Authenticate`` and a JSON reason.
"""

from __future__ import annotations

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
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


class BearerAuthMiddleware:
    """``Authorization: Bearer <token>`` checked by ``verify_fn(token)`` (sync or async).

    Only a result that is ``True`` (or truthy and not a coroutine) lets the request
    through; ``None``, ``False`` or an exception in ``verify_fn`` is a 401 (the
    exception is logged).  A truthy non-bool result is stored in
    ``request.state.auth`` (e.g. the user).
    """

    def __init__(self, verify_fn: Callable[[str], Any], exclude_paths: Sequence[str] = (),
                 realm: str = "api") -> None:
        if not callable(verify_fn):
            raise ConfigError("BearerAuthMiddleware needs a callable verify_fn(token)")
        self.verify_fn = verify_fn
        self.excluded = _excluder(exclude_paths)
        self.realm = realm

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
        if result is None or result is False or not result:
            return self._deny("invalid_token", "invalid token")
        if result is not True:
            request.state.auth = result
        return await call_next(request)


class APIKeyMiddleware:
    """An API key in ``header`` (default ``x-api-key``), compared in constant time."""

    def __init__(self, api_keys: Sequence[str], header: str = "x-api-key",
                 exclude_paths: Sequence[str] = (), allow_bearer: bool = False) -> None:
        if isinstance(api_keys, str):
            raise ConfigError("api_keys must be a list of keys, not a single string")
        keys = [k for k in api_keys]
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError("APIKeyMiddleware needs a non-empty list of non-empty string keys")
        self._keys = [k.encode() for k in keys]
        self.header = header.lower()
        self.excluded = _excluder(exclude_paths)
        self.allow_bearer = allow_bearer

    def valid(self, candidate: str) -> bool:
        """Compare against every key without stopping early (no timing oracle)."""
        given = candidate.encode("utf-8", "surrogateescape")
        ok = False
        for key in self._keys:
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
