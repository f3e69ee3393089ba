"""Response schemas: :class:`UsageStats`, :class:`ChatResponse`, :class:`StreamChunk`.

``UsageStats`` supports both attribute access (``usage.total_tokens``) and the
seed's mapping access (``usage["cost"]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost", "estimated",
               "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
               "audio_prompt_tokens", "audio_completion_tokens")


@dataclass(slots=True)
class UsageStats:
    """Token usage and cost (USD) of one call, or a sum of calls.

    ``total_tokens`` defaults to ``prompt_tokens + completion_tokens``.
    ``estimated`` is True when the counts were computed locally rather than
    reported by the provider (e.g. a stream that broke before its usage frame).

    Every billed class, as OpenAI counts them: ``prompt_tokens`` *includes*
    ``cached_tokens`` (input read from the provider's prompt cache),
    ``cache_creation_tokens`` (input written to it) and ``audio_prompt_tokens``;
    ``completion_tokens`` includes ``reasoning_tokens`` and ``audio_completion_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = -1
    cost: float = 0.0
    estimated: bool = False
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    audio_prompt_tokens: int = 0
    audio_completion_tokens: int = 0

    def __post_init__(self) -> None:
        if self.total_tokens < 0:
            self.total_tokens = self.prompt_tokens + self.completion_tokens

    @property
    def cost_usd(self) -> float:
        """Alias of ``cost``."""
        return self.cost

    def __getitem__(self, key: str) -> Any:
        if key in _USAGE_KEYS or key == "cost_usd":
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in _USAGE_KEYS

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access with a default."""
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> tuple[str, ...]:
        """The mapping keys, so ``dict(usage)`` works."""
        return _USAGE_KEYS

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (OpenAI ``usage`` shape plus ``cost`` and ``estimated``)."""
        return {k: getattr(self, k) for k in _USAGE_KEYS}

    def __add__(self, other: UsageStats) -> UsageStats:
        return UsageStats(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cost + other.cost,
            self.estimated or other.estimated,
            self.cached_tokens + other.cached_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.audio_prompt_tokens + other.audio_prompt_tokens,
            self.audio_completion_tokens + other.audio_completion_tokens,
        )

    def classes(self) -> dict[str, int]:
        """The token classes other than plain input/output (for details and pricing)."""
        return {"cached_tokens": self.cached_tokens,
                "cache_creation_tokens": self.cache_creation_tokens,
                "reasoning_tokens": self.reasoning_tokens,
                "audio_prompt_tokens": self.audio_prompt_tokens,
                "audio_completion_tokens": self.audio_completion_tokens}


@dataclass(slots=True)
class ToolCall:
    """A function call requested by the model; ``arguments`` is the JSON text."""

    id: str
    name: str
    arguments: str = "{}"

    @property
    def args(self) -> Any:
        """``arguments`` parsed from JSON."""
        import orjson

        return orjson.loads(self.arguments or "{}")

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry for this call."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(slots=True)
class ChatResponse:
    """A completed model call: ``data`` (alias ``text``) and ``usage``.

    ``finish_reason`` uses OpenAI's vocabulary (``stop``, ``length``,
    ``tool_calls``, ``content_filter``); ``raw_finish_reason`` keeps the
    provider's own word. ``raw`` is the provider's decoded JSON body.
    """

    data: str = ""
    usage: UsageStats = field(default_factory=UsageStats)
    model_id: str | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    raw: Any = None
    raw_finish_reason: str | None = None
    choices: list[Choice] | None = None
    """Every choice when ``n > 1`` was asked for (index 0 is also ``data``); else None."""
    logprobs: Any = None
    """The provider's ``logprobs`` object for choice 0, when asked for."""
    model_key: str | None = None
    """``provider/model`` that answered (set by the registry; what usage is billed to)."""

    @property
    def text(self) -> str:
        """The generated text (same as ``data``)."""
        return self.data

    def __str__(self) -> str:
        return self.data


@dataclass(slots=True)
class Choice:
    """One of several completions of one request (``n > 1``)."""

    index: int
    data: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: Any = None


@dataclass(slots=True)
class EmbeddingResponse:
    """Vectors for a list of inputs (in input order) and the tokens they used."""

    vectors: list[list[float]]
    usage: UsageStats = field(default_factory=UsageStats)
    model_id: str | None = None
    model_key: str | None = None
    """``provider/model`` that answered (set by the registry)."""


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call; fragments with one ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One piece of a streamed answer; ``text`` may be empty for non-text events."""

    text: str = ""
    finish_reason: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    usage: UsageStats | None = None
    index: int = 0
    """The choice this chunk belongs to (``n > 1``); 0 otherwise."""
    logprobs: Any = None
    refusal: str | None = None
    """A piece of the assistant's refusal (OpenAI ``delta.refusal``)."""

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class UsageSummary:
    """Aggregate usage of one model in a :class:`~ember.models.ModelRegistry`."""

    model_name: str
    request_count: int = 0
    total_usage: UsageStats = field(default_factory=UsageStats)
    error_count: int = 0

    @property
    def cost_usd(self) -> float:
        """Total cost in USD."""
        return self.total_usage.cost

    @property
    def total_tokens(self) -> int:
        """Shortcut for ``total_usage.total_tokens``."""
        return self.total_usage.total_tokens
