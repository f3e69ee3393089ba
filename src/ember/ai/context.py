"""Conversation context for ``@app.ai_route``: messages kept between requests.

The id comes from the ``X-Conversation-Id`` header or a ``conversation_id`` field
of the JSON body (else a new one, echoed in the ``x-conversation-id`` response
header).  Messages persist in a bounded in-memory store by default, or in Redis
(``RedisConversationStore``) when several workers or hosts share conversations,
and are trimmed to a token budget, keeping system messages.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from typing import Any

import orjson

_ROLES = ("system", "user", "assistant", "tool")
_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class MemoryConversationStore:
    """Conversations in process memory: LRU-bounded, expiring after ``ttl`` seconds."""

    def __init__(self, max_conversations: int = 10_000, ttl: float = 3600) -> None:
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
        """Store ``messages`` for ``cid``."""
        self._data[cid] = (time.monotonic() + self.ttl, [dict(m) for m in messages])
        self._data.move_to_end(cid)
        while len(self._data) > self.max_conversations:
            self._data.popitem(last=False)


class RedisConversationStore:
    """Conversations in Redis (``redis.asyncio``, imported on first use)."""

    def __init__(self, url: str = "redis://localhost:6379", ttl: int = 3600,
                 prefix: str = "ember:conv:") -> None:
        self.url = url
        self.ttl = ttl
        self.prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            from ember.exceptions import require

            redis = require("redis.asyncio", "cache", "RedisConversationStore")
            self._client = redis.from_url(self.url)
        return self._client

    async def load(self, cid: str) -> list[dict[str, Any]]:
        """The stored messages of ``cid``."""
        raw = await self._redis().get(self.prefix + cid)
        return orjson.loads(raw) if raw else []

    async def save(self, cid: str, messages: list[dict[str, Any]]) -> None:
        """Store ``messages`` with a TTL."""
        await self._redis().set(self.prefix + cid, orjson.dumps(messages), ex=self.ttl)


class ConversationContext:
    """The messages of one conversation, as an AI route handler sees them."""

    def __init__(self, id: str | None = None, messages: list[dict[str, Any]] | None = None,
                 max_tokens: int | None = None, model: str | None = None) -> None:
        if id is not None and not _ID.fullmatch(id):
            raise ValueError("conversation id must be 1-128 characters of [A-Za-z0-9._:-]")
        self.id = id or uuid.uuid4().hex
        self.messages: list[dict[str, Any]] = list(messages or [])
        self.max_tokens = max_tokens
        self.model = model
        self.metadata: dict[str, Any] = {}

    def add_message(self, role: str, content: Any, **extra: Any) -> dict[str, Any]:
        """Append a message; ``role`` is system, user, assistant or tool."""
        if role not in _ROLES:
            raise ValueError(f"role must be one of {', '.join(_ROLES)}, got {role!r}")
        message = {"role": role, "content": content, **extra}
        self.messages.append(message)
        return message

    def to_openai(self) -> list[dict[str, Any]]:
        """The messages in OpenAI chat format."""
        return [dict(m) for m in self.messages]

    @property
    def last_user_message(self) -> str | None:
        """The content of the latest user message."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return None

    def token_count(self) -> int:
        """Tokens of the whole conversation."""
        from ember.tokens import count_message_tokens

        return count_message_tokens(self.messages, self.model)

    def trim(self, max_tokens: int | None = None) -> int:
        """Drop the oldest non-system messages until within budget; returns how many."""
        budget = max_tokens if max_tokens is not None else self.max_tokens
        if budget is None:
            return 0
        dropped = 0
        while self.token_count() > budget:
            for i, message in enumerate(self.messages):
                if message["role"] != "system":
                    del self.messages[i]
                    dropped += 1
                    break
            else:
                break
        return dropped

    def clear(self) -> None:
        """Forget every message."""
        self.messages.clear()

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"ConversationContext(id={self.id!r}, messages={len(self.messages)})"
