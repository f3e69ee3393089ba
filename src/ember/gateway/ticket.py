"""One request's hold on the gateway's budgets and limits, settled once.

A :class:`Ticket` is what :meth:`ember.gateway.service.Gateway.reserve` returns: the
budget reservation, the per-key limit slot and the worst case they were taken for.
``settle`` (after the model call, or when a stream ends or its client leaves) charges
the real usage, gives back the slot and unused tokens, counts the usage in metrics and
queues the request's spend-log row; ``abandon`` is for a handler cancelled mid-call.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from ember.gateway.budgets import StoreUnavailable, delta

#: Usage token classes copied into the spend log when the usage object has them.
CLASSES = ("cached_tokens", "cache_creation_tokens", "reasoning_tokens", "audio_tokens")


class Ticket:
    """See the module docstring."""

    __slots__ = ("caller", "cost", "gateway", "headers", "hold", "limits", "model", "rid",
                 "settled", "started", "stream", "tokens")

    def __init__(self, gateway: Any, caller: Any, hold: Any, tokens: int, cost: float,
                 limits: Any = None, rid: str = "", model: str = "") -> None:
        self.gateway = gateway
        self.caller = caller
        self.hold = hold
        self.tokens = tokens
        self.cost = cost
        self.limits = limits
        self.rid = rid
        self.model = model
        self.stream = False
        self.settled = False
        self.headers: dict[str, str] | None = None  # x-ratelimit-* for the answer
        self.started = time.perf_counter()

    async def settle(self, key: str, model: str, sink: list[Any],
                     streamed: str | None = None) -> None:
        """Charge the real usage of the calls in ``sink`` (and count it in metrics).

        ``streamed``: the text sent to a client that left before the end; its tokens,
        counted locally, are charged when the provider reported fewer.
        """
        if self.settled:
            return
        self.settled = True
        tokens = 0
        cost = 0.0
        obs = sys.modules.get("ember.observability")
        record = getattr(obs, "record_key_usage", None) if obs is not None else None
        last = None
        error = None
        for model_key, usage, failed in sink:
            last, error = model_key, failed
            if usage is None:
                continue
            tokens += usage.total_tokens
            cost += usage.cost
            if record is not None:
                record(key, model_key, usage.prompt_tokens, usage.completion_tokens, usage.cost)
        extra = 0
        if streamed and last is not None:
            from ember.models.tokens import count_tokens

            counted = count_tokens(streamed, last)
            reported = sum(u.completion_tokens for _m, u, _e in sink if u is not None)
            if counted > reported:
                extra = counted - reported
                tokens += extra
                cost += extra * self.gateway.prices.output(last)
        gateway = self.gateway
        await self._give_back(tokens, cost)
        if gateway.spend is not None:
            gateway.spend.record(self._row(sink, last, tokens, extra, cost, _status(error),
                                           streamed is not None and error is None))

    async def abandon(self) -> None:
        """The request ended while the model call ran (the handler was cancelled): what the
        provider billed is unknown, so the whole reservation stays charged."""
        if self.settled:
            return
        self.settled = True
        gateway = self.gateway
        await self._give_back(self.tokens, self.cost)
        if gateway.spend is not None:
            gateway.spend.record(self._row([], None, self.tokens, 0, self.cost, 499, True))

    async def _give_back(self, tokens: int, cost: float) -> None:
        """Settle the limits (slot, unused TPM tokens) and the budgets (the real usage in
        place of the reservation): one Redis round trip on the shared ledger."""
        gateway, limits, hold = self.gateway, self.limits, self.hold
        ledger = gateway.ledger
        if ledger is None:
            if limits is not None:
                await gateway.limit_store.release(self.caller.name, limits, self.rid,
                                                  self.tokens - tokens)
            if hold is not None:
                await gateway.budgets.settle(hold, tokens, cost)
            return
        dt, dc = delta(hold, tokens, cost) if hold is not None else (0, 0)
        if limits is None and dt == 0 and dc == 0:
            return
        try:
            await ledger.settle(self.caller.name, -1 if limits is None else limits.args()[1],
                                "" if limits is None else self.rid,
                                0 if limits is None else self.tokens - tokens,
                                hold.lines if hold is not None else (), dt, dc)
        except StoreUnavailable as exc:
            # NOTE: the reservation stays taken (over-, never under-counted); a slot
            # lease expires (ember.gateway.limits.LEASE)
            (gateway.budgets if hold is not None else gateway.limit_store).down(exc)

    def _row(self, sink: list[Any], last: str | None, tokens: int, extra: int, cost: float,
             status: int, abandoned: bool) -> tuple[Any, ...]:
        prompt = completion = 0
        classes = [0, 0, 0, 0]
        for _m, usage, _e in sink:
            if usage is None:
                continue
            prompt += usage.prompt_tokens
            completion += usage.completion_tokens
            for i, name in enumerate(CLASSES):
                classes[i] += getattr(usage, name, 0) or 0
        provider = last.split("/", 1)[0] if last else None
        return (dt.datetime.now(dt.UTC), self.rid, self.caller.name, self.caller.team,
                self.model, provider, prompt, completion + extra, *classes, tokens, cost,
                (time.perf_counter() - self.started) * 1000.0, status, self.stream, abandoned)


def _status(error: Any) -> int:
    """The HTTP status the client got for a call that ended with ``error``."""
    if error is None:
        return 200
    from ember.gateway.errors import UPSTREAM

    context = getattr(error, "context", None) or {}
    if context.get("local"):
        return 400
    return UPSTREAM.get(context.get("error_type", "server"), (500,))[0]
