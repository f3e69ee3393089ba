"""Cache keys: what identifies a cached response, built the same way by every backend.

A key has four parts, kept apart so that invalidation can address them:

* ``origin`` — the scheme and host the request addressed (``https://api.example.com``,
  after a trusted proxy's ``X-Forwarded-*``; see :func:`ember.proxies.request_host`),
  so a forged ``Host`` can only ever poison its own entries, never what other clients
  get.  Invalidation addresses a path on every origin at once (the remote backends'
  per-path version keys do not include it: no ``KEYS`` scan);

* ``path`` — the percent-decoded request path, re-quoted so it is unambiguous;
* ``query`` — the query string with its pairs sorted (``?b=2&a=1`` == ``?a=1&b=2``);
* ``variant`` — a digest of the ``vary`` header values and, for routes that cache
  authorized requests, of the credential (never the credential itself).

Only GET is ever stored (HEAD reads GET's entry), so the method is implicit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

#: characters left unquoted in a path (RFC 3986 ``pchar`` plus ``/``)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """The identity of one cached response."""

    path: str
    query: str
    variant: str = ""
    origin: str = ""

    @property
    def base(self) -> str:
        """``GET <path>?<query>``: what :meth:`RouteCache.invalidate` addresses."""
        return f"GET {self.path}?{self.query}"

    @property
    def full(self) -> str:
        """Origin, base and variant: unique per stored entry."""
        full = f"{self.base}#{self.variant}" if self.variant else self.base
        return f"{self.origin} {full}" if self.origin else full


def digest(*parts: str) -> str:
    """A fixed-length hex digest of ``parts`` (NUL-separated, so never ambiguous)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def canonical_path(path: str) -> str:
    """``path`` quoted so that different paths never produce the same text."""
    return quote(path, safe=_PATH_SAFE)


def canonical_query(query: str | bytes | Mapping[str, Any] | None) -> str:
    """The query with its pairs sorted; a mapping's list values become repeated keys.

    NOTE: the query is handled as bytes (latin-1), so ``%ff`` and ``%fe`` never
    collapse into one replacement character; text given here is UTF-8 encoded first,
    like a browser would.
    """
    if query is None:
        return ""
    if isinstance(query, Mapping):
        query = urlencode(
            [(str(k), str(v)) for k, vs in query.items()
             for v in (vs if isinstance(vs, (list, tuple)) else [vs])])
    if isinstance(query, str):
        query = query.encode("utf-8")
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return urlencode(sorted(pairs), encoding="latin-1")


def request_key(request: Any, vary: Sequence[str] = (), credential: str | None = None) -> CacheKey:
    """The key of ``request``; ``vary`` are lowercase header names."""
    variant = ""
    if vary or credential is not None:
        headers = request.headers
        parts = [f"{name}={','.join(headers.getall(name, []))}" for name in vary]
        if credential is not None:
            parts.append("authorization=" + digest(credential))
        variant = digest(*parts)
    return CacheKey(canonical_path(request.path), canonical_query(request.query_string), variant,
                    request_origin(request))


def request_origin(request: Any) -> str:
    """``scheme://host`` of ``request``, normalised (see :func:`ember.proxies.request_host`)."""
    from ember.proxies import request_host

    scheme = getattr(request, "scheme", "http") or "http"
    return f"{scheme}://{request_host(request)}"
