"""``POST {prefix}/messages``: Anthropic's Messages API in front of any provider.

Pure translators: a Messages request becomes the gateway's internal chat request
(:class:`~ember.gateway._endpoint.ChatCall`, OpenAI's vocabulary) and the answer, or
its stream, becomes a Messages ``message`` or Anthropic's event sequence
(``message_start``, ``ping``, ``content_block_start/delta/stop``, ``message_delta``,
``message_stop``).  The key comes as ``x-api-key`` or ``Authorization: Bearer``;
``anthropic-version`` is accepted.  Errors are in Anthropic's shape.  What has no
faithful translation (document blocks, server tools, extended thinking, images in tool
results) is a 400 naming it.  ``POST {prefix}/messages/count_tokens`` counts locally.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from msgspec import Meta, Struct

from ember.gateway._endpoint import ChatCall, Endpoint, EndpointError
from ember.gateway.errors import new_id
from ember.gateway.messages_input import (
    chat_messages,
    chat_tools,
    output_config,
    system_text,
    tool_choice,
)
from ember.responses import JSONResponse, Response

PosInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]
Unit = Annotated[float, Meta(ge=0, le=1)]


class MessagesRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """The Messages API request (content blocks are checked by the translator)."""

    model: Annotated[str, Meta(min_length=1)]
    max_tokens: PosInt
    messages: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    output_config: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None  # NOTE: a caching hint: accepted, not sent
    speed: Literal["standard"] | None = None


class CountTokensRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """``messages/count_tokens``: the request without generation settings."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
               "content_filter": "refusal", "function_call": "tool_use"}
ERROR_TYPE = {400: "invalid_request_error", 401: "authentication_error",
              403: "permission_error", 404: "not_found_error", 413: "request_too_large",
              429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error",
              504: "timeout_error"}


def _args(text: str) -> Any:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(
        {"type": name, **data}) + b"\n\n"


class MessagesEndpoint(Endpoint):
    """``POST {prefix}/messages``."""

    name = "messages"
    schema = MessagesRequest

    def credentials(self, request: Any) -> str | None:
        key = request.headers.get("x-api-key")
        return key.strip() if key is not None else super().credentials(request)

    async def to_chat(self, body: dict[str, Any], spec: Any, key: str = "") -> ChatCall:
        messages = chat_messages(spec.messages)
        system = system_text(spec.system)
        if system:
            messages.insert(0, {"role": "system", "content": system})
        params: dict[str, Any] = {"max_completion_tokens": spec.max_tokens}
        extras: dict[str, Any] = {}
        for name in ("temperature", "top_p"):
            if getattr(spec, name) is not None:
                params[name] = getattr(spec, name)
        if spec.top_k is not None:
            extras["top_k"] = spec.top_k
        if spec.stop_sequences:
            params["stop"] = spec.stop_sequences
        if spec.tools:
            params["tools"] = chat_tools(spec.tools)
        if spec.tool_choice is not None:
            tool_choice(spec.tool_choice, params)
        user = (spec.metadata or {}).get("user_id")
        if user is not None:
            params["user"] = str(user)
        if spec.thinking is not None and spec.thinking.get("type") != "disabled":
            raise EndpointError("thinking: extended thinking has no faithful translation "
                                "(its blocks cannot be returned); leave it out", "thinking")
        output_config(spec.output_config or {}, params)
        if spec.service_tier == "standard_only":
            extras["service_tier"] = "default"
        return ChatCall(spec.model, messages, params, extras, bool(spec.stream), True)

    async def render(self, result: Any, call: ChatCall) -> dict[str, Any]:
        from ember.gateway._chat import _refusal

        content: list[dict[str, Any]] = []
        refusal = _refusal(result, 0, result.data, result.finish_reason)
        text = refusal if refusal and not result.data else result.data
        if text:
            content.append({"type": "text", "text": text})
        for c in result.tool_calls:
            content.append({"type": "tool_use", "id": c.id, "name": c.name,
                            "input": _args(c.arguments)})
        reason = "refusal" if refusal else STOP_REASON.get(
            result.finish_reason or "", "tool_use" if result.tool_calls else "end_turn")
        raw = result.raw if isinstance(result.raw, dict) else {}
        sequence = raw.get("stop_sequence") if isinstance(raw.get("stop_sequence"), str) \
            else None
        if sequence:
            reason = "stop_sequence"
        return {"id": f"msg_{new_id()}", "type": "message", "role": "assistant",
                "model": call.model, "content": content, "stop_reason": reason,
                "stop_sequence": sequence, "usage": _usage(result.usage)}

    async def frames(self, chunks: AsyncIterator[Any], call: ChatCall,
                     usage: Any) -> AsyncIterator[bytes]:
        yield _event("message_start", {"message": {
            "id": f"msg_{new_id()}", "type": "message", "role": "assistant",
            "model": call.model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})
        yield _event("ping", {})
        index = -1
        open_kind: Any = None  # "text" or ("tool", tool index)
        tools: dict[int, int] = {}  # tool call index -> block index
        finish = None
        refused = False
        async for chunk in chunks:
            text = chunk.text or getattr(chunk, "refusal", None) or ""
            if getattr(chunk, "refusal", None):
                refused = True
            if text:
                if open_kind != "text":
                    if open_kind is not None:
                        yield _event("content_block_stop", {"index": index})
                    index += 1
                    open_kind = "text"
                    yield _event("content_block_start", {"index": index, "content_block": {
                        "type": "text", "text": ""}})
                yield _event("content_block_delta", {"index": index, "delta": {
                    "type": "text_delta", "text": text}})
            for delta in chunk.tool_calls or ():
                block = tools.get(delta.index)
                if block is None:
                    if open_kind is not None:
                        yield _event("content_block_stop", {"index": index})
                    index += 1
                    block = tools[delta.index] = index
                    open_kind = ("tool", delta.index)
                    yield _event("content_block_start", {"index": index, "content_block": {
                        "type": "tool_use", "id": delta.id or f"toolu_{new_id()}",
                        "name": delta.name or "", "input": {}}})
                if delta.arguments:
                    yield _event("content_block_delta", {"index": block, "delta": {
                        "type": "input_json_delta", "partial_json": delta.arguments}})
            if chunk.finish_reason:
                finish = chunk.finish_reason
        if open_kind is not None:
            yield _event("content_block_stop", {"index": index})
        reason = "refusal" if refused else STOP_REASON.get(
            finish or "", "tool_use" if tools else "end_turn")
        yield _event("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": None},
                                       "usage": _usage(usage())})
        yield _event("message_stop", {})

    def error(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> Response:
        rid = headers.get("x-request-id")
        if rid:
            headers = {**headers, "request-id": rid}
        return JSONResponse(_error_body(status, body), status, headers=headers)

    def error_frame(self, status: int, body: dict[str, Any]) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(_error_body(status, body)) + b"\n\n"


def _error_body(status: int, body: dict[str, Any]) -> dict[str, Any]:
    error = body.get("error") or {}
    kind = ERROR_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if error.get("code") == "insufficient_quota":
        kind = "rate_limit_error"
    return {"type": "error", "error": {"type": kind, "message": str(error.get("message"))}}


def count_tokens(spec: Any) -> int:
    """The request's input tokens, counted locally (system and tools included)."""
    from ember.models import tokens

    total = tokens.count_prompt_tokens(chat_messages(spec.messages), spec.model)
    extra = (system_text(spec.system) or "") + (orjson.dumps(spec.tools).decode()
                                            if spec.tools else "")
    return total + (tokens.count_tokens(extra, spec.model) if extra else 0)


#: the message shape the translator checks, published: a role and text or content blocks
_TEXT_BLOCK = {"type": "object", "required": ["type", "text"],
               "properties": {"type": {"const": "text"}, "text": {"type": "string",
                                                                  "minLength": 1}}}
_PUBLISHED = {"messages": {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["role", "content"],
    "properties": {"role": {"enum": ["user", "assistant"]},
                   "content": {"anyOf": [{"type": "string", "minLength": 1},
                                         {"type": "array", "minItems": 1,
                                          "items": _TEXT_BLOCK}]}}}}}


def register(app: Any, prefix: str, gateway: Any) -> None:
    """``POST {prefix}/messages`` and ``{prefix}/messages/count_tokens`` on ``app``."""
    from ember.gateway._endpoint import reshape
    from ember.gateway.errors import error_response, openai_error, request_id

    endpoint = MessagesEndpoint()
    counter = MessagesEndpoint()
    counter.schema = CountTokensRequest

    async def messages(request: Any) -> Response:
        return await gateway.serve(request, endpoint)

    async def count(request: Any) -> Response:
        rid = request_id(request)
        try:
            key = await gateway.authenticate(request, rid, counter)
            if isinstance(key, Response):
                return reshape(counter, key)
            decoded = await gateway.decode(request, CountTokensRequest, rid)
            if isinstance(decoded, Response):
                return reshape(counter, decoded)
            _body, spec = decoded
            if gateway.target_for(spec.model) is None:
                return reshape(counter, openai_error(
                    404, f"The model `{spec.model}` does not exist.", code="model_not_found",
                    param="model", rid=rid))
            return JSONResponse({"input_tokens": count_tokens(spec)},
                                headers={"x-request-id": rid, "request-id": rid})
        except EndpointError as exc:
            return reshape(counter, openai_error(exc.status, exc.message, param=exc.param,
                                                 rid=rid))
        except Exception as exc:
            return reshape(counter, error_response(exc, rid, gateway.secrets()))

    from ember.gateway.schemas import ANTHROPIC_ERROR_SCHEMA, openapi_for

    app.add_route(f"{prefix}/messages", messages, ["POST"],
                  limits=gateway.limits, name="anthropic_messages",
                  openapi_extra=openapi_for(MessagesRequest, "A message, or with stream=true "
                                            "Anthropic's SSE event sequence",
                                            ANTHROPIC_ERROR_SCHEMA,
                                            properties=_PUBLISHED))
    app.add_route(f"{prefix}/messages/count_tokens", count, ["POST"], limits=gateway.limits,
                  name="anthropic_count_tokens",
                  openapi_extra=openapi_for(CountTokensRequest, '{"input_tokens": N}',
                                            ANTHROPIC_ERROR_SCHEMA))
