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

from ember.gateway._endpoint import ChatCall, Endpoint
from ember.gateway.errors import classify, error_response, new_id
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.gateway")

_FINISH = ("stop", "length", "tool_calls", "content_filter", "function_call")


def _usage(usage: Any, with_cost: bool = True) -> dict[str, Any]:
    if usage is None:
        from ember.models.schemas import UsageStats

        return _usage(UsageStats(), with_cost=False)
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        # NOTE: (issue 22) every billed class, in OpenAI's shape
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens,
                                  "audio_tokens": usage.audio_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens,
                                      "audio_tokens": usage.audio_completion_tokens},
    }
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


# -- the shared runners (every endpoint) -------------------------------------------------------
async def _complete(target: Any, endpoint: Any, call: Any, rid: str, key: str, settle: Any,
                    secrets: Any, headers: dict[str, str] | None = None) -> Response:
    """One completed call, rendered by ``endpoint``; errors in OpenAI's shape."""
    try:
        result = await target.complete(call.messages, call.params)
    except Exception as exc:
        # NOTE: a failed call bills nothing; its error gives the spend row its status
        await settle(key, call.model, [(call.model, None, exc)])
        return error_response(exc, rid, secrets())
    await settle(key, call.model, [(result.model_key or call.model, result.usage, None)])
    body = await endpoint.render(result, call)
    return JSONResponse(body, headers={"x-request-id": rid, **(headers or {})})


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


async def _stream(target: Any, endpoint: Any, call: Any, rid: str, key: str, settle: Any,
                  secrets: Any, release: Any, headers: dict[str, str] | None = None,
                  ) -> Response:
    """A streamed call: the first chunk is pulled before answering (so that a failure to
    start is a proper HTTP error), then ``endpoint.frames`` encodes the chunks."""
    stream = target.stream(call.messages, call.params)
    iterator = stream.__aiter__()
    pull = type(iterator).__anext__

    def billed() -> list[Any]:
        """What the stream's attempts used (carried on the stream object once it ended)."""
        return list(getattr(stream, "calls", ()))

    try:
        first = await pull(iterator)
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        await _close(stream, iterator, rid)
        await settle(key, call.model, billed())
        return error_response(exc, rid, secrets())

    closed = False
    sent: list[str] = []  # what reached the client, charged if it leaves early (#20)
    finished = False

    async def cleanup() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            await _close(stream, iterator, rid)
            await settle(key, call.model, billed(), None if finished else "".join(sent))
        finally:
            release()

    async def chunks() -> AsyncIterator[Any]:
        chunk = first
        while chunk is not None:
            if chunk.text:
                sent.append(chunk.text)
            if chunk.tool_calls:
                sent.extend(c.arguments or "" for c in chunk.tool_calls)
            yield chunk
            try:
                chunk = await pull(iterator)
            except StopAsyncIteration:
                chunk = None

    def usage() -> Any:
        # NOTE: called once the chunks are exhausted: the stream has ended, its usage is final
        total = None
        for _model, used, _error in billed():
            if used is not None:
                total = used if total is None else total + used
        return total

    async def frames() -> AsyncIterator[bytes]:
        nonlocal finished
        try:
            async for piece in endpoint.frames(chunks(), call, usage):
                yield piece
            finished = True
        except Exception as exc:
            status, body, _headers = classify(exc, rid, secrets())
            yield endpoint.error_frame(status, body)
        finally:
            await cleanup()

    return _sse_class()(_Body(frames(), cleanup), ping_interval=None,
                        headers={"x-request-id": rid, **(headers or {})})


# -- OpenAI chat.completion / chat.completion.chunk (>>> the chunk encoder) --------------------
REFUSED = "The model declined to answer."


def _refusal(result: Any, index: int, text: str, finish: Any) -> str | None:
    """The assistant's refusal: the provider's (OpenAI ``message.refusal``), or Claude's
    ``stop_reason: refusal`` (mapped to ``content_filter``) made one."""
    refusal = getattr(result, "refusal", None)
    if refusal is None and isinstance(result.raw, dict):
        choices = result.raw.get("choices")
        if isinstance(choices, list) and len(choices) > index and isinstance(
                choices[index], dict):
            refusal = (choices[index].get("message") or {}).get("refusal")
        elif result.raw.get("stop_reason") == "refusal":
            refusal = REFUSED  # NOTE: any text before it stays the content
    if refusal is None and finish == "content_filter":
        refusal = REFUSED
    return refusal if isinstance(refusal, str) and refusal else None


#: Request fields that are the provider's business (mapped by its PARAMS table).
FORWARD = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
           "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
           "seed", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
           "reasoning_effort")
_FORWARD = frozenset(FORWARD)
#: Fields the gateway itself consumes.
_OWN = frozenset(("model", "messages", "stream", "stream_options"))


class ChatEndpoint(Endpoint):
    """``POST {prefix}/chat/completions``: OpenAI in, OpenAI out."""

    name = "chat"

    def __init__(self) -> None:
        from ember.gateway.schemas import ChatCompletionRequest

        self.schema = ChatCompletionRequest

    async def to_chat(self, body: dict[str, Any], spec: Any, key: str = "") -> ChatCall:
        params: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for k, v in body.items():  # PERF: one pass (the gateway's hot path)
            if v is None or k in _OWN:
                continue
            if k in _FORWARD:
                params[k] = v
            else:
                extras[k] = v
        options = spec.stream_options
        return ChatCall(spec.model, body["messages"], params, extras, bool(spec.stream),
                        bool(options and options.include_usage), None)

    async def render(self, result: Any, call: Any) -> dict[str, Any]:
        items = result.choices or [result]
        choices = []
        for i, c in enumerate(items):
            index = getattr(c, "index", i)
            finish = _finish(c.finish_reason, bool(c.tool_calls))
            message = _message(c.data, c.tool_calls)
            refusal = _refusal(result, index, c.data, c.finish_reason)
            if refusal is not None:
                message["refusal"] = refusal
                if c.data == refusal or not c.data:
                    message["content"] = None
            choices.append({"index": index, "message": message, "logprobs": c.logprobs,
                            "finish_reason": finish})
        return {"id": f"chatcmpl-{new_id()}", "object": "chat.completion",
                "created": int(time.time()), "model": call.model, "choices": choices,
                "usage": _usage(result.usage), "system_fingerprint": None}

    async def frames(self, chunks: AsyncIterator[Any], call: Any,
                     usage: Any) -> AsyncIterator[bytes]:
        from ember._chunks import DONE, ChunkEncoder

        encoder = ChunkEncoder(f"chatcmpl-{new_id()}", call.model, int(time.time()))
        frame = encoder.choice

        finishes: dict[int, str | None] = {}
        tools: set[int] = set()
        refused: set[int] = set()
        yield frame(0, {"role": "assistant", "content": "", "refusal": None}, None)
        opened = {0}
        async for chunk in chunks:
            index = chunk.index
            if index not in opened:
                opened.add(index)
                yield frame(index, {"role": "assistant", "content": "", "refusal": None}, None)
            delta: dict[str, Any] = {}
            if chunk.text:
                delta["content"] = chunk.text
            refusal = getattr(chunk, "refusal", None)
            if refusal:
                refused.add(index)
                delta["refusal"] = refusal
            if chunk.tool_calls:
                tools.add(index)
                delta["tool_calls"] = [_delta_call(c) for c in chunk.tool_calls]
            if delta or chunk.logprobs:
                yield frame(index, delta, None, chunk.logprobs)
            if chunk.finish_reason:
                finishes[index] = chunk.finish_reason
        for index in sorted(opened):
            if finishes.get(index) == "content_filter" and index not in refused:
                yield frame(index, {"refusal": REFUSED}, None)
            yield frame(index, {}, _finish(finishes.get(index), index in tools))
        if call.include_usage:
            yield encoder.usage(_usage(usage()))
        yield DONE

    def error_frame(self, status: int, body: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(body) + b"\n\n"
# -- <<< the chunk encoder ---------------------------------------------------------------------


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


async def _close(stream: Any, iterator: Any, rid: str) -> None:
    """End the upstream stream (idempotent) so that its usage is final."""
    close = getattr(stream, "aclose", None) or getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # the stream already ended or failed
            logger.debug("gateway %s: closing the upstream stream: %r", rid, exc)
