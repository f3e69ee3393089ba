"""An OpenAI-compatible API on an Ember app: ``app.mount_openai(models, prefix="/v1")``.

Serves ``POST {prefix}/chat/completions`` (plain and streaming, tools, usage) and
``GET {prefix}/models`` / ``{prefix}/models/{id}`` in OpenAI's wire format, so the
official OpenAI SDK works against the app with ``base_url="http://host:port/v1"``.
``models`` is a model id, a list of ids (the request's ``model`` must be one of
them) or a ``ModelRouter`` (any requested name is routed).  ``api_keys`` makes
``Authorization: Bearer <key>`` mandatory (constant-time comparison).  Provider
errors keep their meaning: rate limits are 429, upstream timeouts 504, other
upstream failures 502, bad requests 400 — always in OpenAI's error shape.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ember.responses import JSONResponse, Response

_PASS_THROUGH = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
                 "presence_penalty", "frequency_penalty", "seed", "tools", "tool_choice",
                 "response_format", "user", "n", "logit_bias", "parallel_tool_calls",
                 "reasoning_effort")
_STATUS_FOR = {"rate_limit": 429, "authentication": 502, "timeout": 504, "server": 502,
               "bad_request": 400, "connection": 502}


def openai_error(status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    """An error in OpenAI's shape."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": param,
                                   "code": code}}, status, headers=headers)


def _usage_dict(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else (lambda k, d=0: getattr(usage, k, d))
    prompt = int(get("prompt_tokens", 0) or 0)
    completion = int(get("completion_tokens", 0) or 0)
    total = int(get("total_tokens", 0) or 0)
    if total <= 0:
        total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _tool_call_dict(call: Any) -> dict[str, Any]:
    if isinstance(call, dict):
        return call
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}


class _Backend:
    """Where completions come from: the model system or a ModelRouter."""

    def __init__(self, target: Any) -> None:
        self.router = None
        if isinstance(target, str):
            self.ids = [target]
        elif isinstance(target, (list, tuple)) and all(isinstance(m, str) for m in target):
            if not target:
                raise ValueError("mount_openai needs at least one model id")
            self.ids = list(target)
        elif hasattr(target, "complete") or hasattr(target, "acomplete"):
            self.router = target
            self.ids = [getattr(m, "model", m) if not isinstance(m, str) else m
                        for m in getattr(target, "models", [])] or ["router"]
        else:
            raise ValueError("mount_openai(models=...) takes a model id, a list of ids or a "
                             f"ModelRouter, got {target!r}")

    def allowed(self, model: str) -> bool:
        return self.router is not None or model in self.ids

    async def complete(self, model: str, messages: list[dict[str, Any]],
                       params: dict[str, Any]) -> Any:
        if self.router is not None:
            fn = getattr(self.router, "acomplete", None) or self.router.complete
            return await fn(messages, **params)
        from ember.api import models

        return await models.async_(model, messages, **params)

    def stream(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if self.router is not None:
            fn = getattr(self.router, "astream", None) or self.router.stream
            return fn(messages, **params)
        from ember.api import models

        return models.astream(model, messages, **params)


def _validate(body: Any) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool, bool] | \
        Response:
    if not isinstance(body, dict):
        return openai_error(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' must be a non-empty array", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (
                "system", "developer", "user", "assistant", "tool"):
            return openai_error(400, f"messages[{i}] must be an object with a valid 'role'",
                                param=f"messages[{i}]")
        if "content" not in m and not m.get("tool_calls"):
            return openai_error(400, f"messages[{i}] is missing 'content'",
                                param=f"messages[{i}].content")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return openai_error(400, "'stream' must be a boolean", param="stream")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    params = {k: body[k] for k in _PASS_THROUGH if k in body and body[k] is not None}
    if "max_completion_tokens" in params and "max_tokens" not in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    else:
        params.pop("max_completion_tokens", None)
    temperature = params.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        return openai_error(400, "'temperature' must be a number between 0 and 2",
                            param="temperature")
    return model, messages, params, stream, include_usage


def _provider_error(exc: Exception) -> Response:
    context = getattr(exc, "context", {}) or {}
    kind = context.get("error_type", "server")
    status = _STATUS_FOR.get(kind, 502)
    headers = {}
    if kind == "rate_limit" and context.get("retry_after") is not None:
        headers["retry-after"] = str(max(1, int(float(context["retry_after"]))))
    type_ = {"rate_limit": "rate_limit_error", "bad_request": "invalid_request_error",
             "timeout": "timeout_error"}.get(kind, "upstream_error")
    return openai_error(status, str(exc), type_, code=kind, headers=headers)


def mount_openai(app: Any, models: Any, prefix: str = "/v1",
                 api_keys: list[str] | None = None) -> None:
    """Register the OpenAI-compatible routes on ``app`` (see the module docstring)."""
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"prefix must start with '/' and not end with '/', got {prefix!r}")
    if isinstance(api_keys, str):
        raise ValueError("api_keys must be a list of keys, not a string")
    backend = _Backend(models)
    keys = [k.encode() for k in api_keys or []]

    def unauthorized(request: Any) -> Response | None:
        if not keys:
            return None
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        ok = False
        given = token.strip().encode("utf-8", "surrogateescape")
        for key in keys:
            ok |= hmac.compare_digest(given, key)
        if scheme.lower() == "bearer" and ok:
            return None
        return openai_error(401, "Incorrect API key provided", code="invalid_api_key",
                            headers={"www-authenticate": 'Bearer realm="openai"'})

    async def chat_completions(request: Any) -> Response:
        denied = unauthorized(request)
        if denied is not None:
            return denied
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return openai_error(400, f"the request body is not valid JSON: {exc}")
        checked = _validate(body)
        if isinstance(checked, Response):
            return checked
        model, messages, params, stream, include_usage = checked
        if not backend.allowed(model):
            return openai_error(404, f"The model `{model}` does not exist or you do not have "
                                "access to it.", code="model_not_found", param="model")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if stream:
            return await _stream_response(backend, model, messages, params, include_usage,
                                          completion_id, created)
        try:
            result = await backend.complete(model, messages, params)
        except Exception as exc:
            return _map_exception(exc)
        text = getattr(result, "data", None)
        if text is None:
            text = getattr(result, "text", "")
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        tool_calls = [_tool_call_dict(c) for c in getattr(result, "tool_calls", None) or []]
        if tool_calls:
            message["tool_calls"] = tool_calls
            if not text:
                message["content"] = None
        finish = getattr(result, "finish_reason", None) or (
            "tool_calls" if tool_calls else "stop")
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created,
            "model": getattr(result, "model_id", None) or model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": _usage_dict(getattr(result, "usage", None)) or {
                "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        })

    async def list_models(request: Any) -> Response:
        denied = unauthorized(request)
        if denied is not None:
            return denied
        return JSONResponse({"object": "list", "data": [_model_card(m) for m in backend.ids]})

    async def get_model(request: Any, model_id: str) -> Response:
        denied = unauthorized(request)
        if denied is not None:
            return denied
        if model_id not in backend.ids:
            return openai_error(404, f"The model `{model_id}` does not exist",
                                code="model_not_found")
        return JSONResponse(_model_card(model_id))

    app.add_route(f"{prefix}/chat/completions", chat_completions, ["POST"],
                  name="openai_chat_completions")
    app.add_route(f"{prefix}/models", list_models, ["GET"], name="openai_models")
    app.add_route(f"{prefix}/models/{{model_id:path}}", get_model, ["GET"],
                  name="openai_model")


def _model_card(model_id: str) -> dict[str, Any]:
    owner = model_id.split("/", 1)[0] if "/" in model_id else "ember"
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


def _map_exception(exc: Exception) -> Response:
    from ember.models.exceptions import ModelProviderError, ProviderAPIError

    if isinstance(exc, ProviderAPIError):
        return _provider_error(exc)
    if isinstance(exc, ModelProviderError):
        return openai_error(500, f"the server's model configuration is incomplete: {exc}",
                            "server_error", code="model_configuration")
    raise exc


async def _stream_response(backend: _Backend, model: str, messages: list[dict[str, Any]],
                           params: dict[str, Any], include_usage: bool, completion_id: str,
                           created: int) -> Response:
    from ember.sse import SSEResponse

    # NOTE: pull the first chunk before answering, so that a failure to start (no key,
    # bad key, rate limit) is a proper HTTP error instead of a broken 200 stream or a 500;
    # a provider that cannot even be built raises from backend.stream() itself.
    try:
        stream = backend.stream(model, messages, params)
        iterator = stream.__aiter__()
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        return _map_exception(exc)
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None}

    def frame(delta: dict[str, Any], finish: str | None) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}) + b"\n\n"

    async def frames() -> AsyncIterator[bytes]:
        usage = None
        finish = None
        saw_tools = False
        yield frame({"role": "assistant", "content": "", "refusal": None}, None)
        chunk = first
        try:
            while chunk is not None:
                text = getattr(chunk, "text", "") or ""
                calls = getattr(chunk, "tool_calls", None) or []
                delta: dict[str, Any] = {}
                if text:
                    delta["content"] = text
                if calls:
                    saw_tools = True
                    delta["tool_calls"] = [_delta_call(c) for c in calls]
                if delta:
                    yield frame(delta, None)
                finish = getattr(chunk, "finish_reason", None) or finish
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except Exception as exc:
            error = {"error": {"message": str(exc), "type": "upstream_error",
                               "code": getattr(exc, "context", {}).get("error_type")}}
            yield b"data: " + orjson.dumps(error) + b"\n\n"
            return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # the stream already ended or failed; its error was sent
                    pass
        usage = usage or getattr(stream, "usage", None)
        yield frame({}, finish if finish in ("stop", "length", "tool_calls", "content_filter")
                    else ("tool_calls" if saw_tools else "stop"))
        if include_usage:
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": _usage_dict(
                usage) or {"prompt_tokens": 0, "completion_tokens": 0,
                           "total_tokens": 0}}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return SSEResponse(frames(), ping_interval=None)


def _delta_call(call: Any) -> dict[str, Any]:
    if isinstance(call, dict):
        return call
    out: dict[str, Any] = {"index": getattr(call, "index", 0)}
    if getattr(call, "id", None):
        out["id"] = call.id
        out["type"] = "function"
    fn: dict[str, Any] = {}
    if getattr(call, "name", None):
        fn["name"] = call.name
    fn["arguments"] = getattr(call, "arguments", "") or ""
    out["function"] = fn
    return out
