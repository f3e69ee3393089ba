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
    #: a sync stream's ``first_token_timeout`` interrupts a blocked read (see _StallWatch)
    stops_stalled_reads = True

    def stream(self, prompt: Prompt, model: str, **params: Any) -> Iterator[StreamChunk]:
        """Yield chunks as SSE events arrive; retries only before the first byte.

        ``first_token_timeout`` (seconds, given by :class:`~ember.models.streams.ModelStream`)
        bounds the wait for the first token: the wait for the response head reads with
        that timeout, and a body that brings nothing but keep-alives is cut at the deadline.
        """
        from ember._sse_decode import SSEDecoder

        timeout, max_retries = self._split(params)
        limit = params.pop("first_token_timeout", None)
        watch = None if limit is None else _StallWatch(limit, model)
        path, body = self.build_request(prompt, model, params, True)
        content = orjson.dumps(body)
        client = self.sync_client()
        httpx = httpx_module()
        read = self.timeout if timeout is None else timeout

        def attempt() -> Any:
            head_read = read if watch is None else min(read, watch.remaining())
            kwargs: dict[str, Any] = {"content": content}
            if timeout is not None or head_read < read:
                kwargs["timeout"] = self._timeout(head_read)
            request = client.build_request("POST", path, **kwargs)
            try:
                response = client.send(request, stream=True)
            except httpx.TransportError as exc:
                if watch is not None and isinstance(exc, httpx.TimeoutException) \
                        and head_read < read:
                    raise watch.error() from None
                raise self._transport_error(exc, model) from exc
            if response.status_code >= 400:
                try:
                    raw = response.read()
                except httpx.TransportError:
                    raw = b""
                finally:
                    response.close()
                raise self._status_error(response.status_code, response.headers, raw, model)
            if head_read < read:
                # NOTE: httpcore reads the body's timeout from this dict when the body
                # starts; the head's shorter one must not cut a slow but live stream
                request.extensions["timeout"]["read"] = read
            return response

        response = run_sync(self.retry_policy, attempt, max_retries=max_retries)
        parser = self.stream_parser(model)
        decoder = SSEDecoder()
        if watch is not None:
            watch.start(response)
        try:
            try:
                for raw_chunk in response.iter_raw():
                    if parser.done:
                        continue  # NOTE: drain to EOF so the connection goes back to the pool
                    for event in decoder.feed(raw_chunk):
                        for chunk in self._feed(parser, event, model):
                            if watch is not None:
                                watch.saw(chunk)
                            yield chunk
                    if watch is not None:
                        watch.check()
            except httpx.TransportError as exc:
                if watch is not None:
                    watch.check()
                if not parser.done:  # a failure while draining after the end marker is moot
                    raise self._transport_error(exc, model) from exc
            if not parser.done:
                if watch is not None:
                    watch.check()
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
            if watch is not None:
                watch.cancel()
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


class _StallWatch:
    """The first-token deadline of one sync stream.

    A sync read cannot be cancelled, so a timer shuts the socket down at the deadline
    (a read blocked in ``recv`` then returns at once); :meth:`check` turns what the
    read then raises, or a deadline passed between keep-alives, into the
    first-token-timeout error. Once a token was seen the timer is disarmed, under a
    lock so that a token and the deadline cannot both win.
    """

    __slots__ = ("_deadline", "_fired", "_limit", "_lock", "_model", "_seen", "_timer")

    def __init__(self, limit: float, model: str) -> None:
        import threading
        import time

        self._limit = limit
        self._model = model
        self._deadline = time.monotonic() + limit
        self._lock = threading.Lock()
        self._fired = False
        self._seen = False
        self._timer: Any = None

    def remaining(self) -> float:
        import time

        return max(0.001, self._deadline - time.monotonic())

    def error(self) -> ProviderAPIError:
        from ember.models.retry import first_token_timeout_error

        return first_token_timeout_error(self._model, self._limit)

    def start(self, response: Any) -> None:
        import threading

        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return  # NOTE: no socket to stop (a test transport): checked between chunks

        def fire() -> None:
            import socket

            with self._lock:
                if self._seen:
                    return
                self._fired = True
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # NOTE: wakes a blocked recv
            except OSError:
                pass

        self._timer = threading.Timer(self.remaining(), fire)
        self._timer.daemon = True
        self._timer.start()

    def saw(self, chunk: Any) -> None:
        """A chunk about to be yielded: the first token disarms the watch."""
        if self._seen:
            return
        from ember.models.retry import has_content

        if has_content(chunk):
            with self._lock:
                if self._fired:
                    raise self.error()
                self._seen = True
            self.cancel()

    def check(self) -> None:
        """Raise the first-token timeout if the deadline passed with no token."""
        import time

        if not self._seen and (self._fired or time.monotonic() >= self._deadline):
            with self._lock:
                if not self._seen:
                    self._fired = True
                    raise self.error()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
