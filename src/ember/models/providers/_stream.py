"""Streamed calls of the HTTP providers: one SSE decoder, retries before the first byte.

Bytes go through :class:`~ember._sse_decode.SSEDecoder` (the one decoder, WHATWG rules)
into the provider's :class:`StreamParser`; a failure before the response starts is
retried by the provider's :class:`~ember.models.retry.RetryPolicy`, one after it is
raised with the usage the provider reported so far (``context["reported_usage"]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from ember.models.exceptions import ProviderAPIError
from ember.models.providers._transport import httpx_module
from ember.models.providers.base import Prompt
from ember.models.retry import run_async, run_sync
from ember.models.schemas import StreamChunk


class StreamParser:
    """Turns SSE events of one provider into :class:`StreamChunk` objects."""

    #: set once the provider's end-of-stream marker was seen
    done: bool = False

    def feed(self, event: Any) -> list[StreamChunk]:  # pragma: no cover - interface
        raise NotImplementedError

    def at_eof(self) -> list[StreamChunk] | None:
        """Final chunks when the body ends without an end marker, or None if truncated."""
        return None

    def partial_usage(self) -> Any:
        """Usage the provider reported before the stream broke, if any."""
        return None


class HTTPStreaming:
    """``stream`` / ``stream_async`` of :class:`~ember.models.providers._http.HTTPProvider`."""

    name: Any
    retry_policy: Any
    build_request: Any
    stream_parser: Any
    sync_client: Any
    async_client: Any
    _split: Any
    _timeout: Any
    _transport_error: Any
    _status_error: Any
    malformed: Any

    # -- streaming -------------------------------------------------------------------------------
    def stream(self, prompt: Prompt, model: str, **params: Any) -> Iterator[StreamChunk]:
        """Yield chunks as SSE events arrive; retries only before the first byte."""
        from ember._sse_decode import SSEDecoder

        timeout, max_retries = self._split(params)
        path, body = self.build_request(prompt, model, params, True)
        content = orjson.dumps(body)
        client = self.sync_client()
        httpx = httpx_module()
        kwargs: dict[str, Any] = {"content": content}
        if timeout is not None:
            kwargs["timeout"] = self._timeout(timeout)

        def attempt() -> Any:
            request = client.build_request("POST", path, **kwargs)
            try:
                response = client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, model) from exc
            if response.status_code >= 400:
                try:
                    raw = response.read()
                except httpx.TransportError:
                    raw = b""
                finally:
                    response.close()
                raise self._status_error(response.status_code, response.headers, raw, model)
            return response

        response = run_sync(self.retry_policy, attempt, max_retries=max_retries)
        parser = self.stream_parser(model)
        decoder = SSEDecoder()
        try:
            try:
                for raw_chunk in response.iter_raw():
                    if parser.done:
                        continue  # NOTE: drain to EOF so the connection goes back to the pool
                    for event in decoder.feed(raw_chunk):
                        yield from self._feed(parser, event, model)
            except httpx.TransportError as exc:
                if not parser.done:  # a failure while draining after the end marker is moot
                    raise self._transport_error(exc, model) from exc
            if not parser.done:
                tail = parser.at_eof()
                if tail is None:
                    raise self._truncated(model)
                yield from tail
        except ProviderAPIError as exc:
            partial = parser.partial_usage()
            if partial is not None:
                exc.context["reported_usage"] = partial
            raise
        finally:
            response.close()

    async def stream_async(
        self, prompt: Prompt, model: str, **params: Any
    ) -> AsyncIterator[StreamChunk]:
        """Async twin of :meth:`stream`."""
        from ember._sse_decode import SSEDecoder

        timeout, max_retries = self._split(params)
        path, body = self.build_request(prompt, model, params, True)
        content = orjson.dumps(body)
        client = await self.async_client()

        async def attempt() -> Any:
            try:
                response = await client.open(path, content, timeout)
            except client.errors as exc:
                raise self._transport_error(exc, model, client) from exc
            if response.status_code >= 400:
                try:
                    raw = await response.aread()
                except client.errors:
                    raw = b""
                finally:
                    await response.aclose()
                raise self._status_error(response.status_code, response.headers, raw, model)
            return response

        response = await run_async(self.retry_policy, attempt, max_retries=max_retries)
        parser = self.stream_parser(model)
        decoder = SSEDecoder()
        try:
            try:
                async for raw_chunk in response.aiter():
                    if parser.done:
                        continue  # NOTE: drain to EOF so the connection goes back to the pool
                    for event in decoder.feed(raw_chunk):
                        for chunk in self._feed(parser, event, model):
                            yield chunk
            except client.errors as exc:
                if not parser.done:  # a failure while draining after the end marker is moot
                    raise self._transport_error(exc, model, client) from exc
            if not parser.done:
                tail = parser.at_eof()
                if tail is None:
                    raise self._truncated(model)
                for chunk in tail:
                    yield chunk
        except ProviderAPIError as exc:
            partial = parser.partial_usage()
            if partial is not None:
                exc.context["reported_usage"] = partial
            raise
        finally:
            await response.aclose()

    def _feed(self, parser: StreamParser, event: Any, model: str) -> list[StreamChunk]:
        try:
            return parser.feed(event)
        except ProviderAPIError:
            raise
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError,
                ValueError) as exc:
            raise self.malformed(
                f"bad stream event {event.data[:200]!r} ({type(exc).__name__})", model
            ) from exc

    def _truncated(self, model: str) -> ProviderAPIError:
        return ProviderAPIError(
            f"{self.name} stream ended before its end marker (truncated)",
            error_type="connection", provider=self.name, model=model,
            provider_message="stream truncated",
        )
