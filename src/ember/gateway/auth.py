"""Who is calling the gateway: static ``api_keys`` and virtual keys from a key store.

A :class:`Caller` carries what the rest of the pipeline needs about the key: its id
(labels budgets, limits, metrics and spend — never the secret), its budget and team,
its limits and the public model names it may use.  Static keys are compared in
constant time with every configured key; a virtual key (``sk-ember-...``) is looked
up by the SHA-256 of the secret (:mod:`ember.gateway.keys`).  A key store that is down
answers 503 + ``Retry-After`` (fail closed: an unknown caller is never served).
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from ember.gateway.failures import Overloaded, Unauthorized
from ember.gateway.keys import SECRET_PREFIX, KeyCache, KeyStoreUnavailable, hash_secret


class Caller:
    """The calling key and what applies to it."""

    __slots__ = ("budget", "expires_at", "limits", "models", "name", "team")

    def __init__(self, name: str, budget: Any = None, limits: Any = None,
                 team: str | None = None, models: frozenset[str] | None = None,
                 expires_at: float | None = None) -> None:
        self.name = name
        self.budget = budget
        self.limits = limits
        self.team = team
        self.models = models
        self.expires_at = expires_at


class Authenticator:
    """Turns ``Authorization: Bearer ...`` into a :class:`Caller` (or 401/503)."""

    def __init__(self, keys: dict[str, bytes], key_store: Any, budgets: Any,
                 default_limits: Any, key_limits: dict[str, Any]) -> None:
        self.keys = keys
        self.key_store = key_store
        self.cache = KeyCache(key_store, convert=self._virtual) if key_store is not None \
            else None
        self.default_budget = budgets.default if budgets is not None else None
        self.default_limits = default_limits
        self.static = {name: Caller(name, budgets.of(name) if budgets is not None else None,
                                    key_limits.get(name, default_limits))
                       for name in keys}
        self.anonymous = Caller("anonymous", self.default_budget, default_limits)

    def _virtual(self, doc: dict[str, Any] | None) -> Caller | None:
        if doc is None or doc.get("revoked"):
            return None
        from ember.gateway.budgets import Budget
        from ember.gateway.limits import KeyLimits

        budget = Budget(**doc["budget"]) if doc.get("budget") else self.default_budget
        limits = KeyLimits(**doc["limits"]) if doc.get("limits") else self.default_limits
        models = frozenset(doc["models"]) if doc.get("models") is not None else None
        return Caller(doc["id"], budget, limits or None, doc.get("team"), models,
                      doc.get("expires_at"))

    async def authenticate(self, request: Any, endpoint: Any = None) -> Caller:
        """The caller, or :class:`Unauthorized` / :class:`Overloaded` (store down).
        ``endpoint`` reads the key the way its clients send it (``Authorization: Bearer``;
        ``x-api-key`` too for Anthropic's Messages API)."""
        if not self.keys and self.cache is None:
            return self.anonymous
        if endpoint is not None:
            token = endpoint.credentials(request) or ""
        else:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            token = token.strip() if scheme.lower() == "bearer" else ""
        if not token:
            raise Unauthorized()
        given = token.encode("utf-8", "surrogateescape")
        found = None
        for name, key in self.keys.items():  # NOTE: compare with every key (constant time)
            if hmac.compare_digest(given, key):
                found = name
        if found is not None:
            return self.static[found]
        if self.cache is not None and token.startswith(SECRET_PREFIX):
            try:
                caller = await self.cache.lookup(hash_secret(given))
            except KeyStoreUnavailable:
                raise Overloaded("The gateway's key store is unavailable; retry shortly.", 2,
                                 code="key_store_unavailable") from None
            if caller is not None:
                if caller.expires_at is not None and caller.expires_at <= time.time():
                    raise Unauthorized("This API key has expired.")
                return caller
        raise Unauthorized()


def master_key_from(master_key: Any, keys: dict[str, bytes]) -> str | None:
    """``master_key=`` or ``$EMBER_GATEWAY_MASTER_KEY`` (None: no admin API)."""
    if master_key is None:
        master_key = os.environ.get("EMBER_GATEWAY_MASTER_KEY") or None
        where = "EMBER_GATEWAY_MASTER_KEY"
    else:
        where = "master_key"
    if master_key is None:
        return None
    if not isinstance(master_key, str) or len(master_key.strip()) < 16 or \
            master_key != master_key.strip():
        raise ValueError(f"{where} must be a string of at least 16 characters without "
                         "surrounding spaces")
    if master_key.encode() in keys.values():
        raise ValueError(f"{where} must differ from every api_keys entry")
    return master_key
