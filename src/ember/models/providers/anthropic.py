"""Anthropic Messages API (``POST {base}/v1/messages``).

Key ``ANTHROPIC_API_KEY`` as ``x-api-key``, ``anthropic-version: 2023-06-01``,
base URL ``ANTHROPIC_BASE_URL`` (default ``https://api.anthropic.com``).
System messages move to the top-level ``system``; ``max_tokens`` (required by
the API) defaults to 4096. OpenAI-shaped tools, tool calls and ``tool``
messages are translated to ``tools``/``tool_use``/``tool_result``. Streams are
named SSE events: ``message_start`` (input tokens), ``content_block_*``,
``ping``, ``message_delta`` (cumulative ``output_tokens``), ``message_stop``
and ``error``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ember._redact import redact
from ember.models import params as P
from ember.models.exceptions import ProviderAPIError
from ember.models.providers._convert import ToolIds, claude_content, merge_turns
from ember.models.providers._http import HTTPProvider, StreamParser
from ember.models.providers.base import Prompt
from ember.models.providers.openai import to_messages
from ember.models.schemas import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, UsageStats
from ember.models.vocab import FINISH_REASONS, classify_error

DEFAULT_MAX_TOKENS = 4096
API_VERSION = "2023-06-01"
FINISH = FINISH_REASONS["anthropic"]  # NOTE: the one table lives in ember.models.vocab
ERROR_TYPES = {
    "invalid_request_error": "bad_request", "not_found_error": "bad_request",
    "request_too_large": "bad_request", "authentication_error": "authentication",
    "permission_error": "authentication", "rate_limit_error": "rate_limit",
    "overloaded_error": "server", "api_error": "server", "timeout_error": "timeout",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def _json_arg(text: str | None) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": text}


def convert_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-shaped messages -> (system, Anthropic messages) that the API accepts.

    Images become ``image`` blocks, tool-call ids valid and unique, consecutive turns of
    one role one turn, empty text dropped (see :mod:`ember.models.providers._convert`).
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    ids = ToolIds()
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content))
            continue
        if role == "tool":
            result = claude_content(content)
            answered = ids.result(m.get("tool_call_id"))
            if answered is None:
                # NOTE: its call was trimmed from the history: a tool_result without its
                # tool_use is a 400, so the result goes as text
                text = result if isinstance(result, str) else _text_of(result)
                out.append({"role": "user", "content": [{"type": "text", "text": (
                    f"[result of tool call {m.get('tool_call_id')}]: {text}")}]})
                continue
            block = {"type": "tool_result", "tool_use_id": answered,
                     "content": result if isinstance(result, str | list) else str(result)}
            out.append({"role": "user", "content": [block]})
            continue
        if role == "assistant" and m.get("tool_calls"):
            blocks = _as_blocks(claude_content(content))
            for call in m["tool_calls"]:
                fn = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": ids.call(call.get("id")),
                               "name": fn.get("name"), "input": _json_arg(fn.get("arguments"))})
            out.append({"role": "assistant", "content": blocks})
            continue
        converted = claude_content(content)
        if not converted:
            continue  # NOTE: an empty turn is a 400 ("all messages must have non-empty content")
        out.append({"role": "assistant" if role == "assistant" else "user",
                    "content": converted})
    out = merge_turns(out, "content")
    _unanswered_calls_as_text(out)
    for m in out:  # NOTE: tool results lead a user turn (the API requires them first)
        if isinstance(m["content"], list) and m["role"] == "user":
            m["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return ("\n\n".join(system) if system else None), out


def _unanswered_calls_as_text(messages: list[dict[str, Any]]) -> None:
    """A ``tool_use`` the next user turn does not answer is a 400 at Claude: say it in
    words instead (the call happened; its result never came back)."""
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or not isinstance(m["content"], list):
            continue
        nxt = messages[i + 1]["content"] if i + 1 < len(messages) else None
        answered = {b.get("tool_use_id") for b in nxt if isinstance(b, dict)} \
            if isinstance(nxt, list) else set()
        blocks = []
        for b in m["content"]:
            if b.get("type") == "tool_use" and b.get("id") not in answered:
                args = orjson.dumps(b.get("input", {})).decode()
                b = {"type": "text", "text": f"[called tool {b.get('name')} with {args}; "
                     f"no result was given]"}
            blocks.append(b)
        m["content"] = blocks


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def convert_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI ``{"type": "function", "function": {...}}`` tools -> Anthropic tools."""
    out = []
    for tool in tools:
        fn = tool.get("function") if tool.get("type") == "function" else None
        if fn is None:
            out.append(tool)  # already Anthropic-shaped
            continue
        entry = {"name": fn["name"],
                 "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            entry["description"] = fn["description"]
        out.append(entry)
    return out


def convert_tool_choice(choice: Any) -> Any:
    """OpenAI ``tool_choice`` -> Anthropic's."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return choice


def _stop(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    body["stop_sequences"] = P.stop_list(value)


#: The tool that carries a structured answer (``response_format``): Claude is made to call
#: it, and its input comes back as the answer's text (never as a tool call).
STRUCTURED_TOOL = "ember_structured_output"


def _response_format(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        schema: Any = {"type": "object"}
        about = "the answer as one JSON object"
    elif kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise P.refuse("anthropic", "response_format", "json_schema needs an object "
                           "with a schema")
        schema = spec.get("schema") or {"type": "object"}
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise P.refuse("anthropic", "response_format", "the JSON schema's root must be "
                           "an object (as OpenAI requires)")
        about = spec.get("description") or f"the answer as {spec.get('name') or 'JSON'}"
    else:
        raise P.refuse("anthropic", "response_format", f"unknown type {kind!r}")
    # NOTE: tool forcing works on every Claude model (structured outputs need a beta)
    body["_structured"] = {"name": STRUCTURED_TOOL, "description": f"Give {about}.",
                           "input_schema": {"type": "object", **schema}}


def _tool_choice(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    choice = convert_tool_choice(value)
    if isinstance(choice, dict) and (body.get("tool_choice") or {}).get(
            "disable_parallel_tool_use"):
        choice = {**choice, "disable_parallel_tool_use": True}
    body["tool_choice"] = choice


def _parallel(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    if value is False:
        body["tool_choice"] = {**(body.get("tool_choice") or {"type": "auto"}),
                               "disable_parallel_tool_use": True}


def _reasoning(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    budget = P.THINKING_BUDGET.get(value)
    if budget is None:
        raise P.refuse("anthropic", "reasoning_effort", f"unknown effort {value!r}")
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _user(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    body["metadata"] = {**(body.get("metadata") or {}), "user_id": str(value)}


def _temperature(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    if not 0 <= value <= 1:
        raise P.refuse("anthropic", "temperature", "its range is 0 to 1")
    body["temperature"] = value


def _tools(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
    if value:
        body["tools"] = convert_tools(value)


#: OpenAI parameter -> Anthropic Messages API (see ember.models.params).
PARAMS: dict[str, P.Rule] = {
    "max_tokens": P.Rename("max_tokens"),
    "max_completion_tokens": P.Rename("max_tokens"),
    "stop": _stop,                                   # -> stop_sequences
    "response_format": _response_format,            # text only
    "tool_choice": _tool_choice,                     # auto/required/none/function -> its shape
    "parallel_tool_calls": _parallel,                # false -> disable_parallel_tool_use
    "seed": P.REFUSE,
    "logprobs": P.no_logprobs("anthropic"),
    "top_logprobs": P.REFUSE,
    "n": P.only_one_choice("anthropic"),
    "reasoning_effort": _reasoning,                  # -> thinking.budget_tokens
    "user": _user,                                   # -> metadata.user_id
    "temperature": _temperature,                     # 0..1 only
    "top_p": P.PASS,
    "presence_penalty": P.REFUSE,
    "frequency_penalty": P.REFUSE,
    "logit_bias": P.REFUSE,
    "tools": _tools,
}


class AnthropicProvider(HTTPProvider):
    """Anthropic's Messages API."""

    name: ClassVar[str] = "anthropic"
    vocabulary: ClassVar[str] = "anthropic"
    api_key_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    base_url_env: ClassVar[str] = "ANTHROPIC_BASE_URL"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    PARAMS: ClassVar[dict[str, P.Rule]] = PARAMS

    def headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json", "accept": "application/json",
            "x-api-key": self.api_key or "", "anthropic-version": API_VERSION,
        }

    def _path(self) -> str:
        return "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    def build_request(
        self, prompt: Prompt, model: str, params: dict[str, Any], stream: bool
    ) -> tuple[str, dict[str, Any]]:
        extra_system = params.pop("system", None)
        system, messages = convert_messages(to_messages(prompt))
        if extra_system:
            system = f"{extra_system}\n\n{system}" if system else extra_system
        body: dict[str, Any] = {"model": model, "messages": messages}
        if system:
            body["system"] = system
        P.apply(self.name, self.PARAMS, params, body, model)
        structured = body.pop("_structured", None)
        if structured is not None:
            if body.get("tools") or body.get("tool_choice") or body.get("thinking"):
                raise P.refuse("anthropic", "response_format", "a JSON format is translated "
                               "by forcing a tool, which Claude cannot combine with tools, "
                               "tool_choice or thinking (reasoning_effort)")
            body["tools"] = [structured]
            body["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and body["max_tokens"] <= thinking.get("budget_tokens", 0):
            # NOTE: the API wants max_tokens > budget_tokens; the budget comes on top.
            body["max_tokens"] += thinking["budget_tokens"]
        if stream:
            body["stream"] = True
        return self._path(), body

    def error_message(self, data: Any) -> str | None:
        return super().error_message(data)

    def parse_response(self, data: Any, model: str) -> ChatResponse:
        if data.get("type") == "error":
            raise self._error_event(data, model)
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in data["content"]:
            kind = block.get("type")
            if kind == "text":
                texts.append(block["text"])
            elif kind == "tool_use" and block.get("name") == STRUCTURED_TOOL:
                texts.append(orjson.dumps(block.get("input", {})).decode())
            elif kind == "tool_use":
                calls.append(ToolCall(block["id"], block["name"],
                                      orjson.dumps(block.get("input", {})).decode()))
        usage = data.get("usage") or {}
        counts = UsageCounts()
        counts.update(usage)
        reason = data.get("stop_reason")
        if reason == "tool_use" and not calls:
            reason = "end_turn"  # NOTE: the structured answer is text, not a tool call
        return ChatResponse(
            data="".join(texts),
            usage=counts.stats(estimated=not usage),
            model_id=data.get("model", model), finish_reason=FINISH.get(reason, reason),
            raw_finish_reason=reason, tool_calls=calls, raw=data,
        )

    def _error_event(self, data: Any, model: str) -> ProviderAPIError:
        err = data.get("error") or {}
        kind = err.get("type", "api_error")
        message = redact(err.get("message") or kind, [self.api_key])
        return ProviderAPIError(
            f"anthropic error ({kind}): {message}", error_type=ERROR_TYPES.get(kind, "server"),
            provider=self.name, model=model, provider_message=message,
            context={"provider_error_type": kind,
                     **classify_error(self.name, None, data, message)},
        )

    def stream_parser(self, model: str) -> StreamParser:
        return AnthropicStreamParser(self, model)


class UsageCounts:
    """Anthropic's usage fields, merged as they arrive (``message_start`` then
    ``message_delta``, both cumulative); ``input_tokens`` there excludes the cache."""

    __slots__ = ("cache_read", "cache_write", "input", "output")

    def __init__(self) -> None:
        self.input = self.cache_read = self.cache_write = self.output = 0

    def update(self, usage: dict[str, Any]) -> None:
        for name, attr in (("input_tokens", "input"), ("output_tokens", "output"),
                           ("cache_read_input_tokens", "cache_read"),
                           ("cache_creation_input_tokens", "cache_write")):
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, attr, value)

    def stats(self, estimated: bool = False) -> UsageStats:
        prompt = self.input + self.cache_read + self.cache_write
        return UsageStats(prompt, self.output, estimated=estimated,
                          cached_tokens=self.cache_read, cache_creation_tokens=self.cache_write)


class AnthropicStreamParser(StreamParser):
    """Named Messages-stream events -> chunks (usage when ``message_stop`` arrives)."""

    def __init__(self, provider: AnthropicProvider, model: str) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        self.counts = UsageCounts()
        self.reported = False
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.tool_json: dict[int, bool] = {}  # content block index -> any JSON text seen
        self.structured: set[int] = set()  # blocks of the structured-answer tool

    def feed(self, event: Any) -> list[StreamChunk]:
        name = event.event
        if name == "ping":
            return []
        data = orjson.loads(event.data)
        kind = data.get("type", name) if name == "message" else name
        if kind == "error":
            raise self.provider._error_event(data, self.model)
        if kind == "message_start":
            usage = data["message"].get("usage") or {}
            self.counts.update(usage)
            self.reported = bool(usage)
            # NOTE: the input count is known now: report it at once, so a stream the
            # client leaves early is billed its input (#20); message_stop reports the total
            return [StreamChunk(usage=self.counts.stats())] \
                if usage else []
        if kind == "content_block_start":
            block = data["content_block"]
            if block.get("type") == "tool_use" and block.get("name") == STRUCTURED_TOOL:
                self.structured.add(data["index"])
                self.tool_json[data["index"]] = False
                return []
            if block.get("type") == "tool_use":
                idx = self.tool_index.setdefault(data["index"], len(self.tool_index))
                self.tool_json[data["index"]] = False
                return [StreamChunk(tool_calls=[ToolCallDelta(idx, block.get("id"),
                                                              block.get("name"))])]
            if block.get("type") == "text" and block.get("text"):
                return [StreamChunk(text=block["text"])]
            return []
        if kind == "content_block_delta":
            delta = data["delta"]
            if delta.get("type") == "text_delta":
                return [StreamChunk(text=delta["text"])] if delta["text"] else []
            if delta.get("type") == "input_json_delta":
                text = delta.get("partial_json") or ""
                if not text:
                    return []
                self.tool_json[data["index"]] = True
                if data["index"] in self.structured:
                    return [StreamChunk(text=text)]
                idx = self.tool_index.get(data["index"], 0)
                return [StreamChunk(tool_calls=[ToolCallDelta(idx, arguments=text)])]
            return []
        if kind == "content_block_stop":
            # NOTE: a tool called with no arguments streams input {} as no JSON text (or
            # one empty partial_json): send "{}" so clients always get a JSON object.
            if self.tool_json.get(data.get("index")) is False:
                self.tool_json[data["index"]] = True
                if data["index"] in self.structured:
                    return [StreamChunk(text="{}")]
                idx = self.tool_index[data["index"]]
                return [StreamChunk(tool_calls=[ToolCallDelta(idx, arguments="{}")])]
            return []
        if kind == "message_delta":
            usage = data.get("usage") or {}
            # NOTE: cumulative counts; a field it leaves out (or sends as null) keeps the
            # message_start value: its input_tokens never replaces the cache-inclusive sum
            self.counts.update(usage)
            if "output_tokens" in usage:
                self.reported = True
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason == "tool_use" and self.structured and not self.tool_index:
                reason = "end_turn"
            if reason:
                return [StreamChunk(finish_reason=FINISH.get(reason, reason))]
            return []
        if kind == "message_stop":
            self.done = True
            return [StreamChunk(usage=self.counts.stats())]
        return []  # unknown future events

    def partial_usage(self) -> UsageStats | None:
        """What the provider reported before the stream broke."""
        if not self.reported:
            return None
        return self.counts.stats()
