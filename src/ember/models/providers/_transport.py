"""The async HTTP client under the providers: aiohttp when installed, else httpx.

PERF: measured in one run on this machine (bench/upstream_clients.py, 50 keep-alive
connections to a local fake upstream): httpx 0.28 costs 0.7–1.9 ms of CPU per request
(httpcore's pool scans every connection per request and checks each idle socket
through anyio), aiohttp 3.x 0.1–0.16 ms. The gateway's CPU per request is mostly its
upstream client, so the async side uses aiohttp when it is importable
(``EMBER_MODEL_HTTP_CLIENT=httpx`` forces httpx); the sync side stays on httpx.

Both adapters expose the same small surface: :meth:`post` (status, headers, body),
:meth:`open` (a streamed response with ``aread``/``aiter``/``aclose``), ``errors``
(the transport exceptions to map) and :meth:`is_timeout`.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

_httpx: Any = None


def httpx_module() -> Any:
    """Import httpx on first use, naming the extra when it is missing."""
    global _httpx
    if _httpx is None:
        try:
            import httpx
        except ImportError:
            from ember.models.exceptions import ProviderDependencyMissing

            raise ProviderDependencyMissing("httpx", "models") from None
        _httpx = httpx
    return _httpx


_ssl_context: Any = None


def _verify_for(base_url: str) -> Any:
    """One shared TLS context per process (building one costs ~10 ms); none for http://."""
    global _ssl_context
    if base_url.startswith("http://"):
        return False  # NOTE: plain HTTP never uses it; skip loading the CA bundle
    if _ssl_context is None:
        import ssl

        try:
            import certifi

            _ssl_context = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            _ssl_context = ssl.create_default_context()
    return _ssl_context


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        from ember.models.exceptions import ModelProviderError

        raise ModelProviderError(f"{name}={value!r} is not a number") from None


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _trace_headers() -> dict[str, str] | None:
    """``traceparent`` for the upstream call while ``ember.tracing`` is on, else None."""
    # NOTE: one attribute check when tracing is off (ember.tracing._state)
    state = sys.modules.get("ember.tracing._state")
    return None if state is None or state.active is None else state.outgoing_headers()


def client_kind() -> str:
    """``"aiohttp"`` or ``"httpx"`` (env ``EMBER_MODEL_HTTP_CLIENT`` overrides)."""
    kind = os.environ.get("EMBER_MODEL_HTTP_CLIENT", "").strip().lower()
    if kind in ("httpx", "aiohttp"):
        return kind
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "httpx"
    return "aiohttp"


class HttpxAsync:
    """``httpx.AsyncClient`` behind the adapter surface."""

    def __init__(self, provider: Any) -> None:
        httpx = self.httpx = httpx_module()
        self.provider = provider
        self.client = httpx.AsyncClient(
            base_url=provider.base_url, headers=provider.headers(),
            timeout=provider._timeout(), limits=provider._limits(),
            verify=_verify_for(provider.base_url),
        )
        self.errors: tuple[type[BaseException], ...] = (httpx.TransportError,)

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, self.httpx.TimeoutException)

    def _kwargs(self, timeout: float | None) -> dict[str, Any]:
        if timeout is None:
            return {}
        return {"timeout": self.provider._timeout(timeout)}

    async def post(self, path: str, content: bytes,
                   timeout: float | None) -> tuple[int, Any, bytes]:
        r = await self.client.post(path, content=content, headers=_trace_headers(),
                                   **self._kwargs(timeout))
        return r.status_code, r.headers, r.content

    async def open(self, path: str, content: bytes, timeout: float | None) -> Any:
        request = self.client.build_request("POST", path, content=content,
                                            headers=_trace_headers(), **self._kwargs(timeout))
        r = await self.client.send(request, stream=True)
        return _HttpxStream(r)

    async def aclose(self) -> None:
        await self.client.aclose()


class _HttpxStream:
    __slots__ = ("headers", "r", "status_code")

    def __init__(self, r: Any) -> None:
        self.r = r
        self.status_code = r.status_code
        self.headers = r.headers

    async def aread(self) -> bytes:
        return await self.r.aread()

    def aiter(self) -> AsyncIterator[bytes]:
        return self.r.aiter_raw()

    async def aclose(self) -> None:
        await self.r.aclose()


class AiohttpAsync:
    """``aiohttp.ClientSession`` behind the adapter surface (proxies from the environment)."""

    def __init__(self, provider: Any) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.provider = provider
        # NOTE: aiohttp refuses a URL with user:password next to an Authorization header;
        # the credentials become a Basic Authorization when the provider sets none.
        self.base, basic = _split_userinfo(provider.base_url)
        headers = dict(provider.headers())
        if basic is not None and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = basic
        verify = _verify_for(provider.base_url)
        connector = aiohttp.TCPConnector(
            limit=provider.max_connections, limit_per_host=0, keepalive_timeout=30.0,
            ssl=verify if verify is not False else False)
        # PERF: trust_env=True reads ~/.netrc in a thread and scans the environment on
        # every request (a third of the CPU per request, measured); the proxy for this
        # provider's base URL is resolved once here instead, as httpx does.
        self.proxy = _env_proxy(provider.base_url)
        self.session = aiohttp.ClientSession(
            connector=connector, headers=headers, trust_env=False,
            timeout=self._timeout(None), skip_auto_headers=("User-Agent",))
        self.errors = (aiohttp.ClientError, asyncio.TimeoutError)
        # PERF: one-shot POSTs without a proxy go through the lean client (_h1client)
        self.lean = None
        if not self.proxy:
            from ember.models.providers._h1client import lean_for

            self.lean = lean_for(self.base, headers, provider.max_connections,
                                 verify if verify is not False else None)

    def _timeout(self, read: float | None) -> Any:
        read = self.provider.timeout if read is None else read
        return self.aiohttp.ClientTimeout(
            total=None, connect=min(self.provider.connect_timeout, read), sock_read=read)

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncio.TimeoutError | self.aiohttp.ServerTimeoutError)

    def _kwargs(self, timeout: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": self._timeout(timeout)}
        if self.proxy:
            kwargs["proxy"] = self.proxy
        return kwargs

    async def post(self, path: str, content: bytes,
                   timeout: float | None) -> tuple[int, Any, bytes]:
        lean = self.lean
        if lean is not None:
            read = self.provider.timeout if timeout is None else timeout
            return await lean.post(self.base + path, path, content,
                                   min(self.provider.connect_timeout, read), read,
                                   _trace_headers())
        async with self.session.post(self.base + path, data=content,
                                     headers=_trace_headers(), **self._kwargs(timeout)) as r:
            return r.status, r.headers, await r.read()

    async def open(self, path: str, content: bytes, timeout: float | None) -> Any:
        r = await self.session.post(self.base + path, data=content, headers=_trace_headers(),
                                    **self._kwargs(timeout))
        return _AiohttpStream(r)

    async def aclose(self) -> None:
        if self.lean is not None:
            await self.lean.aclose()
        await self.session.close()


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@``, and those credentials as a Basic
    ``Authorization`` value (RFC 7617), or None."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return bare, f"Basic {token}"


def _env_proxy(url: str) -> str | None:
    """The proxy URL the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) sets for
    ``url``, or None."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class _AiohttpStream:
    __slots__ = ("headers", "r", "status_code")

    def __init__(self, r: Any) -> None:
        self.r = r
        self.status_code = r.status
        self.headers = r.headers

    async def aread(self) -> bytes:
        return await self.r.read()

    def aiter(self) -> AsyncIterator[bytes]:
        return self.r.content.iter_any()

    async def aclose(self) -> None:
        self.r.release()
