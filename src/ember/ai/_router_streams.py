"""The streaming half of :class:`~ember.ai.router.ModelRouter` and :class:`RouterStream`.

A stream falls back to the next model only before its first token: an attempt opens
the stream and waits for the first chunk with content (``first_token_timeout``
bounds that wait; keep-alives, pings and empty deltas do not count), under the
router's :class:`~ember.models.retry.RetryPolicy` (``run_async`` / ``run_sync``).
The async driver bounds the wait itself; the sync one hands the limit to the model
stream (:class:`~ember.models.streams.ModelStream`), whose HTTP providers stop a read
that blocks past it. Every attempt's usage is kept on the :class:`RouterStream`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ember.models.retry import (
    check_first_token_timeout,
    first_token_timeout_error,
    has_content,
    run_async,
    run_sync,
)


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
                raise first_token_timeout_error(model, timeout or 0.0) from None
            head.append(chunk)
            if has_content(chunk):
                return head

    def _first_token_limit(self, params: dict[str, Any]) -> float | None:
        """The call's ``first_token_timeout``, else the policy's (ValueError for garbage)."""
        return check_first_token_timeout(
            params.get("first_token_timeout", self.policy.first_token_timeout))

    async def _astream(self, prompt: Any, params: dict[str, Any],
                       calls: list[Any]) -> AsyncIterator[Any]:
        registry = self.registry()
        timeout = self._first_token_limit(params)
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
        """Blocking twin of :meth:`astream` (the same ``first_token_timeout`` and fallback)."""
        return self._stream_sync(prompt, params, [])

    def _stream_sync(self, prompt: Any, params: dict[str, Any],
                     calls: list[Any]) -> Iterator[Any]:
        registry = self.registry()
        timeout = self._first_token_limit(params)
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
                    stream = registry.stream_model(model, prompt, **merged,
                                                   first_token_timeout=timeout)
                    iterator = iter(stream)
                    head: list[Any] = []
                    for chunk in iterator:  # NOTE: up to the first token (or the end)
                        head.append(chunk)
                        if has_content(chunk):
                            break
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
                yield from head
                if head:
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
