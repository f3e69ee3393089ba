"""Conversation context for ``@app.ai_route``: messages kept between requests.

The id comes from the ``X-Conversation-Id`` header or a ``conversation_id`` field
of the JSON body (else a new one, echoed in the ``x-conversation-id`` response
header).  Messages persist in a bounded in-memory store by default, or in Redis
(``RedisConversationStore``) when several workers or hosts share conversations,
and are trimmed to a token budget before they are saved, keeping system messages.

NOTE: two requests on the same conversation at the same time each save what they
saw: the last one to finish wins (no merge).
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import orjson

ROLES = ("system", "user", "assistant", "tool")
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class ConversationStore:
    """Where conversations live between requests: subclass and implement the three methods.

    ``app.conversation_store = MyStore()`` replaces the default in-memory store.
    """

    async def load(self, cid: str) -> list[dict[str, Any]]:
        """The stored messages of ``cid`` (empty when unknown or expired)."""
        raise NotImplementedError

    async def save(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Store ``messages`` for ``cid`` (replacing what was there)."""
        raise NotImplementedError

    async def delete(self, cid: str) -> None:
        """Forget ``cid``."""
        raise NotImplementedError


class MemoryConversationStore(ConversationStore):
    """Conversations in process memory: LRU-bounded, expiring ``ttl`` seconds after last use."""

    def __init__(self, max_conversations: int = 10_000, ttl: float = 3600) -> None:
        if max_conversations < 1 or ttl <= 0:
            raise ValueError("max_conversations must be >= 1 and ttl > 0")
        self._data: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self.max_conversations = max_conversations
        self.ttl = ttl

    async def load(self, cid: str) -> list[dict[str, Any]]:
        """The stored messages of ``cid`` (empty when unknown or expired)."""
        item = self._data.get(cid)
        if item is None or item[0] < time.monotonic():
            self._data.pop(cid, None)
            return []
        self._data.move_to_end(cid)
        return [dict(m) for m in item[1]]

    async def save(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Store ``messages`` for ``cid``; the least recently used conversation goes when full."""
        self._data[cid] = (time.monotonic() + self.ttl, [dict(m) for m in messages])
        self._data.move_to_end(cid)
        while len(self._data) > self.max_conversations:
            self._data.popitem(last=False)

    async def delete(self, cid: str) -> None:
        """Forget ``cid``."""
        self._data.pop(cid, None)

    def __len__(self) -> int:
        return len(self._data)


class RedisConversationStore(ConversationStore):
    """Conversations in Redis as JSON with a TTL (``redis.asyncio``, imported on first use).

    Each call waits at most ``timeout`` seconds.  When Redis is down or hung the route
    answers **503 with Retry-After** (before the model is called when loading fails);
    with ``fail_open=True`` a conversation that cannot be loaded starts empty and one
    that cannot be saved is dropped (logged once per outage, logger ``ember.outages``).
    """

    def __init__(self, url: str = "redis://localhost:6379", ttl: int = 3600,
                 prefix: str = "ember:conv:", *, timeout: float = 0.5,
                 fail_open: bool = False) -> None:
        from ember.cache.redis_cache import check_redis_url
        from ember.exceptions import ConfigError
        from ember.outages import Outage, check_timeout

        if not isinstance(fail_open, bool):
            raise ConfigError(f"fail_open must be True or False, got {fail_open!r}")
        self.url = check_redis_url(url)
        self.ttl = ttl
        self.prefix = prefix
        self.timeout = check_timeout(timeout, "RedisConversationStore timeout")
        self.fail_open = fail_open
        self._outage = Outage("the conversation store")
        import weakref

        self._clients: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = \
            weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        from ember._redact import redact_url

        return f"RedisConversationStore({redact_url(self.url)!r})"

    def _redis(self) -> Any:
        import asyncio
        import os

        # NOTE: one fail-fast client per event loop and process (never a parent's sockets)
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None or entry[0] != os.getpid():
            from ember.cache.redis_cache import redis_client

            entry = (os.getpid(), redis_client(self.url, self.timeout, "RedisConversationStore"))
            self._clients[loop] = entry
        return entry[1]

    async def _guarded(self, op: str, call: Any, fallback: Any) -> Any:
        from ember.outages import _FALLBACK, guard

        return await guard(call, timeout=self.timeout, outage=self._outage, op=op,
                           fallback=fallback if self.fail_open else _FALLBACK)

    async def load(self, cid: str) -> list[dict[str, Any]]:
        """The stored messages of ``cid``."""
        raw = await self._guarded("load", self._redis().get(self.prefix + cid), None)
        return orjson.loads(raw) if raw else []

    async def save(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Store ``messages`` with the TTL."""
        await self._guarded("save", self._redis().set(
            self.prefix + cid, orjson.dumps(messages, default=str), ex=self.ttl), None)

    async def delete(self, cid: str) -> None:
        """Forget ``cid``."""
        await self._guarded("delete", self._redis().delete(self.prefix + cid), None)

    async def ping(self) -> None:
        """Raise unless Redis answers within ``timeout`` (readiness checks)."""
        import asyncio

        await asyncio.wait_for(self._redis().ping(), self.timeout)

    async def close(self) -> None:
        """Close this loop's connections (idempotent)."""
        import asyncio
        import os

        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None and entry[0] == os.getpid():
            await entry[1].aclose()


def _message_tokens(message: dict[str, Any], model: str | None) -> int:
    from ember.models.tokens import count_tokens, prompt_text

    # NOTE: OpenAI's accounting: 4 tokens of framing per message, plus the content.
    return 4 + count_tokens(prompt_text([message]), model)


class MessageContentError(TypeError):
    """A message content no chat API accepts; raised by
    :meth:`ConversationContext.add_message` (an AI route answers 422 with it)."""


def check_content(role: str, content: Any) -> None:
    """Raise :class:`MessageContentError` unless ``content`` is a str, a list of content
    parts (``{"type": ...}`` dicts, as OpenAI and Anthropic take), or ``None`` on an
    assistant message (one that only calls tools)."""
    if isinstance(content, str):
        return
    if content is None:
        if role == "assistant":
            return
        raise MessageContentError(f"a {role} message needs content (a str), got None")
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in content):
        return
    shown = repr(content)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise MessageContentError(
        f"message content must be a str or a non-empty list of content parts "
        f"({{'type': ...}} dicts), got {type(content).__name__} {shown}")


class ConversationContext:
    """The messages of one conversation, as an AI route handler sees them.

    ``max_tokens`` is the budget :meth:`trim` keeps the conversation within (the
    route trims before saving); ``max_completion_tokens`` and ``tools`` come from
    the route (``TokenLimits`` and ``tools=``) for the handler to pass on to the model.
    """

    def __init__(self, id: str | None = None, messages: list[dict[str, Any]] | None = None,
                 max_tokens: int | None = None, model: str | None = None, *,
                 tools: Any = None, max_completion_tokens: int | None = None) -> None:
        if id is not None and (not isinstance(id, str) or not _ID.fullmatch(id)):
            raise ValueError("conversation id must be 1-128 characters of [A-Za-z0-9._:-]")
        for arg, value in (("max_tokens", max_tokens),
                           ("max_completion_tokens", max_completion_tokens)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"ConversationContext({arg}=...) must be a positive int or "
                                 f"None, got {value!r}")
        if model is not None and not isinstance(model, str):
            raise TypeError(f"ConversationContext(model=...) must be a model id (str) or None, "
                            f"got {type(model).__name__}")
        self.id = id or uuid.uuid4().hex
        self.messages: list[dict[str, Any]] = []
        for message in messages or ():
            self.add_message(**message)
        self.max_tokens = max_tokens
        self.model = model
        self.tools = tools
        self.max_completion_tokens = max_completion_tokens
        self.usage: Any = None
        self.metadata: dict[str, Any] = {}

    def add_message(self, role: str, content: Any = None, **extra: Any) -> dict[str, Any]:
        """Append a message; ``role`` is system, user, assistant or tool.

        ``content`` is a str, a list of content parts, or ``None`` on an assistant
        message that only calls tools; anything else raises :class:`MessageContentError`
        (a ``TypeError``) instead of reaching the model API.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        check_content(role, content)
        message = {"role": role, "content": content, **extra}
        self.messages.append(message)
        return message

    def to_openai(self) -> list[dict[str, Any]]:
        """The messages in OpenAI chat format (copies)."""
        return [dict(m) for m in self.messages]

    def to_anthropic(self) -> tuple[str | None, list[dict[str, Any]]]:
        """``(system, messages)`` for Anthropic: system messages joined, the rest as they are."""
        system = [str(m["content"]) for m in self.messages if m["role"] == "system"]
        rest = [dict(m) for m in self.messages if m["role"] != "system"]
        return ("\n\n".join(system) or None), rest

    @property
    def last_user_message(self) -> Any:
        """The content of the latest user message (None when there is none)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return None

    def record_usage(self, usage: Any) -> None:
        """Tell the route the model's real usage (a ``UsageStats``, a response, or a dict).

        The route charges ``TokenLimits`` with it instead of counting the answer.
        """
        self.usage = getattr(usage, "usage", usage)

    def token_count(self) -> int:
        """Tokens of the whole conversation (with per-message framing)."""
        return 3 + sum(_message_tokens(m, self.model) for m in self.messages)

    def trim(self, max_tokens: int | None = None) -> int:
        """Drop the oldest non-system messages until within budget; returns how many.

        A tool result is dropped together with the assistant message that asked for
        it, so a trimmed conversation never starts with an orphan ``tool`` message.
        """
        budget = max_tokens if max_tokens is not None else self.max_tokens
        if budget is None:
            return 0
        sizes = [_message_tokens(m, self.model) for m in self.messages]
        total = 3 + sum(sizes)
        drop: set[int] = set()
        for i, message in enumerate(self.messages):
            if total <= budget:
                break
            if message["role"] == "system":
                continue
            drop.add(i)
            total -= sizes[i]
        # NOTE: keep the kept part well-formed: no leading tool results.
        for i, message in enumerate(self.messages):
            if i in drop or message["role"] == "system":
                continue
            if message["role"] != "tool":
                break
            drop.add(i)
        if drop:
            self.messages = [m for i, m in enumerate(self.messages) if i not in drop]
        return len(drop)

    def clear(self) -> None:
        """Forget every message."""
        self.messages.clear()

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Any:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"ConversationContext(id={self.id!r}, messages={len(self.messages)})"
