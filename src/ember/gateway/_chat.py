"""Chat completion bodies of the gateway: one answer, or the SSE stream of chunks.

Builds OpenAI's ``chat.completion`` / ``chat.completion.chunk`` objects from the
model system's results (every choice when ``n > 1``, usage with ``cost``), charges
the key's usage afterwards, and turns failures into OpenAI-shaped errors
(:mod:`ember.gateway.errors`).  Used by :mod:`ember.gateway.openai`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ember.gateway.errors import error_frame, error_response, new_id
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.gateway")

_FINISH = ("stop", "length", "tool_calls", "content_filter", "function_call")
_ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _usage(usage: Any, with_cost: bool = True) -> dict[str, Any]:
    if usage is None:
        return dict(_ZERO_USAGE)
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens,
                           "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    if with_cost:
        # NOTE: not in OpenAI's schema; the SDK keeps unknown fields (usage.model_extra)
        out["cost"] = round(usage.cost, 10)
    return out


def _tool_call(call: Any) -> dict[str, Any]:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def _message(text: str, calls: list[Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = [_tool_call(c) for c in calls]
        if not text:
            message["content"] = None
    return message


def _finish(reason: Any, calls: bool) -> str:
    return reason if reason in _FINISH else ("tool_calls" if calls else "stop")


def _delta_call(call: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.index}
    if call.id:
        out["id"] = call.id
        out["type"] = "function"
    fn: dict[str, Any] = {"arguments": call.arguments or ""}
    if call.name:
        fn["name"] = call.name
    out["function"] = fn
    return out


async def _complete(target: Any, model: str, messages: list[Any], params: dict[str, Any],
                    rid: str, key: str, settle: Any, secrets: Any) -> Response:
    from ember.models.registry import usage_sink

    sink: list[Any] = []
    token = usage_sink.set(sink)
    try:
        result = await target.complete(messages, params)
    except Exception as exc:
        usage_sink.reset(token)
        await settle(key, model, sink)
        return error_response(exc, rid, secrets())
    usage_sink.reset(token)
    await settle(key, model, sink)
    if result.choices:
        choices = [{"index": c.index, "message": _message(c.data, c.tool_calls),
                    "logprobs": c.logprobs, "finish_reason": _finish(c.finish_reason,
                                                                     bool(c.tool_calls))}
                   for c in result.choices]
    else:
        choices = [{"index": 0, "message": _message(result.data, result.tool_calls),
                    "logprobs": result.logprobs,
                    "finish_reason": _finish(result.finish_reason, bool(result.tool_calls))}]
    return JSONResponse({
        "id": f"chatcmpl-{new_id()}", "object": "chat.completion",
        "created": int(time.time()), "model": model, "choices": choices,
        "usage": _usage(result.usage), "system_fingerprint": None,
    }, headers={"x-request-id": rid})


class _GatewayStream:
    """Marker base: the stream releases its in-flight slot when it ends."""


_SSE: Any = None


def _sse_class() -> Any:
    """``SSEResponse`` + the marker, made once (ember.sse loads on the first stream)."""
    global _SSE
    if _SSE is None:
        from ember.sse import SSEResponse

        _SSE = type("GatewayEventStream", (SSEResponse, _GatewayStream), {})
    return _SSE


async def _stream(target: Any, model: str, messages: list[Any], params: dict[str, Any],
                  include_usage: bool, rid: str, key: str, settle: Any, secrets: Any,
                  release: Any) -> Response:
    from ember.models.registry import usage_sink
    sink: list[Any] = []

    async def pull(iterator: Any) -> Any:
        # NOTE: the sink is set around each step, not once: each step may run in
        # another task (and so another context) than the handler.
        token = usage_sink.set(sink)
        try:
            return await iterator.__anext__()
        finally:
            usage_sink.reset(token)

    token = usage_sink.set(sink)
    try:
        stream = target.stream(messages, params)
        iterator = stream.__aiter__()
    finally:
        usage_sink.reset(token)
    # NOTE: pull the first chunk before answering, so that a failure to start (bad key,
    # refused parameter, rate limit) is a proper HTTP error instead of a broken 200 stream.
    try:
        first = await pull(iterator)
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await settle(key, model, sink)
        return error_response(exc, rid, secrets())
    base = {"id": f"chatcmpl-{new_id()}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": None}
    dumps = orjson.dumps

    def frame(index: int, delta: dict[str, Any], finish: str | None,
              logprobs: Any = None) -> bytes:
        return b"data: " + dumps({**base, "choices": [
            {"index": index, "delta": delta, "logprobs": logprobs,
             "finish_reason": finish}]}) + b"\n\n"

    closed = False
    sent: list[str] = []  # what reached the client, charged if it leaves early (#20)
    finished = False

    async def cleanup() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # the stream already ended or failed
                    logger.debug("gateway %s: closing the upstream stream: %r", rid, exc)
            await settle(key, model, sink, None if finished else "".join(sent))
        finally:
            release()

    async def frames() -> AsyncIterator[bytes]:
        nonlocal finished
        finishes: dict[int, str | None] = {}
        tools: set[int] = set()
        chunk = first
        try:
            yield frame(0, {"role": "assistant", "content": "", "refusal": None}, None)
            opened = {0}
            while chunk is not None:
                index = chunk.index
                if index not in opened:
                    opened.add(index)
                    yield frame(index, {"role": "assistant", "content": "", "refusal": None},
                                None)
                delta: dict[str, Any] = {}
                if chunk.text:
                    delta["content"] = chunk.text
                    sent.append(chunk.text)
                if chunk.tool_calls:
                    sent.extend(c.arguments or "" for c in chunk.tool_calls)
                    tools.add(index)
                    delta["tool_calls"] = [_delta_call(c) for c in chunk.tool_calls]
                if delta or chunk.logprobs:
                    yield frame(index, delta, None, chunk.logprobs)
                if chunk.finish_reason:
                    finishes[index] = chunk.finish_reason
                try:
                    chunk = await pull(iterator)
                except StopAsyncIteration:
                    chunk = None
            for index in sorted(opened):
                yield frame(index, {}, _finish(finishes.get(index), index in tools))
            usage = None
            for _model, used, _error in sink:
                if used is not None:
                    usage = used if usage is None else usage + used
            if include_usage:
                yield b"data: " + dumps({**base, "choices": [], "usage": _usage(usage)}) + \
                    b"\n\n"
            finished = True
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            yield error_frame(exc, rid, secrets())
        finally:
            await cleanup()

    return _sse_class()(_Body(frames(), cleanup), ping_interval=None,
                        headers={"x-request-id": rid})


class _Body:
    """The frames generator, closed even when it never started (client gone at once)."""

    __slots__ = ("cleanup", "gen")

    def __init__(self, gen: Any, cleanup: Any) -> None:
        self.gen = gen
        self.cleanup = cleanup

    def __aiter__(self) -> _Body:
        return self

    def __anext__(self) -> Any:
        return self.gen.__anext__()

    async def aclose(self) -> None:
        try:
            await self.gen.aclose()
        finally:
            await self.cleanup()
