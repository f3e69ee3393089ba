"""The gateway's in-flight cap (per worker), shared fairly between keys.

``max_in_flight`` requests run at once in a worker.  No key may hold more than
``max_in_flight - max_in_flight // 4`` of them (at least 1), so a key that holds many
slow streams always leaves room for the others.  When a key asks for a slot and none
it may take is free, it waits in a bounded queue: each freed slot goes to the waiting
key that holds the fewest (so a key under its fair share — ``max_in_flight`` divided by
the keys in flight — is served before one over it).  A request that waits longer than
``queue_timeout`` gets 429 + ``Retry-After``; when the queue holds ``max_queue``
requests already, 503 ``overloaded`` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ember.gateway.failures import Overloaded, RateLimited


class FairShare:
    """Slots of one worker; ``acquire(key)`` returns the release function."""

    def __init__(self, max_in_flight: int | None, max_queue: int | None = None,
                 queue_timeout: float = 10.0) -> None:
        if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(
                max_queue, int) or max_queue < 0):
            raise ValueError(f"max_queue must be a non-negative int or None, got {max_queue!r}")
        if isinstance(queue_timeout, bool) or not isinstance(queue_timeout, int | float) or \
                not 0 < queue_timeout < float("inf"):
            raise ValueError(f"queue_timeout must be seconds > 0, got {queue_timeout!r}")
        self.max = max_in_flight
        self.key_cap = None if max_in_flight is None else max(1, max_in_flight -
                                                              max_in_flight // 4)
        self.max_queue = (max_in_flight or 0) if max_queue is None else max_queue
        self.queue_timeout = float(queue_timeout)
        self.total = 0
        self.held: dict[str, int] = {}
        self.waiting: list[tuple[str, asyncio.Future[None]]] = []

    def _may(self, key: str) -> bool:
        assert self.max is not None and self.key_cap is not None
        return self.total < self.max and self.held.get(key, 0) < self.key_cap

    def _take(self, key: str) -> Callable[[], None]:
        self.total += 1
        self.held[key] = self.held.get(key, 0) + 1
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            self.total -= 1
            left = self.held[key] - 1
            if left:
                self.held[key] = left
            else:
                del self.held[key]
            self._wake()

        return release

    def _wake(self) -> None:
        """Hand free slots to the waiters whose keys hold the fewest."""
        while self.waiting:
            ready = [(self.held.get(k, 0), i) for i, (k, f) in enumerate(self.waiting)
                     if not f.done() and self._may(k)]
            self.waiting = [w for w in self.waiting if not w[1].done()]
            if not ready:
                return
            _held, index = min(ready)
            key, future = self.waiting.pop(index)
            self.total += 1  # NOTE: reserved for the waiter, handed over in acquire()
            self.held[key] = self.held.get(key, 0) + 1
            future.set_result(None)

    async def acquire(self, key: str) -> Callable[[], None]:
        """A slot for ``key`` (waiting fairly), or :class:`RateLimited` /
        :class:`Overloaded`."""
        if self.max is None:
            return _noop
        if self._may(key):  # NOTE: waiters, if any, are capped keys (else _wake ran)
            return self._take(key)
        if len(self.waiting) >= self.max_queue:
            raise Overloaded("The gateway is at capacity; retry shortly.")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((key, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), self.queue_timeout)
        except TimeoutError:
            if not future.done():
                future.cancel()
                raise RateLimited("The gateway is busy and this key holds its fair share of "
                                  "it; retry shortly.", 1) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self._give_back(key)
            else:
                future.cancel()
            raise
        # the slot was taken for us in _wake(): hand it over
        self.total -= 1
        self.held[key] -= 1
        if not self.held[key]:
            del self.held[key]
        return self._take(key)

    def _give_back(self, key: str) -> None:
        self.total -= 1
        self.held[key] -= 1
        if not self.held[key]:
            del self.held[key]
        self._wake()


def _noop() -> None:
    return None
