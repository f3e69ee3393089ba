"""What ``@app.ai_route`` adds around a handler: context, token limits, SSE.

Before the handler: the JSON body is checked (400 when invalid), the conversation
is loaded (id from ``X-Conversation-Id`` or the body's ``conversation_id``) and
``TokenLimits`` are enforced on the prompt, counted in model tokens from the body
(``messages[].content``, ``message``, ``prompt`` or ``input``): 413 over
``max_prompt_tokens``, 429 with ``Retry-After`` once the caller's
``tokens_per_minute`` are spent.  After it: the caller is charged the completion
(the usage the handler recorded with ``context.record_usage``, else the tokens
of the body or of the streamed text), the conversation is trimmed to its budget
and saved (after the stream ends, for streams), and when the route streams a
returned async iterator or plain ``StreamingResponse`` goes out as server-sent
events.  Streams pass through item by item: nothing is buffered.

Budgets are per route and per caller (the API key — ``x-api-key`` or a bearer token,
hashed — or else the client IP), per process (per worker) unless
``TokenLimits(store="redis://...")`` shares them (:mod:`ember.ai.token_store`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

import orjson

from ember.responses import JSONResponse, Response, StreamingResponse, _aclose

#: The conversation budget when neither the app nor the route sets one.
DEFAULT_CONTEXT_TOKENS = 8192
_WINDOW = 60.0
_default_store: Any = None


def default_store() -> Any:
    """The process-wide in-memory conversation store."""
    global _default_store
    if _default_store is None:
        from ember.ai.context import MemoryConversationStore

        _default_store = MemoryConversationStore()
    return _default_store


class TokenBudget:
    """Per-key tokens-per-minute accounting: a one-minute window per key, from its first use."""

    def __init__(self, tokens_per_minute: int) -> None:
        self.limit = tokens_per_minute
        self.windows: dict[str, tuple[float, int]] = {}

    def _window(self, key: str, now: float) -> tuple[float, int]:
        start, used = self.windows.get(key, (now, 0))
        if now - start >= _WINDOW:
            start, used = now, 0
        return start, used

    def remaining(self, key: str) -> int:
        """Tokens ``key`` may still use in its current window."""
        return max(0, self.limit - self._window(key, time.monotonic())[1])

    def check(self, key: str, tokens: int) -> float | None:
        """None when ``tokens`` fit now, else seconds until the window resets."""
        now = time.monotonic()
        start, used = self._window(key, now)
        if used + tokens > self.limit:
            return max(0.0, _WINDOW - (now - start))
        return None

    async def take(self, key: str, tokens: int) -> tuple[float | None, int]:
        """Check and charge at once: ``(None, left)`` or ``(seconds to wait, left)``."""
        wait = self.check(key, tokens)
        if wait is None:
            self.charge(key, tokens)
        return wait, self.remaining(key)

    def charge(self, key: str, tokens: int) -> None:
        """Add ``tokens`` (negative: refund) to ``key``'s window."""
        if not tokens:
            return
        now = time.monotonic()
        start, used = self._window(key, now)
        self.windows[key] = (start, max(0, used + tokens))
        if len(self.windows) > 100_000:  # NOTE: bound memory under many distinct callers
            cutoff = now - _WINDOW
            self.windows = {k: v for k, v in self.windows.items() if v[0] > cutoff}


def caller_key(request: Any) -> str:
    """Who is charged: an API key or bearer token (hashed), else the client IP."""
    key = request.headers.get("x-api-key")
    auth = request.headers.get("authorization") or ""
    if not key and auth[:7].lower() == "bearer ":
        key = auth[7:].strip()
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]
    client = request.client
    host = getattr(client, "host", None) or (client[0] if isinstance(client, tuple) else None)
    return "ip:" + (host or "unknown")


def prompt_text(body: Any) -> str:
    """The prompt of a chat request body, as text."""
    if not isinstance(body, dict):
        return ""
    from ember.models.tokens import prompt_text as flatten

    parts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        parts.append(flatten([m for m in messages if isinstance(m, dict)]))
    for key in ("message", "prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.append(flatten(value))
    return "\n".join(p for p in parts if p)


def _completion_tokens_of(usage: Any) -> tuple[int | None, int | None]:
    """``(prompt, completion)`` tokens of a usage record (dict or object), when known."""
    if usage is None:
        return None, None
    def get(*keys: str) -> Any:
        for k in keys:
            value = usage.get(k) if isinstance(usage, dict) else getattr(usage, k, None)
            if value is not None:
                return value
        return None

    prompt = get("prompt_tokens", "input_tokens")
    completion = get("completion_tokens", "output_tokens")
    return (int(prompt) if prompt is not None else None,
            int(completion) if completion is not None else None)


def wrap_ai_route(route: Any, invoke: Callable[..., Any]) -> Callable[[Any], Any]:
    """The call of an AI route (see the module docstring)."""
    from ember.ai.context import ConversationContext, MessageContentError
    from ember.models.tokens import count_tokens

    limits = route.token_limits
    budget: Any = None
    if limits and limits.tokens_per_minute:
        if getattr(limits, "store", None):
            from ember.ai.token_store import RedisTokenBudget

            budget = RedisTokenBudget(limits.tokens_per_minute, limits.store)
        else:
            budget = TokenBudget(limits.tokens_per_minute)
    max_prompt = limits.max_prompt_tokens if limits else None
    max_completion = limits.max_completion_tokens if limits else None
    model = route.model if isinstance(route.model, str) else None

    def count(text: str) -> int:
        return count_tokens(text, model) if text else 0

    async def call(request: Any) -> Response:
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            ctype = request.headers.get("content-type") or ""
            if raw.strip() and ("json" in ctype or raw.lstrip()[:1] in (b"{", b"[")):
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    return JSONResponse({"detail": f"the request body is not valid JSON: {exc}"},
                                        400)
                if not isinstance(body, dict):  # NOTE: as the OpenAPI document declares
                    return JSONResponse({"detail": "the request body must be a JSON object"},
                                        400)
        cid = request.headers.get("x-conversation-id")
        if cid is None and isinstance(body, dict):
            cid = body.get("conversation_id")
            if cid is not None and not isinstance(cid, str):
                return JSONResponse({"detail": "conversation_id must be a string"}, 400)
        app = getattr(request, "app", None)
        store = getattr(app, "conversation_store", None)
        if store is None:  # NOTE: not `or`: an empty store is falsy (it has a __len__)
            store = default_store()
        context_budget = getattr(app, "conversation_max_tokens", None) or max_prompt \
            or DEFAULT_CONTEXT_TOKENS
        try:
            context = ConversationContext(cid, max_tokens=context_budget, model=model,
                                          tools=route.tools,
                                          max_completion_tokens=max_completion)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 400)
        if cid is not None:
            context.messages = await store.load(context.id)
        loaded = len(context.messages)
        key = caller_key(request)
        prompt_tokens = count(prompt_text(body)) if limits is not None else 0
        if max_prompt is not None and prompt_tokens > max_prompt:
            return JSONResponse({"detail": f"the prompt has {prompt_tokens} tokens; this route "
                                           f"accepts at most {max_prompt}",
                                 "prompt_tokens": prompt_tokens,
                                 "max_prompt_tokens": max_prompt}, 413)
        if budget is not None:
            if prompt_tokens > budget.limit:
                return JSONResponse({"detail": f"the prompt has {prompt_tokens} tokens, more "
                                               f"than this route's limit of {budget.limit} "
                                               "tokens per minute",
                                     "prompt_tokens": prompt_tokens}, 413)
            bind = getattr(budget, "bind", None)
            if bind is not None:
                bind(app)
            wait, left = await budget.take(key, prompt_tokens)
            if wait is not None:
                retry = max(1, math.ceil(wait))
                return JSONResponse(
                    {"detail": f"token rate limit of {budget.limit} tokens per minute reached; "
                               f"retry in {retry} s", "retry_after": retry}, 429,
                    headers={"retry-after": str(retry),
                             "x-ratelimit-limit-tokens": str(budget.limit),
                             "x-ratelimit-remaining-tokens": str(left)})
        context.metadata["request_body"] = body
        context.metadata["prompt_tokens"] = prompt_tokens

        def settle(streamed_text: str | None) -> None:
            """Charge the completion: recorded usage, else counted text."""
            if budget is None:
                return
            real_prompt, real_completion = _completion_tokens_of(context.usage)
            if real_completion is not None:
                adjust = (real_prompt - prompt_tokens) if real_prompt is not None else 0
                budget.charge(key, real_completion + adjust)
            elif streamed_text:
                budget.charge(key, count(streamed_text))

        async def save() -> None:
            if len(context.messages) or loaded:
                context.trim()
                await store.save(context.id, context.messages)

        try:
            response = await invoke(request, context)
        except MessageContentError as exc:  # NOTE: the content came with the request
            return JSONResponse({"detail": str(exc)}, 422)
        response.headers["x-conversation-id"] = context.id
        if budget is not None:
            response.headers["x-ratelimit-limit-tokens"] = str(budget.limit)
        if isinstance(response, StreamingResponse):
            from ember.sse import SSEResponse

            source = _metered(response.body_iterator, save, settle, context.record_usage,
                              max_completion, count)
            if isinstance(response, SSEResponse):
                response.body_iterator = source
            elif route.streaming:
                headers = {k: v for k, v in response.headers.items()
                           if k not in ("content-type", "content-length")}
                response = SSEResponse(_transport(source, True), response.status_code, headers)
            else:
                response.body_iterator = _transport(source, False)
            return response
        settle(response.body.decode("utf-8", "replace") if response.body else "")
        await save()
        return response

    return call


async def _transport(source: Any, sse: bool) -> Any:
    """Items as the response writes them: model chunks become their text (empty ones go);
    for SSE, bytes become text too, so that the encoder frames them as data."""
    try:
        async for item in source:
            if isinstance(item, (bytes, bytearray)):
                yield item.decode("utf-8", "replace") if sse else item
            elif isinstance(item, (str, dict, list)) or type(item).__name__ == "ServerSentEvent":
                yield item
            elif hasattr(item, "text"):
                if item.text:
                    yield str(item.text)
            else:
                yield item
    finally:
        await _aclose(source)


async def _metered(source: Any, save: Callable[[], Any], settle: Callable[[str], None],
                   record: Callable[[Any], None], max_completion: int | None,
                   count: Callable[[str], int]) -> Any:
    """Pass items through; stop past ``max_completion`` tokens; settle and save at the end.

    Model stream chunks that carry ``usage`` are recorded as the real usage.
    """
    seen: list[str] = []
    used = 0
    try:
        if isinstance(source, AsyncIterable):
            iterator: Any = source
        else:
            iterator = _sync_items(source)
        async for item in iterator:
            usage = getattr(item, "usage", None)
            if usage is not None and not isinstance(item, (str, bytes, dict)):
                record(usage)
            text = _text_of(item)
            seen.append(text)
            yield item
            if max_completion is not None and text:
                used += count(text)
                if used >= max_completion:
                    break
    finally:
        # NOTE: closing the source cancels whatever upstream call it was awaiting.
        await _aclose(source)
        settle("".join(seen))
        try:
            await save()
        except Exception as exc:
            from ember.outages import StoreUnavailable

            if not isinstance(exc, StoreUnavailable):
                raise
            # NOTE: the answer was streamed already; the store outage is logged by
            # ember.outages (once), the conversation is just not saved


async def _sync_items(source: Any) -> Any:
    # NOTE: a sync iterable runs on the event loop, as StreamingResponse does: it must not block.
    for item in source:
        yield item


def _text_of(item: Any) -> str:
    """The generated text an item of a stream carries (for token accounting)."""
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _frame_text(bytes(item))
    if isinstance(item, dict):
        for key in ("text", "content", "token", "delta"):
            value = item.get(key)
            if isinstance(value, str):
                return value
        return orjson.dumps(item, default=str).decode()
    data = getattr(item, "data", None)
    if data is not None:
        return _text_of(data)
    text = getattr(item, "text", None)
    return str(text) if text is not None else ""


def _frame_text(raw: bytes) -> str:
    """The text of pre-encoded SSE frames (OpenAI chunks give their delta content)."""
    if not raw.startswith((b"data:", b"event:", b"id:", b":")):
        return raw.decode("utf-8", "replace")
    from ember._sse_decode import SSEDecoder

    decoder = SSEDecoder()
    out: list[str] = []
    for event in decoder.feed(raw) + decoder.flush():
        payload = event.data
        if payload == "[DONE]":
            continue
        if payload.startswith("{"):
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                out.append(payload)
                continue
            choices = obj.get("choices") if isinstance(obj, dict) else None
            if isinstance(choices, list):
                for choice in choices:
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                        out.append(delta["content"])
                continue
            out.append(_text_of(obj))
            continue
        out.append(payload)
    return "".join(out)
