"""Handshake-era MCP sessions: ids signed by the server (no server-side state).

An id is ``<random>.<negotiated version>.<HMAC>``: any worker holding the key accepts
any worker's sessions (see docs/mcp.md, *Sessions*).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

from ember.mcp.protocol import HANDSHAKE_VERSIONS


class Sessions:
    """Handshake-era session ids: signed (so every forked worker accepts them), revocable.

    A session id is ``<random>.<negotiated version>.<HMAC>``; the key is made when the
    server is created, i.e. before a supervisor forks its workers. Ended sessions are
    remembered (bounded) by the worker that ended them.
    """

    def __init__(self, secret: bytes | None = None, max_ended: int = 100_000) -> None:
        self._key = secret or secrets.token_bytes(32)
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._max_ended = max_ended

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, version: str) -> str:
        payload = f"{secrets.token_urlsafe(18)}.{version}"
        return f"{payload}.{self._sign(payload)}"

    def version(self, session_id: str) -> str | None:
        """The negotiated version of a live session, or None for unknown/ended ids."""
        payload, _, sig = session_id.rpartition(".")
        if not payload or not hmac.compare_digest(sig.encode(), self._sign(payload).encode()):
            return None
        if session_id in self._ended:
            return None
        version = payload.rpartition(".")[2]
        return version if version in HANDSHAKE_VERSIONS else None

    def end(self, session_id: str) -> None:
        self._ended[session_id] = None
        while len(self._ended) > self._max_ended:
            self._ended.popitem(last=False)
