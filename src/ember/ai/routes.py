"""What ``@app.ai_route`` adds around a handler: context, token limits, SSE.

Before the handler: the conversation is loaded (id from ``X-Conversation-Id`` or
the body's ``conversation_id``), and ``TokenLimits`` are enforced on the prompt
(counted in model tokens from the JSON body: ``messages[].content``, ``message``
or ``prompt``) — 413 over ``max_prompt_tokens``, 429 with ``Retry-After`` when
the caller's ``tokens_per_minute`` are spent.  After it: the completion's tokens
are charged (counted from the body, or from the streamed text as it goes out),
the conversation is saved (after the stream ends, for streams), and a returned
async iterator goes out as server-sent events when the route streams.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

import orjson

from ember.responses import JSONResponse, Response, StreamingResponse, _aclose

_default_store: Any = None


def default_store() -> Any:
    """The process-wide in-memory conversation store."""
    global _default_store
    if _default_store is None:
        from ember.ai.context import MemoryConversationStore

        _default_store = MemoryConversationStore()
    return _default_store


class TokenBudget:
    """Per-key tokens-per-minute accounting (a fixed one-minute window per key)."""

    def __init__(self, tokens_per_minute: int) -> None:
        self.limit = tokens_per_minute
        self.windows: dict[str, tuple[float, int]] = {}

    def _window(self, key: str, now: float) -> tuple[float, int]:
        start, used = self.windows.get(key, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        return start, used

    def check(self, key: str, tokens: int) -> float | None:
        """None when ``tokens`` fit now, else seconds until the window resets."""
        now = time.monotonic()
        start, used = self._window(key, now)
        if used + tokens > self.limit and used > 0:
            return max(0.0, 60 - (now - start))
        if tokens > self.limit:
            return 60.0
        return None

    def charge(self, key: str, tokens: int) -> None:
        """Add ``tokens`` to ``key``'s window."""
        now = time.monotonic()
        start, used = self._window(key, now)
        self.windows[key] = (start, used + tokens)
        if len(self.windows) > 100_000:  # NOTE: bound memory under many keys
            cutoff = now - 60
            self.windows = {k: v for k, v in self.windows.items() if v[0] > cutoff}


def caller_key(request: Any) -> str:
    """Who is charged: an API key or bearer token (hashed), else the client IP."""
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    client = request.client
    return "ip:" + (client.host if client else "unknown")


def prompt_text(body: Any) -> str:
    """The prompt of a chat request body, as text."""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                content = m.get("content")
                if isinstance(content, list):
                    content = " ".join(str(p.get("text", "")) for p in content
                                       if isinstance(p, dict))
                parts.append(str(content or ""))
    for key in ("message", "prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


def wrap_ai_route(route: Any, invoke: Callable[..., Any]) -> Callable[[Any], Any]:
    """The call of an AI route (see the module docstring)."""
    from ember.ai.context import ConversationContext
    from ember.tokens import count_tokens

    limits = route.token_limits
    budget = TokenBudget(limits.tokens_per_minute) if limits and limits.tokens_per_minute \
        else None
    model = route.model if isinstance(route.model, str) else None

    async def call(request: Any) -> Response:
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            if (raw and "json" in request.content_type) or raw[:1] in (b"{", b"["):
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return JSONResponse({"detail": "the request body is not valid JSON"}, 400)
        cid = request.headers.get("x-conversation-id")
        if cid is None and isinstance(body, dict) and isinstance(body.get("conversation_id"),
                                                                  str):
            cid = body["conversation_id"]
        store = getattr(request.app, "conversation_store", None) or default_store()
        try:
            context = ConversationContext(cid, model=model)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        if cid is not None:
            context.messages = await store.load(context.id)
        key = caller_key(request)
        if limits is not None:
            prompt_tokens = count_tokens(prompt_text(body), model)[0]
            if limits.max_prompt_tokens is not None and prompt_tokens > limits.max_prompt_tokens:
                return JSONResponse({"detail": f"the prompt has {prompt_tokens} tokens; this "
                                     f"route accepts at most {limits.max_prompt_tokens}",
                                     "prompt_tokens": prompt_tokens}, 413)
            if budget is not None:
                wait = budget.check(key, prompt_tokens)
                if wait is not None:
                    retry = max(1, math.ceil(wait))
                    return JSONResponse(
                        {"detail": f"token rate limit of {budget.limit} tokens per minute "
                                   f"reached; retry in {retry} s"}, 429,
                        headers={"retry-after": str(retry)})
                budget.charge(key, prompt_tokens)
        context.metadata["request_body"] = body
        response = await invoke(request, context)
        response.headers["x-conversation-id"] = context.id

        def charge(text: str) -> None:
            if budget is not None and text:
                budget.charge(key, count_tokens(text, model)[0])

        if route.streaming and isinstance(response, StreamingResponse):
            from ember.sse import SSEResponse

            if not isinstance(response, SSEResponse):
                response = SSEResponse(response.body_iterator, response.status_code,
                                       {k: v for k, v in response.headers.items()
                                        if k not in ("content-type", "content-length")})
            response.body_iterator = _metered(response.body_iterator, context, store, charge)
            return response
        if not response.streaming:
            charge(response.body.decode("utf-8", "replace") if response.body else "")
            await store.save(context.id, context.messages)
        return response

    return call


async def _metered(source: Any, context: Any, store: Any,
                   charge: Callable[[str], None]) -> Any:
    """Pass items through; charge their text and save the context when the stream ends."""
    seen: list[str] = []
    try:
        if isinstance(source, AsyncIterable):
            async for item in source:
                seen.append(_text_of(item))
                yield item
        else:
            for item in source:
                seen.append(_text_of(item))
                yield item
    finally:
        await _aclose(source)
        text = "".join(seen)
        charge(text)
        await store.save(context.id, context.messages)


def _text_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    data = getattr(item, "data", None)
    if data is not None:
        return str(data)
    text = getattr(item, "text", None)
    return str(text) if text is not None else ""
