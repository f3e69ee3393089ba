"""The streaming half of :class:`~ember.ai.router.ModelRouter` and :class:`RouterStream`.

A stream falls back to the next model only before its first token: an attempt opens
the stream and waits for the first chunk with content (``first_token_timeout``
bounds that wait; keep-alives, pings and empty deltas do not count), under the
router's :class:`~ember.models.retry.RetryPolicy` (``run_async`` / ``run_sync``).
Every attempt's usage is kept on the :class:`RouterStream`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ember.models.retry import run_async, run_sync

_END = object()


def _first_token_timeout(model: str, seconds: float) -> Exception:
    from ember.models.exceptions import ProviderAPIError

    return ProviderAPIError(
        f"{model}: no token within first_token_timeout={seconds:g} s (upstream stalled)",
        error_type="timeout", model=model, provider_message="first token timeout",
        context={"first_token_timeout": seconds, "code": "timeout"})


def _has_content(chunk: Any) -> bool:
    return bool(getattr(chunk, "text", None) or getattr(chunk, "tool_calls", None)
                or getattr(chunk, "finish_reason", None))


class StreamingMixin:
    """``astream`` / ``stream_sync`` of ModelRouter (uses its policy, order and state)."""

    policy: Any
    registry: Any
    order: Any
    _params: Any
    _begin: Any
    _end: Any
    _give_up: Any
    _succeeded: Any
    _final: Any

    def astream(self, prompt: Any, **params: Any) -> AsyncIterator[Any]:
        """Stream chunks from the first model that starts; no fallback after the first chunk."""
        return self._astream(prompt, params, [])

    async def _first(self, iterator: Any, timeout: float | None, model: str) -> list[Any]:
        """The chunks up to and including the first with content ([] at once: empty stream),
        within ``timeout`` seconds (keep-alives and empty deltas do not count)."""
        head: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                if deadline is None:
                    chunk = await iterator.__anext__()
                else:
                    async with asyncio.timeout_at(deadline):
                        chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return head
            except TimeoutError:
                raise _first_token_timeout(model, timeout or 0.0) from None
            head.append(chunk)
            if _has_content(chunk):
                return head

    async def _astream(self, prompt: Any, params: dict[str, Any],
                       calls: list[Any]) -> AsyncIterator[Any]:
        registry = self.registry()
        timeout = params.get("first_token_timeout", self.policy.first_token_timeout)
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError(f"first_token_timeout must be a positive number of seconds, "
                             f"got {timeout!r}")
        tried: list[str] = []
        last: Exception | None = None

        async def close(stream: Any, model: str) -> None:
            self._end(model)
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            calls.extend(getattr(stream, "calls", ()))

        for model in self.order():
            merged = self._params(model, params)

            async def attempt(model: str = model, merged: dict[str, Any] = merged) -> Any:
                tried.append(model)
                started = self._begin(model)
                stream: Any = None
                try:
                    # NOTE: inside the try: a provider that cannot be built raises here
                    stream = registry.stream_model_async(model, prompt, **merged)
                    iterator = stream.__aiter__()
                    head = await self._first(iterator, timeout, model)
                except BaseException:
                    await close(stream, model)
                    raise
                return stream, iterator, head, started

            try:
                stream, iterator, head, started = await run_async(self.policy, attempt,
                                                                  malformed=True)
            except Exception as exc:
                last = exc
                self._give_up(model, exc)
                continue
            try:
                for chunk in head:
                    yield chunk
                # NOTE: committed to this model now: a later error propagates as is.
                if head:
                    async for chunk in iterator:
                        yield chunk
                self._succeeded(model, time.monotonic() - started)
                return
            finally:
                await close(stream, model)
        raise self._final(last, tried)

    def stream_sync(self, prompt: Any, **params: Any) -> Iterator[Any]:
        """Blocking twin of :meth:`astream` (``first_token_timeout`` applies to async only)."""
        return self._stream_sync(prompt, params, [])

    def _stream_sync(self, prompt: Any, params: dict[str, Any],
                     calls: list[Any]) -> Iterator[Any]:
        registry = self.registry()
        tried: list[str] = []
        last: Exception | None = None

        def close(stream: Any, model: str) -> None:
            self._end(model)
            sclose = getattr(stream, "close", None)
            if sclose is not None:
                sclose()
            calls.extend(getattr(stream, "calls", ()))

        for model in self.order():
            merged = self._params(model, params)

            def attempt(model: str = model, merged: dict[str, Any] = merged) -> Any:
                tried.append(model)
                started = self._begin(model)
                stream: Any = None
                try:
                    stream = registry.stream_model(model, prompt, **merged)
                    iterator = iter(stream)
                    head = [next(iterator, _END)]
                except BaseException:
                    close(stream, model)
                    raise
                return stream, iterator, head, started

            try:
                stream, iterator, head, started = run_sync(self.policy, attempt,
                                                           malformed=True)
            except Exception as exc:
                last = exc
                self._give_up(model, exc)
                continue
            try:
                if head[0] is not _END:
                    yield head[0]
                    yield from iterator
                self._succeeded(model, time.monotonic() - started)
                return
            finally:
                close(stream, model)
        raise self._final(last, tried)


class RouterStream:
    """What :meth:`ModelRouter.stream` returns: iterable once with ``async for`` or ``for``.

    Once it ends (or is closed), :attr:`calls` lists ``(provider/model, usage, error)``
    for every attempt and :attr:`usage` is their sum: what the stream cost, failed
    attempts included (a provider may bill the input of a stream that broke).
    """

    def __init__(self, router: StreamingMixin, prompt: Any, params: dict[str, Any]) -> None:
        self._router = router
        self._prompt = prompt
        self._params = params
        self._calls: list[Any] = []
        self._gen: Any = None

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._gen is None:
            self._gen = self._router._astream(self._prompt, self._params, self._calls)
        return self._gen

    def __iter__(self) -> Iterator[Any]:
        if self._gen is None:
            self._gen = self._router._stream_sync(self._prompt, self._params, self._calls)
        return self._gen

    async def aclose(self) -> None:
        """Stop early; the usage so far is recorded."""
        if self._gen is not None:
            await self._gen.aclose()

    def close(self) -> None:
        """Sync twin of :meth:`aclose`."""
        if self._gen is not None:
            self._gen.close()

    @property
    def calls(self) -> list[Any]:
        """``[(provider/model, usage, error)]`` of every attempt that ended."""
        return list(self._calls)

    @property
    def usage(self) -> Any:
        """The summed :class:`~ember.models.schemas.UsageStats` of every attempt, or None."""
        total = None
        for _key, usage, _error in self._calls:
            if usage is not None:
                total = usage if total is None else total + usage
        return total
