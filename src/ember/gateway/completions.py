"""``POST {prefix}/completions``: OpenAI's legacy Completions API over chat models.

A pure translator: the prompt becomes one user message of the internal chat request,
the answer's text the completion (``text_completion`` objects, or their SSE chunks).
``max_tokens`` defaults to 16, as OpenAI's does.  ``echo`` prepends the prompt.  What a
chat model cannot do faithfully — token-id prompts, several prompts in one request,
``suffix``, ``logprobs``, ``best_of`` above 1 — is a 400 naming it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from msgspec import Meta, Struct

from ember.gateway._endpoint import ChatCall, Endpoint, EndpointError, shared_extras
from ember.gateway.errors import new_id
from ember.gateway.schemas import StreamOptions

_FINISH = ("stop", "length", "content_filter")


class CompletionRequest(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """The legacy Completions request."""

    model: Annotated[str, Meta(min_length=1)]
    prompt: str | list[Any]
    max_tokens: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    echo: bool | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    best_of: Annotated[int, Meta(ge=1, le=20)] | None = None
    suffix: str | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[int, Meta(ge=-100, le=100)]] | None = None
    seed: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    user: str | None = None


_OWN = frozenset(CompletionRequest.__struct_fields__)


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            raise EndpointError("prompt: several prompts in one request are not supported "
                                "here; send one request per prompt", "prompt")
        return str(prompt[0])
    raise EndpointError("prompt: token-id prompts cannot be translated for chat models; "
                        "send text", "prompt")


def _usage(usage: Any) -> dict[str, int]:
    p = usage.prompt_tokens if usage is not None else 0
    c = usage.completion_tokens if usage is not None else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class CompletionsEndpoint(Endpoint):
    """``POST {prefix}/completions``."""

    name = "completions"
    schema = CompletionRequest

    async def to_chat(self, body: dict[str, Any], spec: Any, key: str = "") -> ChatCall:
        prompt = _prompt(spec.prompt)
        if spec.suffix:
            raise EndpointError("suffix: chat models do not insert text", "suffix")
        if spec.logprobs:
            raise EndpointError("logprobs: token log probabilities of a completion are not "
                                "translated", "logprobs")
        if spec.best_of not in (None, 1):
            raise EndpointError("best_of: the server-side choice among several answers is "
                                "not available", "best_of")
        if spec.max_tokens == 0:
            raise EndpointError("max_tokens: 0 (prompt only) is not supported", "max_tokens")
        params: dict[str, Any] = {"max_tokens": spec.max_tokens or 16}
        for name in ("temperature", "top_p", "n", "stop", "presence_penalty",
                     "frequency_penalty", "logit_bias", "seed", "user"):
            if getattr(spec, name) is not None:
                params[name] = getattr(spec, name)
        extras = shared_extras(body, _OWN)
        return ChatCall(spec.model, [{"role": "user", "content": prompt}], params, extras,
                        bool(spec.stream),
                        bool(spec.stream_options and spec.stream_options.include_usage),
                        prompt if spec.echo else "")

    async def render(self, result: Any, call: ChatCall) -> dict[str, Any]:
        items = result.choices or [result]
        choices = [{"text": call.state + c.data, "index": getattr(c, "index", i),
                    "logprobs": None, "finish_reason": c.finish_reason
                    if c.finish_reason in _FINISH else "stop"}
                   for i, c in enumerate(items)]
        return {"id": f"cmpl-{new_id()}", "object": "text_completion",
                "created": int(time.time()), "model": call.model, "choices": choices,
                "usage": _usage(result.usage), "system_fingerprint": None}

    async def frames(self, chunks: AsyncIterator[Any], call: ChatCall,
                     usage: Any) -> AsyncIterator[bytes]:
        base = {"id": f"cmpl-{new_id()}", "object": "text_completion",
                "created": int(time.time()), "model": call.model, "system_fingerprint": None}

        def frame(index: int, text: str, finish: str | None) -> bytes:
            return b"data: " + orjson.dumps({**base, "choices": [
                {"text": text, "index": index, "logprobs": None,
                 "finish_reason": finish}]}) + b"\n\n"

        seen: dict[int, str | None] = {}
        async for chunk in chunks:
            if chunk.index not in seen:
                seen[chunk.index] = None
                if call.state:
                    yield frame(chunk.index, call.state, None)
            if chunk.text:
                yield frame(chunk.index, chunk.text, None)
            if chunk.finish_reason:
                seen[chunk.index] = chunk.finish_reason
        for index, finish in sorted(seen.items()):
            yield frame(index, "", finish if finish in _FINISH else "stop")
        if call.include_usage:
            yield b"data: " + orjson.dumps({**base, "choices": [],
                                            "usage": _usage(usage())}) + b"\n\n"
        yield b"data: [DONE]\n\n"


#: what the translator refuses, published (one prompt per request, no best_of above 1)
_PUBLISHED = {
    "prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                               "minItems": 1, "maxItems": 1}]},
    "best_of": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1}, {"type": "null"}],
                "default": None},
}


def register(app: Any, prefix: str, gateway: Any) -> None:
    """``POST {prefix}/completions`` on ``app``."""
    endpoint = CompletionsEndpoint()

    async def completions(request: Any) -> Any:
        return await gateway.serve(request, endpoint)

    from ember.gateway.schemas import openapi_for

    app.add_route(f"{prefix}/completions", completions, ["POST"],
                  limits=gateway.limits, name="openai_completions",
                  openapi_extra=openapi_for(CompletionRequest, "A text_completion object, or "
                                            "with stream=true its SSE chunks",
                                            properties=_PUBLISHED))
