"""Server-side sessions: a signed cookie holds only an id; data lives in a store.

``app.add_middleware(SessionMiddleware(secret_key="..."))`` gives every request a
dict-like ``request.session``.  The default store is in memory (one process);
use ``RedisSessionStore(url)`` when several workers or hosts serve the app.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from typing import Any

import orjson

from ember.exceptions import ConfigError


class Session(dict):  # type: ignore[type-arg]
    """A dict that remembers whether it was changed."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None) -> None:
        super().__init__(data or {})
        self.sid = sid
        self.modified = False

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        """Empty the session (the cookie is deleted)."""
        self.modified = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        """Remove and return ``key``."""
        self.modified = True
        return super().pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Update like a dict."""
        self.modified = True
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Like ``dict.setdefault``."""
        if key not in self:
            self.modified = True
        return super().setdefault(key, default)


class MemorySessionStore:
    """Sessions in this process's memory: bounded, expiring."""

    def __init__(self, max_sessions: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.max_sessions = max_sessions

    async def load(self, sid: str) -> dict[str, Any] | None:
        """The data of ``sid``, or None when unknown or expired."""
        item = self._data.get(sid)
        if item is None:
            return None
        expires, raw = item
        if expires < time.time():
            self._data.pop(sid, None)
            return None
        self._data.move_to_end(sid)
        return orjson.loads(raw)

    async def save(self, sid: str, data: dict[str, Any], max_age: int) -> None:
        """Store ``data`` for ``max_age`` seconds."""
        self._data[sid] = (time.time() + max_age, orjson.dumps(data))
        self._data.move_to_end(sid)
        while len(self._data) > self.max_sessions:
            self._data.popitem(last=False)

    async def delete(self, sid: str) -> None:
        """Forget ``sid``."""
        self._data.pop(sid, None)


class RedisSessionStore:
    """Sessions in Redis, shared by every worker and host (redis.asyncio, lazy)."""

    def __init__(self, url: str = "redis://localhost:6379", prefix: str = "ember:session:"):
        self.url = url
        self.prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            from ember.exceptions import require

            redis = require("redis.asyncio", "cache", "RedisSessionStore")
            self._client = redis.from_url(self.url)
        return self._client

    async def load(self, sid: str) -> dict[str, Any] | None:
        """The data of ``sid``, or None."""
        raw = await self._redis().get(self.prefix + sid)
        return orjson.loads(raw) if raw else None

    async def save(self, sid: str, data: dict[str, Any], max_age: int) -> None:
        """Store ``data`` with a TTL."""
        await self._redis().set(self.prefix + sid, orjson.dumps(data), ex=max_age)

    async def delete(self, sid: str) -> None:
        """Forget ``sid``."""
        await self._redis().delete(self.prefix + sid)


class SessionMiddleware:
    """Loads ``request.session`` before the handler and saves it after."""

    def __init__(self, secret_key: str, *, cookie_name: str = "ember_session",
                 max_age: int = 14 * 24 * 3600, store: Any = None, https_only: bool = False,
                 same_site: str = "lax", path: str = "/") -> None:
        if not isinstance(secret_key, str) or len(secret_key) < 16:
            raise ConfigError("SessionMiddleware needs a secret_key of at least 16 characters "
                              "(e.g. secrets.token_urlsafe(32))")
        if same_site.lower() not in ("lax", "strict", "none"):
            raise ConfigError(f"same_site must be lax, strict or none, got {same_site!r}")
        self._key = secret_key.encode()
        self.cookie_name = cookie_name
        self.max_age = int(max_age)
        self.store = store if store is not None else MemorySessionStore()
        self.https_only = https_only
        self.same_site = same_site
        self.path = path

    def _sign(self, sid: str) -> str:
        mac = hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{sid}.{mac}"

    def _unsign(self, value: str) -> str | None:
        sid, _, _mac = value.rpartition(".")
        if not sid or not hmac.compare_digest(self._sign(sid), value):
            return None
        return sid

    async def __call__(self, request: Any, call_next: Any) -> Any:
        raw = request.cookies.get(self.cookie_name)
        sid = self._unsign(raw) if raw else None
        data = await self.store.load(sid) if sid else None
        session = Session(data, sid if data is not None else None)
        request._session = session
        response = await call_next(request)
        if session.modified:
            if not session:
                if session.sid:
                    await self.store.delete(session.sid)
                response.delete_cookie(self.cookie_name, path=self.path)
            else:
                sid = session.sid or secrets.token_urlsafe(24)
                await self.store.save(sid, dict(session), self.max_age)
                response.set_cookie(self.cookie_name, self._sign(sid), max_age=self.max_age,
                                    path=self.path, httponly=True, secure=self.https_only,
                                    samesite=self.same_site)
        return response
