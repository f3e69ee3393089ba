"""CORS (the Fetch standard's CORS protocol) as middleware.

Preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
are answered here, before routing matters, so they work where no OPTIONS route
exists.  A preflight from an origin that is not allowed, or asking for a method
or header that is not allowed, gets **400** with the reason in the body and no
CORS headers (the browser then blocks the real request).  Actual responses get
``Access-Control-Allow-Origin`` (and friends) when the origin is allowed, none
when it is not, and ``Vary: Origin`` whenever the answer depends on the origin
(also when the request had none, so shared HTTP caches keep them apart).

With ``allow_credentials=True`` the answer is never ``*`` and a wildcard never
reflects an origin: only origins in ``allow_origins`` (or matching the
``allow_origin_regex`` the developer wrote) are echoed back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from ember.exceptions import ConfigError
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.middleware")
_SAFE_HEADERS = {"accept", "accept-language", "content-language", "content-type"}


class CORSMiddleware:
    """``app.add_middleware(CORSMiddleware(allow_origins=["https://myapp.com"]))``."""

    def __init__(self, allow_origins: Sequence[str] = (), allow_methods: Sequence[str] = (
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
            allow_headers: Sequence[str] = (), allow_credentials: bool = False,
            expose_headers: Sequence[str] = (), max_age: int = 600,
            allow_origin_regex: str | None = None) -> None:
        if isinstance(allow_origins, str):
            raise ConfigError("allow_origins must be a list of origins, e.g. "
                              "['https://myapp.com'], not a string")
        for origin in allow_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ConfigError(f"invalid origin {origin!r}: use scheme://host[:port] "
                                  "without a path, or '*'")
        if not isinstance(max_age, int) or max_age < 0:
            raise ConfigError(f"max_age must be a non-negative int, got {max_age!r}")
        self.allow_all_origins = "*" in allow_origins
        self.allow_origins = frozenset(o.lower() for o in allow_origins if o != "*")
        for name, value in (("allow_methods", allow_methods), ("allow_headers", allow_headers),
                            ("expose_headers", expose_headers)):
            if isinstance(value, str):
                raise ConfigError(f"{name} must be a list, e.g. [{value!r}], not a string")
        try:
            self.allow_origin_regex = re.compile(allow_origin_regex) if allow_origin_regex \
                else None
        except re.error as exc:
            raise ConfigError(f"invalid allow_origin_regex {allow_origin_regex!r}: {exc}") \
                from None
        methods = [m.upper() for m in allow_methods]
        self.allow_all_methods = "*" in methods
        self.allow_methods = tuple(m for m in methods if m != "*") or (
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        self.allow_all_headers = "*" in allow_headers
        self.allow_headers = frozenset(h.lower() for h in allow_headers if h != "*") | \
            _SAFE_HEADERS
        self.allow_credentials = allow_credentials
        if allow_credentials and self.allow_all_origins:
            # NOTE: a FastAPI/Starlette habit; there "*" reflects any origin with credentials
            logger.warning(
                "CORSMiddleware(allow_origins=[..., '*'], allow_credentials=True): '*' lets no "
                "origin through (a credentialed answer is never '*' nor a reflected origin)%s; "
                "list the origins, or use allow_origin_regex",
                "" if self.allow_origins or self.allow_origin_regex else
                ", so no cross-origin request is allowed at all")
        self.expose_headers = ", ".join(expose_headers)
        self.max_age = max_age
        # NOTE: a bare "*" without credentials is the same answer for every origin
        self._depends_on_origin = not (self.allow_all_origins and not allow_credentials)

    def allows_origin(self, origin: str) -> bool:
        """Whether ``origin`` is allowed (also asked by WebSocket routes' default Origin check)."""
        return self._origin_allowed(origin)

    def _origin_allowed(self, origin: str) -> bool:
        low = origin.lower()
        if low in self.allow_origins:
            return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        return self.allow_all_origins

    def _allow_origin_value(self, origin: str) -> str:
        """``*`` only without credentials and when not listed explicitly."""
        if self.allow_all_origins and not self.allow_credentials:
            return "*"
        return origin

    async def __call__(self, request: Any, call_next: Any) -> Response:
        origin = request.headers.get("origin")
        if origin is None:
            response = await call_next(request)
            if self._depends_on_origin:
                response.headers.add_vary("Origin")
            return response
        if request.method == "OPTIONS" and request.headers.get(
                "access-control-request-method") is not None:
            return self._preflight(request, origin)
        response = await call_next(request)
        self._decorate(response, origin)
        return response

    def _credentials_ok(self, origin: str) -> bool:
        """With credentials only listed origins pass (never one matched by '*' alone)."""
        if not self.allow_credentials or origin.lower() in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and bool(
            self.allow_origin_regex.fullmatch(origin))

    def _preflight(self, request: Any, origin: str) -> Response:
        method = request.headers.get("access-control-request-method", "").upper()
        problems = []
        if not self._origin_allowed(origin) or not self._credentials_ok(origin):
            problems.append("origin not allowed")
        if not self.allow_all_methods and method not in self.allow_methods:
            problems.append(f"method {method or '?'} not allowed")
        requested = [h.strip().lower() for h in request.headers.get(
            "access-control-request-headers", "").split(",") if h.strip()]
        if not self.allow_all_headers:
            bad = [h for h in requested if h not in self.allow_headers]
            if bad:
                problems.append(f"header(s) {', '.join(bad)} not allowed")
        if problems:
            response = JSONResponse({"detail": "CORS preflight refused: " + "; ".join(problems)},
                                    400)
            response.headers.add_vary("Origin")
            return response
        response = Response(None, 204)
        headers = response.headers
        headers["access-control-allow-origin"] = self._allow_origin_value(origin)
        headers["access-control-allow-methods"] = (
            method if self.allow_all_methods else ", ".join(self.allow_methods))
        if requested:
            headers["access-control-allow-headers"] = ", ".join(requested)
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        headers["access-control-max-age"] = str(self.max_age)
        headers.add_vary("Origin")
        return response

    def _decorate(self, response: Response, origin: str) -> None:
        headers = response.headers
        if self._depends_on_origin:
            headers.add_vary("Origin")
        if not self._origin_allowed(origin) or not self._credentials_ok(origin):
            return
        headers["access-control-allow-origin"] = self._allow_origin_value(origin)
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        if self.expose_headers:
            headers["access-control-expose-headers"] = self.expose_headers
