"""What a shared-state feature does when its store (Redis, ...) is down or hung.

Every store call that can reach another machine goes through :func:`guard`: it has its
own timeout (a hung Redis costs at most that, never the client library's defaults), and
a failure becomes :class:`StoreUnavailable` — **503 with ``Retry-After``**, never a 500 —
unless the feature was configured to fail open, in which case the caller's fallback
is used (an anonymous session, an empty conversation).  The failure is logged once per
outage (logger ``ember.outages``), and once more when the store answers again.

The policy of every feature is one table in docs/deployment.md ("Failure policy").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from ember._redact import redact
from ember.exceptions import HTTPException

logger = logging.getLogger("ember.outages")

T = TypeVar("T")

#: seconds a client is told to wait before retrying
RETRY_AFTER = 1

_FALLBACK: Any = object()


class StoreUnavailable(HTTPException):
    """503 + ``Retry-After``: a shared store (sessions, conversations) cannot be reached."""

    def __init__(self, what: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(503, f"{what} is unavailable; retry shortly",
                         headers={"retry-after": str(retry_after)})
        self.what = what


class Outage:
    """Remembers whether one store is down, so each outage is logged once."""

    __slots__ = ("down", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self.down = False

    def failed(self, op: str, exc: BaseException, fail_open: bool) -> None:
        """Log the first failure of an outage."""
        if not self.down:
            self.down = True
            logger.warning("%s %s failed (%s: %s); %s until it recovers", self.what, op,
                           type(exc).__name__, redact(exc) if str(exc) else "timed out",
                           "continuing without it" if fail_open else "answering 503")

    def ok(self) -> None:
        """The store answered: log the recovery once."""
        if self.down:
            self.down = False
            logger.warning("%s is reachable again", self.what)


async def guard(call: Awaitable[T], *, timeout: float, outage: Outage, op: str,
                fallback: Any = _FALLBACK) -> T:
    """Await ``call`` for at most ``timeout`` seconds.

    On an error or timeout: ``fallback`` when given (fail open), else
    :class:`StoreUnavailable`.  ``asyncio.CancelledError`` (the client left) propagates.
    """
    try:
        result = await asyncio.wait_for(call, timeout)
    except (asyncio.CancelledError, HTTPException):
        raise
    except Exception as exc:
        outage.failed(op, exc, fallback is not _FALLBACK)
        if fallback is not _FALLBACK:
            return fallback  # type: ignore[no-any-return]
        raise StoreUnavailable(outage.what) from None
    outage.ok()
    return result


def check_timeout(value: Any, what: str) -> float:
    """``value`` as a timeout in (0, 60] seconds, else a ConfigError naming ``what``."""
    from ember.exceptions import ConfigError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 60:
        raise ConfigError(f"{what} must be a number of seconds in (0, 60], got {value!r}")
    return float(value)
