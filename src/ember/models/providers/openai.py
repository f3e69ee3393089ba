"""OpenAI Chat Completions (``POST {base}/chat/completions``).

Base URL ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``), key
``OPENAI_API_KEY`` sent as ``Authorization: Bearer``. Streaming asks for
``stream_options.include_usage`` so the last frame (``choices: []``) carries
usage, then ``data: [DONE]``. Tool-call arguments arrive as fragments keyed
by ``index``; :class:`OpenAIStreamParser` re-emits them as
:class:`~ember.models.schemas.ToolCallDelta`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ember.models import params as P
from ember.models.exceptions import ProviderAPIError
from ember.models.providers._http import HTTPProvider, StreamParser
from ember.models.providers.base import Prompt
from ember.models.schemas import (
    ChatResponse,
    Choice,
    EmbeddingResponse,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    UsageStats,
)
from ember.models.vocab import classify_error, finish_reason

#: OpenAI's own vocabulary: every parameter goes through unchanged (``max_completion_tokens``
#: stays ``max_completion_tokens``: reasoning models refuse ``max_tokens``).
PARAMS: dict[str, P.Rule] = {name: P.PASS for name in P.OPENAI_PARAMS}


def to_messages(prompt: Prompt, system: str | None = None) -> list[dict[str, Any]]:
    """Chat messages (OpenAI shape) for a string or a list of messages/strings."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if isinstance(prompt, str):
        messages.append({"role": "user", "content": prompt})
        return messages
    items = list(prompt)
    if any(isinstance(i, bytes | bytearray) for i in items):
        # NOTE: ["What's in this image?", image_bytes] is one multimodal user message.
        messages.append({"role": "user", "content": [_part(i) for i in items]})
        return messages
    for item in items:
        if isinstance(item, str):
            messages.append({"role": "user", "content": item})
        elif isinstance(item, dict):
            messages.append(item)
        else:
            raise TypeError(f"prompt items must be str or message dicts, got {type(item).__name__}")
    return messages


def _part(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": "text", "text": item}
    if isinstance(item, bytes | bytearray):
        import base64

        kind = "png" if item[:4] == b"\x89PNG" else "jpeg" if item[:2] == b"\xff\xd8" else "png"
        data = base64.b64encode(bytes(item)).decode()
        return {"type": "image_url", "image_url": {"url": f"data:image/{kind};base64,{data}"}}
    if isinstance(item, dict):
        return item
    raise TypeError(f"prompt items must be str, bytes or dicts, got {type(item).__name__}")


def openai_usage(data: Any) -> UsageStats | None:
    """UsageStats from an OpenAI ``usage`` object (None when absent)."""
    if not isinstance(data, dict):
        return None
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    into = data.get("prompt_tokens_details")
    into = into if isinstance(into, dict) else {}
    out = data.get("completion_tokens_details")
    out = out if isinstance(out, dict) else {}
    # NOTE: DeepSeek (OpenAI-compatible) reports cache hits as prompt_cache_hit_tokens
    cached = _int(into.get("cached_tokens")) or _int(data.get("prompt_cache_hit_tokens"))
    return UsageStats(prompt, completion,
                      _int(data.get("total_tokens")) or prompt + completion,
                      cached_tokens=cached, reasoning_tokens=_int(out.get("reasoning_tokens")),
                      audio_prompt_tokens=_int(into.get("audio_tokens")),
                      audio_completion_tokens=_int(out.get("audio_tokens")))


def _int(value: Any) -> int:
    """A token count from a provider's JSON (null, absent or garbage: 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class OpenAIProvider(HTTPProvider):
    """OpenAI's Chat Completions API (also the base of OpenAI-compatible servers)."""

    name: ClassVar[str] = "openai"
    vocabulary: ClassVar[str] = "openai"
    api_key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    base_url_env: ClassVar[str] = "OPENAI_BASE_URL"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    chat_path: ClassVar[str] = "/chat/completions"
    embeddings_path: ClassVar[str] = "/embeddings"
    PARAMS: ClassVar[dict[str, P.Rule]] = PARAMS

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def build_request(
        self, prompt: Prompt, model: str, params: dict[str, Any], stream: bool
    ) -> tuple[str, dict[str, Any]]:
        system = params.pop("system", None)
        body: dict[str, Any] = {"model": model, "messages": to_messages(prompt, system)}
        P.apply(self.name, self.PARAMS, params, body, model)
        if stream:
            body["stream"] = True
            options = dict(body.get("stream_options") or {})
            options.setdefault("include_usage", True)
            body["stream_options"] = options
        return self.chat_path, body

    def parse_response(self, data: Any, model: str) -> ChatResponse:
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            message = self.error_message(data)
            found = classify_error(self.vocabulary, None, data, message)
            found.pop("retry_after", None)
            return_type = found.pop("error_type", "server")
            raise ProviderAPIError(
                f"{self.name} returned an error body: {message}",
                error_type=return_type, status_code=200, provider=self.name, model=model,
                provider_message=message, context=found,
            )
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        parsed = [_choice(c, self.vocabulary) for c in choices]
        first = parsed[0]
        return ChatResponse(
            data=first.data,
            usage=openai_usage(data.get("usage")) or UsageStats(estimated=True),
            model_id=data.get("model", model),
            finish_reason=finish_reason(self.vocabulary, first.finish_reason),
            raw_finish_reason=first.finish_reason,
            tool_calls=first.tool_calls,
            raw=data,
            choices=parsed if len(parsed) > 1 else None,
            logprobs=first.logprobs,
        )

    def embeddings_request(self, inputs: list[str], model: str,
                           params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        for key in ("dimensions", "user"):
            if params.get(key) is not None:
                body[key] = params.pop(key)
        return self.embeddings_path, body

    def parse_embeddings(self, data: Any, model: str) -> EmbeddingResponse:
        rows = sorted(data["data"], key=lambda r: r.get("index", 0))
        usage = data.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        return EmbeddingResponse([list(map(float, r["embedding"])) for r in rows],
                                 UsageStats(prompt, 0, estimated=not usage),
                                 data.get("model", model))

    def stream_parser(self, model: str) -> StreamParser:
        return OpenAIStreamParser(self, model)


def _choice(choice: dict[str, Any], vocabulary: str = "openai") -> Choice:
    message = choice["message"]
    calls = [
        ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
        for c in message.get("tool_calls") or ()
    ]
    return Choice(int(choice.get("index", 0)), message.get("content") or "", calls,
                  finish_reason(vocabulary, choice.get("finish_reason")), choice.get("logprobs"))


class OpenAIStreamParser(StreamParser):
    """``chat.completion.chunk`` frames -> chunks; ``[DONE]`` ends the stream.

    A body that ends without ``[DONE]`` after a ``finish_reason`` (llama.cpp-style
    servers) is complete, as the official SDK treats it; without a finish reason
    it is truncated.
    """

    def __init__(self, provider: OpenAIProvider, model: str) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        self.finished = False

    def feed(self, event: Any) -> list[StreamChunk]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        frame = orjson.loads(data)
        if "error" in frame and "choices" not in frame:
            message = self.provider.error_message(frame)
            err = frame["error"] if isinstance(frame["error"], dict) else {}
            kind = str(err.get("type") or err.get("code") or "")
            error_type = "rate_limit" if "rate" in kind else "server"
            found = classify_error(self.provider.vocabulary, None, frame, message)
            found.pop("retry_after", None)
            if found.get("code") == "context_length_exceeded":
                error_type = "bad_request"
            raise ProviderAPIError(
                f"{self.provider.name} stream error: {message}",
                error_type=found.pop("error_type", error_type), provider=self.provider.name,
                model=self.model, provider_message=message, context=found,
            )
        chunks: list[StreamChunk] = []
        for choice in frame.get("choices") or ():
            index = int(choice.get("index") or 0)
            delta = choice.get("delta") or {}
            deltas = None
            if delta.get("tool_calls"):
                deltas = [
                    ToolCallDelta(
                        index=int(tc.get("index", 0)), id=tc.get("id"),
                        name=(tc.get("function") or {}).get("name"),
                        arguments=(tc.get("function") or {}).get("arguments") or "",
                    )
                    for tc in delta["tool_calls"]
                ]
            text = delta.get("content") or ""
            finish = finish_reason(self.provider.vocabulary, choice.get("finish_reason"))
            logprobs = choice.get("logprobs")
            refusal = delta.get("refusal") or None
            if finish:
                self.finished = True
            if text or deltas or finish or logprobs or refusal:
                chunks.append(StreamChunk(text=text, finish_reason=finish, tool_calls=deltas,
                                          index=index, logprobs=logprobs, refusal=refusal))
        usage = openai_usage(frame.get("usage"))
        if usage is not None:
            chunks.append(StreamChunk(usage=usage))
        return chunks

    def at_eof(self) -> list[StreamChunk] | None:
        return [] if self.finished else None
