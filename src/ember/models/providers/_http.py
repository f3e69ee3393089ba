"""HTTP plumbing shared by the built-in providers.

One pooled ``httpx.Client`` and one ``httpx.AsyncClient`` per event loop per
provider, created lazily (``import ember`` never imports httpx). Every request
goes through the provider's :class:`~ember.models.retry.RetryPolicy` and
every failure becomes a :class:`ProviderAPIError` with an ``error_type``.
Subclasses describe the wire format: :meth:`build_request`,
:meth:`parse_response` and :meth:`stream_parser`. Streaming lives in
:mod:`ember.models.providers._stream`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from ember._redact import redact
from ember.models.exceptions import ProviderAPIError, error_type_for_status
from ember.models.providers._stream import HTTPStreaming, StreamParser
from ember.models.providers._transport import (
    _env_float,
    _verify_for,
    httpx_module,
    parse_retry_after,
)
from ember.models.providers.base import BaseProvider, Prompt
from ember.models.retry import RetryPolicy, run_async, run_sync
from ember.models.schemas import ChatResponse
from ember.models.vocab import classify_error

# NOTE: closers live as long as their loop, not their provider: a registry dropped
# mid-loop still gets its connections closed by asyncio.run()'s shutdown_asyncgens().
__all__ = ["HTTPProvider", "StreamParser"]

_loop_closers: weakref.WeakKeyDictionary[Any, set[Any]] = weakref.WeakKeyDictionary()


class _LoopClient:
    """An AsyncClient tied to one event loop, closed when that loop shuts down."""

    __slots__ = ("client", "closer", "loop")

    def __init__(self, loop: Any, client: Any) -> None:
        self.loop = loop
        self.client = client
        self.closer: Any = None


async def _close_with_loop(client: Any) -> AsyncIterator[None]:
    # NOTE: an async generator registered with the loop: asyncio.run()'s
    # shutdown_asyncgens() closes it, and with it the pooled connections, while
    # the loop still runs (no "unclosed transport" at interpreter exit).
    try:
        yield
    finally:
        await client.aclose()


class HTTPProvider(HTTPStreaming, BaseProvider):
    """A provider speaking JSON + SSE over one pooled httpx client per side."""

    name: ClassVar[str] = "http"
    #: whose error and finish vocabulary it speaks (ember.models.vocab)
    vocabulary: ClassVar[str] = "compatible"
    base_url_env: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        retry_base: float | None = None,
        retry_max_wait: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(api_key)
        env_url = os.environ.get(self.base_url_env) if self.base_url_env else None
        self.base_url = (base_url or env_url or self.default_base_url).rstrip("/")
        self.timeout = timeout if timeout is not None else _env_float("EMBER_MODEL_TIMEOUT", 600.0)
        self.connect_timeout = connect_timeout or _env_float("EMBER_MODEL_CONNECT_TIMEOUT", 10.0)
        self.retry_policy = RetryPolicy(
            int(max_retries if max_retries is not None else
                _env_float("EMBER_MODEL_MAX_RETRIES", 2)),
            retry_base if retry_base is not None else _env_float("EMBER_MODEL_RETRY_BASE", 0.5),
            retry_max_wait if retry_max_wait is not None else _env_float(
                "EMBER_MODEL_RETRY_MAX_WAIT", 60.0),
        )
        self.max_connections = int(
            max_connections or _env_float("EMBER_MODEL_MAX_CONNECTIONS", 1000)
        )
        self._client: Any = None
        self._aclients: dict[int, _LoopClient] = {}
        self._last: _LoopClient | None = None
        self._lock = threading.Lock()

    @property
    def max_retries(self) -> int:
        """Retries per call (the :class:`RetryPolicy`'s ``max_retries``)."""
        return self.retry_policy.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self.retry_policy = self.retry_policy.replace(max_retries=value)

    @property
    def retry_base(self) -> float:
        return self.retry_policy.backoff

    @property
    def retry_max_wait(self) -> float:
        return self.retry_policy.max_wait

    # -- wire format hooks -------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        """Headers sent with every request (auth, versions)."""
        return {}

    def build_request(
        self, prompt: Prompt, model: str, params: dict[str, Any], stream: bool
    ) -> tuple[str, dict[str, Any]]:
        """``(url path, JSON body)`` for one call."""
        raise NotImplementedError

    def parse_response(self, data: Any, model: str) -> ChatResponse:
        """Build a :class:`ChatResponse` from the decoded JSON body."""
        raise NotImplementedError

    def stream_parser(self, model: str) -> StreamParser:
        """A fresh parser for one streamed call."""
        raise NotImplementedError

    def error_message(self, data: Any) -> str | None:
        """The provider's error message inside an error body (secrets masked)."""
        message = self._raw_error_message(data)
        return redact(message, [self.api_key]) if message else None  # NOTE: echoed keys

    def _raw_error_message(self, data: Any) -> str | None:
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict):
                return str(err.get("message") or err)
            if isinstance(err, str):
                return err
            if "message" in data:
                return str(data["message"])
        return None

    # -- clients ---------------------------------------------------------------------------
    def _limits(self) -> Any:
        httpx = httpx_module()
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=min(self.max_connections, 200),
            keepalive_expiry=30.0,
        )

    def _timeout(self, read: float | None = None) -> Any:
        httpx = httpx_module()
        read = self.timeout if read is None else read
        return httpx.Timeout(read, connect=min(self.connect_timeout, read), pool=max(read, 60.0))

    def sync_client(self) -> Any:
        """The pooled sync client (created on first use)."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    httpx = httpx_module()
                    client = self._client = httpx.Client(
                        base_url=self.base_url, headers=self.headers(),
                        timeout=self._timeout(), limits=self._limits(),
                        verify=_verify_for(self.base_url),
                    )
        return client

    async def async_client(self) -> Any:
        """The pooled async transport of the running loop (created on first use).

        An adapter from :mod:`ember.models.providers._transport` (aiohttp when
        installed, else httpx); closed when the loop shuts down or by :meth:`aclose`.
        """
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last.loop is loop:
            return last.client
        entry = self._aclients.get(id(loop))
        if entry is None or entry.loop is not loop:
            from ember.models.providers import _transport

            kind = _transport.client_kind()
            client = (_transport.AiohttpAsync(self) if kind == "aiohttp"
                      else _transport.HttpxAsync(self))
            entry = _LoopClient(loop, client)
            closer = _close_with_loop(client)
            await closer.__anext__()
            entry.closer = closer
            _loop_closers.setdefault(loop, set()).add(closer)
            with self._lock:
                for key, old in list(self._aclients.items()):
                    if old.loop.is_closed():
                        del self._aclients[key]
                self._aclients[id(loop)] = entry
        self._last = entry
        return entry.client

    def close(self) -> None:
        """Close the sync client; async clients close with their loops or :meth:`aclose`."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the sync client and the running loop's async client."""
        self.close()
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._aclients.pop(id(loop), None)
            if self._last is entry:
                self._last = None
        if entry is not None and entry.closer is not None:
            _loop_closers.get(loop, set()).discard(entry.closer)
            await entry.closer.aclose()

    # -- errors ------------------------------------------------------------------------------
    def _status_error(self, status: int, headers: Any, body: bytes, model: str) -> ProviderAPIError:
        message = None
        data: Any = None
        try:
            data = orjson.loads(body) if body else None
            message = self.error_message(data) if data is not None else None
        except orjson.JSONDecodeError:
            message = body[:500].decode("utf-8", "replace").strip() or None
        message = redact(message, [self.api_key]) if message else None  # echoed keys, URLs
        found = classify_error(self.vocabulary, status, data, message)
        error_type = found.pop("error_type", None) or error_type_for_status(status)
        # NOTE: the longest delay the provider asked for (header or body): never shortened
        delays = [d for d in (parse_retry_after(headers), found.pop("retry_after", None))
                  if d is not None]
        return ProviderAPIError(
            f"{self.name} API error {status} ({error_type}): {message or 'no message'}",
            error_type=error_type, status_code=status, provider=self.name, model=model,
            provider_message=message, retry_after=max(delays) if delays else None,
            context=found,
        )

    def _transport_error(self, exc: BaseException, model: str,
                         client: Any = None) -> ProviderAPIError:
        if client is not None:
            kind = "timeout" if client.is_timeout(exc) else "connection"
        else:
            httpx = httpx_module()
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
        return ProviderAPIError(
            f"{self.name} {kind} error: {type(exc).__name__}: {redact(exc, [self.api_key])}"
            .rstrip(": "), error_type=kind, provider=self.name, model=model,
            provider_message=redact(exc, [self.api_key]) or None,
        )

    def malformed(self, what: str, model: str, status: int | None = 200) -> ProviderAPIError:
        """The error for a response body we cannot decode."""
        return ProviderAPIError(
            f"{self.name} sent a malformed response: {what}",
            error_type="server", status_code=status, provider=self.name, model=model,
            provider_message=what, context={"malformed": True, "code": "server_error"},
        )

    @staticmethod
    def _split(params: dict[str, Any]) -> tuple[float | None, int | None]:
        return params.pop("timeout", None), params.pop("max_retries", None)

    # -- one-shot calls ------------------------------------------------------------------------
    def complete(self, prompt: Prompt, model: str, **params: Any) -> ChatResponse:
        """Call the provider and return the parsed response (with retries)."""
        timeout, max_retries = self._split(params)
        path, body = self.build_request(prompt, model, params, False)
        content = orjson.dumps(body)
        client = self.sync_client()
        httpx = httpx_module()
        kwargs: dict[str, Any] = {"content": content}
        if timeout is not None:
            kwargs["timeout"] = self._timeout(timeout)

        def attempt() -> bytes:
            try:
                response = client.post(path, **kwargs)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, model) from exc
            if response.status_code >= 400:
                raise self._status_error(response.status_code, response.headers,
                                         response.content, model)
            return response.content

        data = run_sync(self.retry_policy, attempt, max_retries=max_retries)
        return self._parse_body(data, model)

    async def complete_async(self, prompt: Prompt, model: str, **params: Any) -> ChatResponse:
        """Async twin of :meth:`complete`."""
        timeout, max_retries = self._split(params)
        path, body = self.build_request(prompt, model, params, False)
        _status, _headers, data = await self._apost(path, orjson.dumps(body), model, timeout,
                                                   max_retries)
        return self._parse_body(data, model)

    async def _apost(self, path: str, content: bytes, model: str, timeout: float | None,
                     max_retries: int | None) -> tuple[int, Any, bytes]:
        """POST with the retry policy; a status >= 400 raises :class:`ProviderAPIError`."""
        client = await self.async_client()

        async def attempt() -> tuple[int, Any, bytes]:
            try:
                status, headers, data = await client.post(path, content, timeout)
            except client.errors as exc:
                raise self._transport_error(exc, model, client) from exc
            if status >= 400:
                raise self._status_error(status, headers, data, model)
            return status, headers, data

        return await run_async(self.retry_policy, attempt, max_retries=max_retries)

    async def embed_async(self, inputs: list[str], model: str, **params: Any) -> Any:
        """Embed ``inputs`` (providers with ``embeddings_request``/``parse_embeddings``)."""
        build = getattr(self, "embeddings_request", None)
        if build is None:
            return await super().embed_async(inputs, model, **params)
        timeout, max_retries = self._split(params)
        path, body = build(inputs, model, params)
        _status, _headers, data = await self._apost(path, orjson.dumps(body), model, timeout,
                                                    max_retries)
        try:
            return self.parse_embeddings(orjson.loads(data), model)
        except ProviderAPIError:
            raise
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError,
                AttributeError) as exc:
            raise self.malformed(f"embeddings ({type(exc).__name__})", model) from exc

    def _parse_body(self, content: bytes, model: str) -> ChatResponse:
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise self.malformed(f"invalid JSON ({exc})", model) from exc
        try:
            return self.parse_response(data, model)
        except ProviderAPIError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise self.malformed(f"unexpected JSON shape ({type(exc).__name__}: {exc})", model) from exc
