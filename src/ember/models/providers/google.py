"""Google Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``).

Key ``GOOGLE_API_KEY`` or ``GEMINI_API_KEY`` as ``x-goog-api-key``; base URL
``GOOGLE_BASE_URL`` (default ``https://generativelanguage.googleapis.com``,
API version ``v1beta`` appended unless the base already names one). System
messages become ``systemInstruction``; sampling parameters move into
``generationConfig``; usage comes from ``usageMetadata`` (thinking tokens are
billed as output). Finish reasons map to OpenAI's words (``STOP`` -> ``stop``,
``MAX_TOKENS`` -> ``length``, ``SAFETY``/``RECITATION``/... ->
``content_filter``); the raw word stays in ``raw_finish_reason``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson

from ember._redact import redact
from ember.models import params as P
from ember.models.exceptions import ProviderAPIError
from ember.models.providers._convert import gemini_part, gemini_schema, merge_turns
from ember.models.providers._http import HTTPProvider, StreamParser
from ember.models.providers.base import Prompt
from ember.models.providers.openai import to_messages
from ember.models.schemas import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, UsageStats
from ember.models.vocab import FINISH_REASONS, classify_error, finish_reason

FINISH = FINISH_REASONS["google"]  # NOTE: the one table lives in ember.models.vocab
GENERATION_KEYS = {
    "temperature": "temperature", "top_p": "topP", "top_k": "topK",
    "max_tokens": "maxOutputTokens", "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens", "stop": "stopSequences",
    "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty",
    "seed": "seed", "response_mime_type": "responseMimeType",
    "response_schema": "responseSchema",
}


def _config(name: str) -> Any:
    def rule(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
        if name == "stopSequences":
            value = P.stop_list(value)
        body.setdefault("generationConfig", {}).setdefault(name, value)

    return rule


def _response_format(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    config = body.setdefault("generationConfig", {})
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    else:
        raise P.refuse("google", "response_format", f"unknown type {kind!r}")


def _tool_choice(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    if isinstance(value, dict) and value.get("type") == "function":
        config = {"mode": "ANY", "allowedFunctionNames": [value["function"]["name"]]}
    elif value in ("auto", "required", "none"):
        config = {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[value]}
    else:
        raise P.refuse("google", "tool_choice", f"unknown choice {value!r}")
    body["toolConfig"] = {"functionCallingConfig": config}


def _reasoning(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    budget = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}.get(value)
    if budget is None:
        raise P.refuse("google", "reasoning_effort", f"unknown effort {value!r}")
    body.setdefault("generationConfig", {})["thinkingConfig"] = {"thinkingBudget": budget}


def _tools(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    if value:
        body["tools"] = convert_tools(value)


#: OpenAI parameter -> Gemini generateContent (see ember.models.params).
PARAMS: dict[str, P.Rule] = {
    "max_tokens": _config("maxOutputTokens"),
    "max_completion_tokens": _config("maxOutputTokens"),
    "stop": _config("stopSequences"),
    "response_format": _response_format,     # json_object/json_schema -> responseMimeType/Schema
    "tool_choice": _tool_choice,             # -> toolConfig.functionCallingConfig.mode
    "parallel_tool_calls": P.parallel_default_only("google"),
    "seed": _config("seed"),
    "logprobs": P.no_logprobs("google"),
    "top_logprobs": P.REFUSE,
    "n": P.only_one_choice("google"),        # NOTE: candidateCount exists; we parse one
    "reasoning_effort": _reasoning,          # -> thinkingConfig.thinkingBudget
    "user": P.DROP,                          # NOTE: no end-user field; it only feeds abuse
                                             # monitoring at OpenAI, never the answer
    "temperature": _config("temperature"),
    "top_p": _config("topP"),
    "presence_penalty": _config("presencePenalty"),
    "frequency_penalty": _config("frequencyPenalty"),
    "logit_bias": P.REFUSE,
    "tools": _tools,
}
STATUS_TYPES = {
    "RESOURCE_EXHAUSTED": "rate_limit", "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "authentication", "DEADLINE_EXCEEDED": "timeout",
    "UNAVAILABLE": "server", "INTERNAL": "server",
}
_VERSIONED = re.compile(r"/v\d+(alpha|beta)?\d*$")


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        return [{"text": str(content)}] if content is not None else []
    return [p for p in (gemini_part(part) for part in content) if p is not None]


def convert_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-shaped messages -> (system instruction, Gemini ``contents``)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.append("".join(p.get("text", "") for p in _text_parts(content)))
            continue
        if role == "tool":
            name = m.get("name") or call_names.get(m.get("tool_call_id", ""), "tool")
            try:
                result = orjson.loads(content) if isinstance(content, str) else content
            except orjson.JSONDecodeError:
                result = content
            if not isinstance(result, dict):
                result = {"result": result}
            part = {"functionResponse": {"name": name, "response": result}}
            contents.append({"role": "user", "parts": [part]})
            continue
        parts = _text_parts(content) if content else []
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            call_names[call.get("id", "")] = fn.get("name", "")
            try:
                args = orjson.loads(fn.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                args = {}
            parts.append({"functionCall": {"name": fn.get("name"), "args": args}})
        if not parts:
            continue  # NOTE: an empty turn is a 400 (contents.parts must not be empty)
        contents.append({"role": "model" if role in ("assistant", "model") else "user",
                         "parts": parts})
    # NOTE: turns alternate; function responses lead a user turn
    contents = merge_turns(contents, "parts")
    for c in contents:
        c["parts"].sort(key=lambda p: "functionResponse" not in p)
    return ("\n\n".join(system) if system else None), contents


def convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools -> one Gemini ``functionDeclarations`` tool."""
    declarations = []
    passthrough = []
    for tool in tools:
        fn = tool.get("function") if tool.get("type") == "function" else None
        if fn is None:
            passthrough.append(tool)
            continue
        decl = {"name": fn["name"], "description": fn.get("description", "")}
        if fn.get("parameters"):
            decl["parameters"] = gemini_schema(fn["parameters"],
                                               f"tools[{fn['name']}].parameters")
        declarations.append(decl)
    return ([{"functionDeclarations": declarations}] if declarations else []) + passthrough


def gemini_usage(meta: Any) -> UsageStats | None:
    """UsageStats from ``usageMetadata``."""
    if not isinstance(meta, dict):
        return None
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    completion = _int(meta.get("candidatesTokenCount")) + thoughts
    return UsageStats(prompt, completion, _int(meta.get("totalTokenCount")) or prompt + completion,
                      cached_tokens=_int(meta.get("cachedContentTokenCount")),
                      reasoning_tokens=thoughts,
                      audio_prompt_tokens=_modality(meta.get("promptTokensDetails"), "AUDIO"),
                      audio_completion_tokens=_modality(meta.get("candidatesTokensDetails"),
                                                        "AUDIO"))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _modality(details: Any, modality: str) -> int:
    """Tokens of one modality in a ``[{"modality", "tokenCount"}]`` list."""
    if not isinstance(details, list):
        return 0
    return sum(_int(d.get("tokenCount")) for d in details
               if isinstance(d, dict) and d.get("modality") == modality)


class GoogleProvider(HTTPProvider):
    """Google's Gemini API (Generative Language API)."""

    name: ClassVar[str] = "google"
    vocabulary: ClassVar[str] = "google"
    api_key_env: ClassVar[tuple[str, ...]] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    base_url_env: ClassVar[str] = "GOOGLE_BASE_URL"
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com"
    api_version: ClassVar[str] = "v1beta"
    PARAMS: ClassVar[dict[str, P.Rule]] = PARAMS

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "accept": "application/json",
                "x-goog-api-key": self.api_key or ""}

    def build_request(
        self, prompt: Prompt, model: str, params: dict[str, Any], stream: bool
    ) -> tuple[str, dict[str, Any]]:
        extra_system = params.pop("system", None)
        system, contents = convert_messages(to_messages(prompt))
        if extra_system:
            system = f"{extra_system}\n\n{system}" if system else extra_system
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config = dict(params.pop("generation_config", None) or params.pop(
            "generationConfig", None) or {})
        for key in list(params):
            if key in GENERATION_KEYS and key not in self.PARAMS:
                config[GENERATION_KEYS[key]] = params.pop(key)
        if config:
            body["generationConfig"] = config
        for snake, camel in (("safety_settings", "safetySettings"), ("tool_config", "toolConfig")):
            if snake in params:
                params[camel] = params.pop(snake)
        P.apply(self.name, self.PARAMS, params, body, model)
        prefix = "" if _VERSIONED.search(self.base_url) else f"/{self.api_version}"
        if stream:
            return f"{prefix}/models/{model}:streamGenerateContent?alt=sse", body
        return f"{prefix}/models/{model}:generateContent", body

    def embeddings_request(self, inputs: list[str], model: str,
                           params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        prefix = "" if _VERSIONED.search(self.base_url) else f"/{self.api_version}"
        extra = {}
        if params.get("dimensions") is not None:
            extra["outputDimensionality"] = params.pop("dimensions")
        params.pop("user", None)  # NOTE: no end-user field (see PARAMS)
        requests = [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}, **extra}
                    for t in inputs]
        return f"{prefix}/models/{model}:batchEmbedContents", {"requests": requests}

    def parse_embeddings(self, data: Any, model: str) -> Any:
        from ember.models.schemas import EmbeddingResponse

        if "error" in data:
            raise self._error(data, model)
        return EmbeddingResponse([list(map(float, e["values"])) for e in data["embeddings"]],
                                 UsageStats(estimated=True), model)

    def _error(self, data: Any, model: str) -> ProviderAPIError:
        err = data.get("error") or {}
        status = err.get("status", "")
        message = redact(err.get("message") or status or "error", [self.api_key])
        code = err.get("code")
        found = classify_error(self.name, code if isinstance(code, int) else None, data,
                               message)
        return ProviderAPIError(
            f"google error ({status or code}): {message}",
            error_type=found.pop("error_type", STATUS_TYPES.get(status, "server")),
            status_code=code, provider=self.name, model=model, provider_message=message,
            retry_after=found.pop("retry_after", None), context=found,
        )

    def parse_response(self, data: Any, model: str) -> ChatResponse:
        if "error" in data:
            raise self._error(data, model)
        text, calls, reason = self._candidate(data)
        if reason is None and not data.get("candidates"):
            reason = (data.get("promptFeedback") or {}).get("blockReason")
        return ChatResponse(
            data=text,
            usage=gemini_usage(data.get("usageMetadata")) or UsageStats(estimated=True),
            model_id=data.get("modelVersion", model),
            finish_reason=("tool_calls" if calls and reason == "STOP" else
                           finish_reason(self.name, reason)),
            raw_finish_reason=reason, tool_calls=calls, raw=data,
        )

    @staticmethod
    def _candidate(data: Any, offset: int = 0) -> tuple[str, list[ToolCall], str | None]:
        candidates = data.get("candidates") or []
        if not candidates:
            return "", [], None
        cand = candidates[0]
        texts: list[str] = []
        calls: list[ToolCall] = []
        for part in (cand.get("content") or {}).get("parts") or ():
            if "text" in part and not part.get("thought"):
                texts.append(part["text"])
            elif "functionCall" in part:
                fc = part["functionCall"]
                calls.append(ToolCall(fc.get("id") or f"call_{offset + len(calls)}", fc["name"],
                                      orjson.dumps(fc.get("args", {})).decode()))
        return "".join(texts), calls, cand.get("finishReason")

    def stream_parser(self, model: str) -> StreamParser:
        return GoogleStreamParser(self, model)


class GoogleStreamParser(StreamParser):
    """Each SSE ``data:`` is a whole GenerateContentResponse; a finishReason ends it."""

    def __init__(self, provider: GoogleProvider, model: str) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        self.usage: UsageStats | None = None
        self.calls = 0
        self.finished = False

    def feed(self, event: Any) -> list[StreamChunk]:
        data = orjson.loads(event.data)
        if "error" in data:
            raise self.provider._error(data, self.model)
        usage = gemini_usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage  # cumulative: the last one wins
        text, calls, reason = GoogleProvider._candidate(data, self.calls)
        if reason is None and not data.get("candidates") and data.get("promptFeedback"):
            reason = data["promptFeedback"].get("blockReason")
        chunks: list[StreamChunk] = []
        deltas = None
        if calls:
            deltas = [ToolCallDelta(self.calls + i, c.id, c.name, c.arguments)
                      for i, c in enumerate(calls)]
            self.calls += len(calls)
        finish = None
        if reason:
            finish = "tool_calls" if self.calls and reason == "STOP" else finish_reason(
                "google", reason)
        if text or deltas or finish:
            chunks.append(StreamChunk(text=text, finish_reason=finish, tool_calls=deltas))
        if reason:
            self.finished = True
        return chunks

    def at_eof(self) -> list[StreamChunk] | None:
        # NOTE: Gemini has no end marker: the body ends after a frame with a finishReason.
        if not self.finished:
            return None
        return [StreamChunk(usage=self.usage)] if self.usage else []

    def partial_usage(self) -> UsageStats | None:
        return self.usage
