"""``POST {prefix}/responses``: OpenAI's Responses API in front of any provider.

Pure translators: input items (messages, ``function_call``, ``function_call_output``)
and ``instructions`` become the gateway's internal chat request; the answer becomes a
``response`` object (``message`` / ``function_call`` output items) or the Responses
event stream (``response.created`` … ``response.completed``).  With ``store`` (OpenAI's
default) the conversation is kept in the gateway's response store
(:mod:`ember.gateway.response_store`) for ``previous_response_id`` and
``GET``/``DELETE {prefix}/responses/{id}``, visible only to the key that made it.
Built-in tools, files, background mode and other parts that cannot be faithful are a
400 naming them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from msgspec import Meta, Struct

from ember.gateway._endpoint import ChatCall, Endpoint, EndpointError, shared_extras
from ember.gateway.errors import new_id
from ember.gateway.response_store import StoreUnavailable
from ember.gateway.responses_input import (
    chat_tools,
    input_messages,
    output_messages,
    text_format,
    tool_choice,
)

PosInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]


class ResponsesRequest(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """The Responses API request (items are checked by the translator)."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: PosInt | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    reasoning: dict[str, Any] | None = None
    user: str | None = None
    truncation: Literal["disabled"] | None = None
    include: Annotated[list[str], Meta(max_length=0)] | None = None
    background: Literal[False] | None = None


#: Fields that are ours to consume; the rest of a request go to ChatCall.extras.
_OWN = frozenset(ResponsesRequest.__struct_fields__)
_REFUSED = {"conversation": "conversations are not stored by this gateway",
            "prompt": "stored prompts are not available through this gateway",
            "max_tool_calls": "built-in tool loops do not run in this gateway",
            "top_logprobs": "log probabilities are not returned by the Responses endpoint here"}
_STATUS = {"length": ("incomplete", "max_output_tokens"),
           "content_filter": ("incomplete", "content_filter")}


def _usage(usage: Any) -> dict[str, Any]:
    p = usage.prompt_tokens if usage is not None else 0
    c = usage.completion_tokens if usage is not None else 0
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + c}


class Conversation:
    """What a Responses call carries besides the chat request."""

    __slots__ = ("history", "key", "request", "response_id", "store")

    def __init__(self, key: str, request: dict[str, Any], history: list[dict[str, Any]],
                 store: bool) -> None:
        self.key = key
        self.request = request
        self.history = history
        self.store = store
        self.response_id = f"resp_{new_id()}"


class ResponsesEndpoint(Endpoint):
    """``POST {prefix}/responses``."""

    name = "responses"
    schema = ResponsesRequest

    def __init__(self, store: Any) -> None:
        self.store = store

    async def to_chat(self, body: dict[str, Any], spec: Any, key: str = "") -> ChatCall:
        for name, reason in _REFUSED.items():
            if body.get(name) is not None:
                raise EndpointError(f"{name}: {reason}", name)
        history: list[dict[str, Any]] = []
        if spec.previous_response_id is not None:
            stored = await self.load(key, spec.previous_response_id)
            if stored is None:
                raise EndpointError(f"Previous response with id '{spec.previous_response_id}' "
                                    "not found.", "previous_response_id", 404,
                                    "previous_response_not_found")
            history = stored["history"]
        turn = input_messages(spec.input)
        if not turn and not history:
            raise EndpointError("input: nothing to answer", "input")
        messages = list(history) + turn
        if spec.instructions:
            messages.insert(0, {"role": "system", "content": spec.instructions})
        params: dict[str, Any] = {}
        extras = shared_extras(body, _OWN)
        if spec.max_output_tokens is not None:
            params["max_completion_tokens"] = spec.max_output_tokens
        for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
            if getattr(spec, name) is not None:
                params[name] = getattr(spec, name)
        if spec.tools:
            params["tools"] = chat_tools(spec.tools)
        if spec.tool_choice is not None:
            params["tool_choice"] = tool_choice(spec.tool_choice)
        if spec.text:
            text_format(spec.text, params, extras)
        reasoning = spec.reasoning or {}
        if reasoning.get("summary") not in (None, "auto") and reasoning.get("summary"):
            raise EndpointError("reasoning.summary: reasoning summaries are not returned by "
                                "this gateway", "reasoning.summary")
        if reasoning.get("effort") is not None:
            params["reasoning_effort"] = reasoning["effort"]
        include_usage = True
        state = Conversation(key, _echo(spec), list(history) + turn,
                             spec.store is not False)
        return ChatCall(spec.model, messages, params, extras, bool(spec.stream),
                        include_usage, state)

    # -- the store -------------------------------------------------------------------------------
    async def load(self, key: str, rid: str) -> dict[str, Any] | None:
        if not _ID.match(rid):
            return None  # NOTE: never ours (and never a way into another key's entries)
        try:
            raw = await self.store.get(_slot(key, rid))
        except StoreUnavailable:
            raise EndpointError("The response store is unavailable; retry shortly.", None, 503,
                                "store_unavailable") from None
        return orjson.loads(raw) if raw is not None else None

    async def save(self, call: ChatCall, response: dict[str, Any]) -> None:
        state: Conversation = call.state
        if not state.store:
            return
        history = state.history + output_messages(response["output"])
        try:
            await self.store.put(_slot(state.key, response["id"]), orjson.dumps(
                {"response": response, "history": history}))
        except StoreUnavailable:
            response["store"] = False  # NOTE: fail open: served, but not continuable

    # -- rendering ---------------------------------------------------------------------------------
    def _response(self, call: ChatCall, status: str, output: list[dict[str, Any]],
                  usage: Any, reason: str | None = None) -> dict[str, Any]:
        state: Conversation = call.state
        return {"id": state.response_id, "object": "response", "created_at": int(time.time()),
                "status": status, "model": call.model, "output": output,
                "usage": _usage(usage) if usage is not False else None,
                "error": None, "incomplete_details": {"reason": reason} if reason else None,
                **state.request, "store": state.store}

    async def render(self, result: Any, call: ChatCall) -> dict[str, Any]:
        from ember.gateway._chat import _refusal

        output: list[dict[str, Any]] = []
        refusal = _refusal(result, 0, result.data, result.finish_reason)
        if result.data or refusal:
            part = ({"type": "refusal", "refusal": refusal} if refusal and not result.data
                    else {"type": "output_text", "text": result.data, "annotations": []})
            output.append(_message_item(f"msg_{new_id()}", [part], "completed"))
        for c in result.tool_calls:
            output.append(_call_item(f"fc_{new_id()}", c.id, c.name, c.arguments or "{}",
                                     "completed"))
        status, reason = _STATUS.get(result.finish_reason or "", ("completed", None))
        response = self._response(call, status, output, result.usage, reason)
        await self.save(call, response)
        return response

    async def frames(self, chunks: AsyncIterator[Any], call: ChatCall,
                     usage: Any) -> AsyncIterator[bytes]:
        seq = 0

        def event(name: str, data: dict[str, Any]) -> bytes:
            nonlocal seq
            seq += 1
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(
                {"type": name, "sequence_number": seq - 1, **data}) + b"\n\n"

        start = self._response(call, "in_progress", [], False)
        yield event("response.created", {"response": start})
        yield event("response.in_progress", {"response": start})
        output: list[dict[str, Any]] = []
        text_item: dict[str, Any] | None = None
        kind = ""
        calls: dict[int, dict[str, Any]] = {}
        finish = None

        def close_text() -> list[bytes]:
            nonlocal text_item
            if text_item is None:
                return []
            index = output.index(text_item)
            part = text_item["content"][0]
            item, text_item = text_item, None
            item["status"] = "completed"
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            done = (event("response.refusal.done", {**where, "refusal": part["refusal"]})
                    if part["type"] == "refusal" else
                    event("response.output_text.done", {**where, "text": part["text"],
                                                        "logprobs": []}))
            return [done, event("response.content_part.done", {**where, "part": part}),
                    event("response.output_item.done", {"output_index": index, "item": item})]

        async for chunk in chunks:
            refusal = getattr(chunk, "refusal", None)
            piece, piece_kind = (refusal, "refusal") if refusal else (chunk.text, "output_text")
            if piece:
                if text_item is None or kind != piece_kind:
                    for frame in close_text():
                        yield frame
                    kind = piece_kind
                    part: dict[str, Any] = ({"type": "refusal", "refusal": ""} if refusal else
                                            {"type": "output_text", "text": "",
                                             "annotations": []})
                    text_item = _message_item(f"msg_{new_id()}", [], "in_progress")
                    output.append(text_item)
                    index = len(output) - 1
                    yield event("response.output_item.added", {"output_index": index,
                                                               "item": text_item})
                    text_item["content"].append(part)
                    yield event("response.content_part.added", {
                        "item_id": text_item["id"], "output_index": index,
                        "content_index": 0, "part": part})
                index = output.index(text_item)
                part = text_item["content"][0]
                where = {"item_id": text_item["id"], "output_index": index, "content_index": 0}
                if refusal:
                    part["refusal"] += piece
                    yield event("response.refusal.delta", {**where, "delta": piece})
                else:
                    part["text"] += piece
                    yield event("response.output_text.delta", {**where, "delta": piece,
                                                               "logprobs": []})
            for delta in chunk.tool_calls or ():
                item = calls.get(delta.index)
                if item is None:
                    for frame in close_text():
                        yield frame
                    item = calls[delta.index] = _call_item(
                        f"fc_{new_id()}", delta.id or f"call_{new_id()}", delta.name or "", "",
                        "in_progress")
                    output.append(item)
                    yield event("response.output_item.added", {
                        "output_index": len(output) - 1, "item": item})
                if delta.arguments:
                    item["arguments"] += delta.arguments
                    yield event("response.function_call_arguments.delta", {
                        "item_id": item["id"], "output_index": output.index(item),
                        "delta": delta.arguments})
            if chunk.finish_reason:
                finish = chunk.finish_reason
        for frame in close_text():
            yield frame
        for item in calls.values():
            index = output.index(item)
            item["arguments"] = item["arguments"] or "{}"
            item["status"] = "completed"
            yield event("response.function_call_arguments.done", {
                "item_id": item["id"], "output_index": index, "name": item["name"],
                "arguments": item["arguments"]})
            yield event("response.output_item.done", {"output_index": index, "item": item})
        status, reason = _STATUS.get(finish or "", ("completed", None))
        response = self._response(call, status, output, usage(), reason)
        await self.save(call, response)
        yield event("response.completed" if status == "completed" else "response.incomplete",
                    {"response": response})

    def error_frame(self, status: int, body: dict[str, Any]) -> bytes:
        error = body.get("error") or {}
        return b"event: error\ndata: " + orjson.dumps({
            "type": "error", "code": error.get("code"), "message": error.get("message"),
            "param": error.get("param"), "error": error}) + b"\n\n"


_ID = re.compile(r"resp_[0-9a-f]{24}\Z")


def _slot(key: str, response_id: str) -> str:
    """The store key of a response: the gateway key's name, hashed, and the id."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] + ":" + response_id


def _message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str,
               status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def _echo(spec: Any) -> dict[str, Any]:
    """The request settings a response object repeats."""
    text = spec.text or {"format": {"type": "text"}}
    return {"instructions": spec.instructions, "tools": spec.tools or [],
            "tool_choice": spec.tool_choice or "auto",
            "parallel_tool_calls": spec.parallel_tool_calls is not False,
            "temperature": spec.temperature, "top_p": spec.top_p,
            "max_output_tokens": spec.max_output_tokens,
            "previous_response_id": spec.previous_response_id,
            "metadata": spec.metadata or {}, "text": text, "truncation": "disabled",
            "reasoning": {"effort": (spec.reasoning or {}).get("effort"), "summary": None},
            "user": spec.user}


#: what the translator needs, published: something to answer (text or message items)
_PUBLISHED = {"input": {"anyOf": [
    {"type": "string", "minLength": 1},
    {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["role", "content"],
        "properties": {"role": {"enum": ["user", "assistant", "system", "developer"]},
                       "content": {"type": "string", "minLength": 1}}}}]}}


def register(app: Any, prefix: str, gateway: Any) -> None:
    """``POST {prefix}/responses`` and ``GET/DELETE {prefix}/responses/{id}`` on ``app``."""
    from ember.gateway.errors import error_response, openai_error, request_id
    from ember.gateway.response_store import make_store
    from ember.responses import JSONResponse, Response

    endpoint = ResponsesEndpoint(make_store(gateway.response_store))

    async def close_store() -> None:
        close = getattr(endpoint.store, "aclose", None)
        if close is not None:
            await close()

    app.on_shutdown(close_store)

    async def create(request: Any) -> Response:
        return await gateway.serve(request, endpoint)

    async def stored(request: Any, response_id: str) -> Response:
        rid = request_id(request)
        try:
            key = await gateway.authenticate(request, rid, endpoint)
            if isinstance(key, Response):
                return key
            found = await endpoint.load(key, response_id)
            if found is None:
                return openai_error(404, f"Response with id '{response_id}' not found.",
                                    param="response_id", code="not_found", rid=rid)
            if request.method == "DELETE":
                try:
                    await endpoint.store.delete(_slot(key, response_id))
                except StoreUnavailable:
                    raise EndpointError("The response store is unavailable; retry shortly.",
                                        None, 503, "store_unavailable") from None
                return JSONResponse({"id": response_id, "object": "response.deleted",
                                     "deleted": True}, headers={"x-request-id": rid})
            return JSONResponse(found["response"], headers={"x-request-id": rid})
        except EndpointError as exc:
            headers = {"retry-after": "1"} if exc.status == 503 else None
            return openai_error(exc.status, exc.message, "invalid_request_error"
                                if exc.status < 500 else "server_error", exc.code, exc.param,
                                headers, rid)
        except Exception as exc:
            return error_response(exc, rid, gateway.secrets())

    from ember.gateway.schemas import STORED_RESPONSE_OPENAPI, openapi_for

    app.add_route(f"{prefix}/responses", create, ["POST"],
                  limits=gateway.limits, name="openai_responses",
                  openapi_extra=openapi_for(ResponsesRequest, "A response object, or with "
                                            "stream=true the Responses SSE events",
                                            properties=_PUBLISHED, required=("input",)))
    app.add_route(f"{prefix}/responses/{{response_id}}", stored, ["GET", "DELETE"],
                  name="openai_response", openapi_extra=STORED_RESPONSE_OPENAPI)
