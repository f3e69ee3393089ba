"""One retry/fallback policy for every model call, and its sync and async drivers.

    policy = RetryPolicy(max_retries=2, backoff=0.5, max_wait=60.0)
    policy.delay(attempt, error)     # seconds before retry ``attempt`` (0-based), or None

The same object decides for an HTTP provider's own retries (``models()``,
:class:`~ember.models.registry.ModelRegistry`) and for
:class:`~ember.ai.router.ModelRouter` (which also falls back to the next model and
puts failing models into ``cooldown``; the gateway's fallback lists are routers).
The decision is pure (:meth:`RetryPolicy.delay`); :func:`run_sync` and
:func:`run_async` are the two drivers over it, as httpcore has one connection
logic with a sync and an async face.

Rules: only ``retry_on`` error types retry (never ``authentication`` or
``bad_request``: they will not get better); a malformed reply does not retry; a
provider's ``Retry-After`` is honoured as given — never shortened: when it is longer
than ``max_wait`` the call gives up (the router then moves on) instead of waiting
less than the provider asked; otherwise exponential backoff with jitter, capped at
``max_wait``.  ``first_token_timeout`` (seconds, or None) is how long a stream may
go without its first token before it is abandoned (the router then tries the next
model: streaming falls back before the first token only).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ember.models.exceptions import RETRYABLE, ModelError, ProviderAPIError

T = TypeVar("T")
_NEVER = frozenset({"authentication", "bad_request"})


class RetryPolicy:
    """Attempts, backoff with jitter, which errors retry, cooldown, first-token timeout."""

    __slots__ = ("backoff", "cooldown", "failure_threshold", "first_token_timeout",
                 "max_retries", "max_wait", "retry_on")

    def __init__(self, max_retries: int = 2, backoff: float = 0.5, max_wait: float = 60.0, *,
                 retry_on: Iterable[str] = RETRYABLE, cooldown: float = 30.0,
                 failure_threshold: int = 1,
                 first_token_timeout: float | None = None) -> None:
        if max_retries < 0 or backoff < 0 or max_wait < 0 or cooldown < 0:
            raise ValueError("max_retries, backoff, max_wait and cooldown must not be negative")
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        first_token_timeout = check_first_token_timeout(first_token_timeout)
        retry_on = frozenset(retry_on)
        if retry_on & _NEVER:
            raise ValueError("authentication and bad_request errors are never retried")
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_wait = float(max_wait)
        self.retry_on = retry_on
        self.cooldown = float(cooldown)
        self.failure_threshold = int(failure_threshold)
        self.first_token_timeout = first_token_timeout

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with ``changes`` applied (same validation)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        max_retries = values.pop("max_retries")
        backoff = values.pop("backoff")
        max_wait = values.pop("max_wait")
        return RetryPolicy(max_retries, backoff, max_wait, **values)

    def retryable(self, error: BaseException, *, malformed: bool = False) -> bool:
        """Whether ``error`` is of a kind worth another attempt (or another model).

        A malformed reply counts only with ``malformed=True`` (the router retries
        one; a provider's own retry loop does not).
        """
        if not isinstance(error, ModelError) or error.context.get("first_token_timeout"):
            return False  # NOTE: a stalled stream: the next model, not this one again
        return (error.context.get("error_type") in self.retry_on
                and (malformed or not error.context.get("malformed")))

    def delay(self, attempt: int, error: BaseException, max_retries: int | None = None, *,
              malformed: bool = False) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based), or None to give up."""
        limit = self.max_retries if max_retries is None else max_retries
        if attempt >= limit or not self.retryable(error, malformed=malformed):
            return None
        retry_after = error.context.get("retry_after")  # type: ignore[attr-defined]
        if retry_after is not None:
            retry_after = float(retry_after)
            # NOTE: never shortened: waiting less than asked gets another 429
            return None if retry_after > self.max_wait else retry_after
        backoff = min(self.max_wait, self.backoff * (2 ** attempt))
        return backoff * (0.5 + random.random() / 2)

    def __repr__(self) -> str:
        return (f"RetryPolicy(max_retries={self.max_retries}, backoff={self.backoff}, "
                f"max_wait={self.max_wait}, first_token_timeout={self.first_token_timeout})")


def check_first_token_timeout(value: Any, name: str = "first_token_timeout") -> float | None:
    """``value`` as seconds (a positive finite number) or None; ValueError naming ``name``."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 < value < float("inf")):
        raise ValueError(f"{name} must be a positive number of seconds or None, "
                         f"got {value!r}")
    return float(value)


def first_token_timeout_error(model: str, seconds: float) -> ProviderAPIError:
    """The error of a stream abandoned for want of a first token (``error_type`` timeout;
    ``context["first_token_timeout"]`` set, so no retry of the same model: the next one)."""
    return ProviderAPIError(
        f"{model}: no token within first_token_timeout={seconds:g} s (upstream stalled)",
        error_type="timeout", model=model, provider_message="first token timeout",
        context={"first_token_timeout": seconds, "code": "timeout"})


def has_content(chunk: Any) -> bool:
    """Whether a stream chunk is a first token: text, a tool call or a finish reason
    (keep-alives, pings, role-only and empty deltas are not)."""
    return bool(getattr(chunk, "text", None) or getattr(chunk, "tool_calls", None)
                or getattr(chunk, "finish_reason", None))


def run_sync(policy: RetryPolicy, attempt: Callable[[], T], *,
             max_retries: int | None = None, malformed: bool = False) -> T:
    """Call ``attempt()`` until it returns or ``policy`` gives up (then re-raise)."""
    n = 0
    while True:
        try:
            return attempt()
        except ModelError as exc:
            wait = policy.delay(n, exc, max_retries, malformed=malformed)
            if wait is None:
                exc.context["attempts"] = n + 1
                raise
        n += 1
        time.sleep(wait)


async def run_async(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]], *,
                    max_retries: int | None = None, malformed: bool = False) -> T:
    """Async driver: ``await attempt()`` until it returns or ``policy`` gives up."""
    n = 0
    while True:
        try:
            return await attempt()
        except ModelError as exc:
            wait = policy.delay(n, exc, max_retries, malformed=malformed)
            if wait is None:
                exc.context["attempts"] = n + 1
                raise
        n += 1
        await asyncio.sleep(wait)
