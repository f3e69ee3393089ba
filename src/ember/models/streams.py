"""Streaming results: :class:`ModelStream` (sync) and :class:`AsyncModelStream`.

    stream = models.stream("gpt-4", "Write a long story")
    for chunk in stream:
        print(chunk.text, end="")
    stream.usage        # UsageStats once the stream has ended
    stream.response     # the assembled ChatResponse

Iterating starts the request. Usage-only frames are absorbed (not yielded).
When the provider reports no usage (a broken or usage-less stream) the
tokens are counted locally and ``usage.estimated`` is True. A stream that
breaks midway raises :class:`ProviderAPIError` after the chunks already
delivered; its ``context["partial_usage"]`` holds what was recorded.
Leaving the loop early (``break``) closes the connection and records the
usage so far. Both classes are context managers that always close.

``first_token_timeout=`` (seconds) abandons a stream that brings no first token
(text, a tool call or a finish reason; keep-alives, pings and empty deltas do not
count) in that time: :func:`~ember.models.retry.first_token_timeout_error` is
raised (``error_type="timeout"``). Sync and async streams alike: the HTTP
providers stop a sync read that waits past the deadline
(``HTTPStreaming.stops_stalled_reads``); another provider's sync stream is checked
between the chunks it yields.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from ember.models.exceptions import ModelError
from ember.models.retry import check_first_token_timeout, first_token_timeout_error, has_content
from ember.models.schemas import ChatResponse, StreamChunk, ToolCall, UsageStats


class Recorder(Protocol):
    """What a stream reports to when it ends (the registry; no import of it here)."""

    def estimate_usage(self, binding: Any, prompt: Any, text: str,
                       calls: list[ToolCall] | None = None) -> UsageStats: ...

    def _record(self, binding: Any, model_id: str, response: ChatResponse | None,
                started: float, error: BaseException | None) -> UsageStats | None: ...


class _StreamState:
    """What both stream flavours accumulate."""

    def __init__(self, registry: Recorder, binding: Any, model_id: str,
                 prompt: Any, params: dict[str, Any]) -> None:
        self._registry = registry
        self._binding = binding
        self.model_id = model_id
        self._prompt = prompt
        self._first_token = check_first_token_timeout(params.pop("first_token_timeout", None))
        self._params = params
        self._parts: list[str] = []
        self._calls: dict[int, list[Any]] = {}
        self._reported: UsageStats | None = None
        self._finish: str | None = None
        self._started = 0.0
        self._done = False
        self._error: BaseException | None = None
        self.usage: UsageStats | None = None
        """Final usage, set when the stream ends (normally, by error, or closed early)."""
        self.response: ChatResponse | None = None
        """The assembled response, set when the stream ends."""

    @property
    def calls(self) -> list[tuple[str, UsageStats | None, BaseException | None]]:
        """``[(provider/model, usage, error)]`` once ended (what to bill), else ``[]``."""
        if not self._done:
            return []
        return [(self._binding.key, self.usage, self._error)]

    @property
    def text(self) -> str:
        """Text received so far."""
        return "".join(self._parts)

    def _absorb(self, chunk: StreamChunk) -> bool:
        """Record ``chunk``; False when it only carried usage (not yielded)."""
        if chunk.usage is not None:
            self._reported = chunk.usage
            if not (chunk.text or chunk.tool_calls or chunk.finish_reason):
                return False
        if chunk.index:
            return True  # NOTE: other choices (n > 1) are yielded, not assembled
        if chunk.text:
            self._parts.append(chunk.text)
        if chunk.finish_reason:
            self._finish = chunk.finish_reason
        for delta in chunk.tool_calls or ():
            entry = self._calls.setdefault(delta.index, [None, None, []])
            if delta.id:
                entry[0] = delta.id
            if delta.name:
                entry[1] = delta.name
            if delta.arguments:
                entry[2].append(delta.arguments)
        return True

    def _end(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        calls = [
            ToolCall(e[0] or f"call_{i}", e[1] or "", "".join(e[2]) or "{}")
            for i, e in sorted(self._calls.items())
        ]
        text = self.text
        reported = self._reported
        if reported is not None and error is None and not (
            reported.estimated and reported.total_tokens == 0
        ):
            usage = reported
        elif error is not None and not (text or calls or reported or (
                isinstance(error, ModelError) and error.context.get("reported_usage"))):
            usage = UsageStats()  # failed before anything was generated: nothing to bill
        else:
            usage = self._registry.estimate_usage(self._binding, self._prompt, text, calls)
            if reported is None and error is not None:
                reported = error.context.get("reported_usage") if isinstance(
                    error, ModelError) else None
            if reported is not None:
                usage = UsageStats(
                    reported.prompt_tokens or usage.prompt_tokens,
                    max(reported.completion_tokens, usage.completion_tokens), estimated=True,
                    **reported.classes(),
                )
        self.response = ChatResponse(
            data=text, usage=usage, model_id=self.model_id, finish_reason=self._finish,
            raw_finish_reason=self._finish, tool_calls=calls,
        )
        self.usage = self._registry._record(self._binding, self.model_id, self.response,
                                            self._started, error)
        if isinstance(error, ModelError):
            error.context["partial_usage"] = self.usage


class ModelStream(_StreamState):
    """A synchronous stream of :class:`StreamChunk` (iterate once)."""

    _iterating = False
    _gen: Any = None

    def __iter__(self) -> Iterator[StreamChunk]:
        if self._iterating:
            raise RuntimeError("a model stream can be iterated only once")
        self._iterating = True
        self._gen = self._run()
        return self._gen

    def collect(self) -> ChatResponse:
        """Consume the whole stream and return the assembled response."""
        for _ in self:
            pass
        assert self.response is not None
        return self.response

    def _run(self) -> Iterator[StreamChunk]:
        import time

        self._started = time.perf_counter()
        b = self._binding
        limit = self._first_token
        params = self._params
        if limit is not None and getattr(b.provider, "stops_stalled_reads", False):
            params = {**params, "first_token_timeout": limit}
        deadline = None if limit is None else time.monotonic() + limit
        source = b.provider.stream(self._prompt, b.model, **params)
        error: BaseException | None = None
        try:
            for chunk in source:
                if deadline is not None:
                    if has_content(chunk):
                        deadline = None
                    elif time.monotonic() > deadline:
                        raise first_token_timeout_error(self.model_id, limit or 0.0)
                if self._absorb(chunk):
                    yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            self._end(error if isinstance(error, Exception) else None)

    def close(self) -> None:
        """Stop early (closes the connection); usage so far is recorded."""
        if self._gen is not None:
            self._gen.close()
        self._iterating = True
        self._end()

    def __enter__(self) -> ModelStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncModelStream(_StreamState):
    """An asynchronous stream of :class:`StreamChunk` (``async for``, iterate once)."""

    _iterating = False
    _gen: Any = None

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterating:
            raise RuntimeError("a model stream can be iterated only once")
        self._iterating = True
        self._gen = self._run()
        return self._gen

    async def _run(self) -> AsyncIterator[StreamChunk]:
        import time

        self._started = time.perf_counter()
        b = self._binding
        source = b.provider.stream_async(self._prompt, b.model, **self._params)
        limit = self._first_token
        error: BaseException | None = None
        try:
            if limit is not None:
                head = await _first_token(source, limit, self.model_id)
                for chunk in head:
                    if self._absorb(chunk):
                        yield chunk
                if not head:
                    return
            async for chunk in source:
                if self._absorb(chunk):
                    yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
            self._end(error if isinstance(error, Exception) else None)

    async def collect(self) -> ChatResponse:
        """Consume the whole stream and return the assembled response."""
        async for _ in self:
            pass
        assert self.response is not None
        return self.response

    async def aclose(self) -> None:
        """Stop early (closes the connection); usage so far is recorded."""
        if self._gen is not None:
            await self._gen.aclose()
        else:
            self._iterating = True
        self._end()

    async def __aenter__(self) -> AsyncModelStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()



async def _first_token(source: Any, limit: float, model_id: str) -> list[Any]:
    """``source``'s chunks up to and including its first token, read within ``limit``
    seconds (``[]``: the stream ended before any)."""
    import asyncio

    head: list[Any] = []
    try:
        async with asyncio.timeout(limit):
            while True:
                try:
                    chunk = await source.__anext__()
                except StopAsyncIteration:
                    return head
                head.append(chunk)
                if has_content(chunk):
                    return head
    except TimeoutError:
        raise first_token_timeout_error(model_id, limit) from None
