"""Server-side sessions: a signed cookie holds only an id; data lives in a store.

``app.add_middleware(SessionMiddleware(secret_key="..."))`` gives every request a
dict-like ``request.session``.  The default store is in memory (one process);
use ``RedisSessionStore(url)`` when several workers or hosts serve the app.
With ``SessionMiddleware(..., lazy=True)`` the store is read only when a handler calls
``await request.session.load()``: requests that never load the session never talk to it.

Session fixation (OWASP): an id the client brought is never promoted to carry data it
did not have.  ``request.session.regenerate()`` (call it at login, and at any privilege
change) moves the data to a new id and deletes the old one; the id is also renewed
automatically when a session was ``clear()``-ed and then given data in the same request
(the usual "log out whoever was there, log in the user" handler).  An id the store does
not know is never reused either.

Cookie flags: ``HttpOnly`` always; ``SameSite=Lax`` by default; ``Secure`` when the
request arrived over TLS or through a trusted proxy that said https
(``https_only=None``, the default), always (``True``) or never (``False``);
``SameSite=None`` needs ``https_only=True`` (browsers drop it otherwise).

When the store is down or hung (Redis killed or stopped): a request without a session
cookie never touches the store; one with a cookie waits at most ``timeout`` seconds for
it, then its handler runs with a session that cannot be used: the first read or write of
``request.session`` answers **503 with Retry-After** (so a handler that never uses the
session — a status page, a public GET — is served as usual).  With ``fail_open=True`` it
continues with an empty anonymous session that is not saved instead
(``request.session.unavailable`` is True).  Health
probes never run this middleware (``app.add_health``).  docs/deployment.md has the
failure policy of every shared-state feature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import weakref
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
        #: clear() was called in this request: data set afterwards gets a new id
        self.cleared = False
        #: regenerate() was called: save under a new id, delete the old one
        self.renew = False
        #: the store could not be reached and the middleware fails open: not saved
        self.unavailable = False
        #: the data was read (always, except for a LazySession before load())
        self.loaded = True

    async def load(self) -> Session:
        """This session, read from the store if it was not yet (see :class:`LazySession`)."""
        return self

    def regenerate(self) -> None:
        """Give this session a new id (same data) and delete the old one from the store.

        Call it when the user logs in or changes privilege, so an id an attacker
        planted in the victim's browser (session fixation) is worth nothing.
        """
        self.renew = True
        self.modified = True

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.modified = True
        super().__delitem__(key)

    def clear(self) -> None:
        """Empty the session (the cookie is deleted; data set afterwards gets a new id)."""
        self.modified = True
        self.cleared = True
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


class LazySession(Session):
    """The session of ``SessionMiddleware(lazy=True)``: the store is read only by
    ``await request.session.load()``, so a request that never loads it never talks to
    the store.  Using it before ``load()`` raises a RuntimeError saying so."""

    def __init__(self, sid: str, loader: Any) -> None:
        super().__init__(None, None)
        self.loaded = False
        self._wanted = sid
        self._loader = loader

    async def load(self) -> Session:
        """Read the session (once); a store outage raises 503 unless the app fails open."""
        if not self.loaded:
            data = await self._loader(self._wanted)
            self.loaded = True
            if data is _UNAVAILABLE:
                self.unavailable = True
            elif data is not None:
                dict.update(self, data)
                self.sid = self._wanted
        return self

    def _need(self) -> None:
        if not self.loaded:
            raise RuntimeError("SessionMiddleware(lazy=True): call `await "
                               "request.session.load()` before using request.session")

    def __getitem__(self, key: str) -> Any:
        self._need()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._need()
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self._need()
        return super().__iter__()

    def __len__(self) -> int:
        self._need()
        return super().__len__()

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` (after :meth:`load`)."""
        self._need()
        return super().get(key, default)

    def keys(self) -> Any:
        """Like ``dict.keys`` (after :meth:`load`)."""
        self._need()
        return super().keys()

    def values(self) -> Any:
        """Like ``dict.values`` (after :meth:`load`)."""
        self._need()
        return super().values()

    def items(self) -> Any:
        """Like ``dict.items`` (after :meth:`load`)."""
        self._need()
        return super().items()

    def __setitem__(self, key: str, value: Any) -> None:
        self._need()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._need()
        super().__delitem__(key)

    def clear(self) -> None:
        """Like :meth:`Session.clear` (after :meth:`load`)."""
        self._need()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        """Like :meth:`Session.pop` (after :meth:`load`)."""
        self._need()
        return super().pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Like :meth:`Session.update` (after :meth:`load`)."""
        self._need()
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Like :meth:`Session.setdefault` (after :meth:`load`)."""
        self._need()
        return super().setdefault(key, default)

    def regenerate(self) -> None:
        """Like :meth:`Session.regenerate` (after :meth:`load`)."""
        self._need()
        super().regenerate()


class UnavailableSession(LazySession):
    """The session of a request whose store could not be read (fail closed): using it
    raises :class:`~ember.outages.StoreUnavailable` (503 + ``Retry-After``), so only the
    handlers that need the session fail, and never with a 500."""

    def __init__(self, sid: str) -> None:
        super().__init__(sid, None)

    async def load(self) -> Session:
        """Raise 503: the store is down."""
        self._need()
        return self

    def _need(self) -> None:
        from ember.outages import StoreUnavailable

        raise StoreUnavailable("the session store")


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
    """Sessions in Redis, shared by every worker and host (redis.asyncio, lazy).

    One client per event loop and process (never a parent's sockets after fork).
    Errors propagate (a session that cannot be loaded is not silently replaced by an
    empty one); their messages never carry the URL's password.
    """

    def __init__(self, url: str = "redis://localhost:6379", prefix: str = "ember:session:",
                 timeout: float = 0.5):
        from ember.cache.redis_cache import check_redis_url
        from ember.outages import check_timeout

        self.url = check_redis_url(url)
        self.prefix = prefix
        self.timeout = check_timeout(timeout, "RedisSessionStore timeout")
        self._clients: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = \
            weakref.WeakKeyDictionary()

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None or entry[0] != os.getpid():
            from ember.cache.redis_cache import redis_client

            entry = (os.getpid(), redis_client(self.url, self.timeout, "RedisSessionStore"))
            self._clients[loop] = entry
        return entry[1]

    async def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        # NOTE: redis-py's messages name host and port, never the password.  wait_for
        # bounds the call and gives redis-py the Task its own timeouts need.
        return await asyncio.wait_for(getattr(self._redis(), op)(*args, **kwargs),
                                      self.timeout)

    async def load(self, sid: str) -> dict[str, Any] | None:
        """The data of ``sid``, or None."""
        raw = await self._call("get", self.prefix + sid)
        return orjson.loads(raw) if raw else None

    async def save(self, sid: str, data: dict[str, Any], max_age: int) -> None:
        """Store ``data`` with a TTL."""
        await self._call("set", self.prefix + sid, orjson.dumps(data), ex=max_age)

    async def delete(self, sid: str) -> None:
        """Forget ``sid``."""
        await self._call("delete", self.prefix + sid)

    async def ping(self) -> None:
        """Raise unless Redis answers within ``timeout`` (readiness checks)."""
        await self._call("ping")

    async def close(self) -> None:
        """Close this loop's connections (idempotent)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None and entry[0] == os.getpid():
            await entry[1].aclose()

    def __repr__(self) -> str:
        from ember._redact import redact_url

        return f"RedisSessionStore({redact_url(self.url)!r})"


#: what a failed store call returns when the middleware fails open
_UNAVAILABLE: Any = object()
#: what a failed load returns when the middleware fails closed
_DOWN: Any = object()


class SessionMiddleware:
    """Loads ``request.session`` before the handler and saves it after.

    ``secret_key`` (at least 16 characters) signs the cookie; ``store`` defaults to a
    :class:`MemorySessionStore`; ``https_only`` None (default) sets ``Secure`` on
    requests that came over https, True always, False never; ``same_site`` is
    ``"lax"`` (default), ``"strict"`` or ``"none"`` (which needs ``https_only=True``);
    ``timeout`` bounds each store call (seconds); ``fail_open`` continues anonymous
    instead of answering 503 when the store is down (see the module doc); ``lazy``
    reads the store only when a handler calls ``await request.session.load()``
    (:class:`LazySession`).  Raises :class:`~ember.exceptions.ConfigError` for a bad combination.
    """

    #: the header the session id arrives in (route caches bypass requests carrying it)
    credential_headers = ("cookie",)

    def __init__(self, secret_key: str, *, cookie_name: str = "ember_session",
                 max_age: int = 14 * 24 * 3600, store: Any = None,
                 https_only: bool | None = None, same_site: str = "lax",
                 path: str = "/", timeout: float = 1.0, fail_open: bool = False,
                 lazy: bool = False) -> None:
        if not isinstance(secret_key, str) or len(secret_key) < 16:
            raise ConfigError("SessionMiddleware needs a secret_key of at least 16 characters "
                              "(e.g. secrets.token_urlsafe(32))")
        if not isinstance(same_site, str) or same_site.lower() not in ("lax", "strict", "none"):
            raise ConfigError(f"same_site must be lax, strict or none, got {same_site!r}")
        if https_only not in (None, True, False):
            raise ConfigError(f"https_only must be None (automatic), True or False, "
                              f"got {https_only!r}")
        if same_site.lower() == "none" and https_only is not True:
            raise ConfigError("same_site='none' needs https_only=True: browsers refuse "
                              "SameSite=None cookies without Secure")
        from ember.outages import Outage, check_timeout

        if not isinstance(fail_open, bool) or not isinstance(lazy, bool):
            raise ConfigError(f"fail_open and lazy must be True or False, got "
                              f"{fail_open!r}, {lazy!r}")
        self.lazy = lazy
        self.timeout = check_timeout(timeout, "SessionMiddleware timeout")
        self.fail_open = fail_open
        self._outage = Outage("the session store")
        self._key = secret_key.encode()
        self.cookie_name = cookie_name
        self.max_age = int(max_age)
        self.store = store if store is not None else MemorySessionStore()
        self.https_only = https_only
        self.same_site = same_site.lower()
        self.path = path

    def _sign(self, sid: str) -> str:
        mac = hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{sid}.{mac}"

    def _unsign(self, value: str) -> str | None:
        sid, _, _mac = value.rpartition(".")
        if not sid or not hmac.compare_digest(self._sign(sid), value):
            return None
        return sid

    async def shutdown(self) -> None:
        """Close the store's connections (the app calls this on stop)."""
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    def _secure(self, request: Any) -> bool:
        if self.https_only is not None:
            return self.https_only
        from ember.proxies import is_secure

        return is_secure(request)

    async def _store(self, op: str, *args: Any) -> Any:
        """One store call under the failure policy (ember.outages)."""
        from ember.outages import _FALLBACK, guard

        return await guard(getattr(self.store, op)(*args), timeout=self.timeout,
                           outage=self._outage, op=op,
                           fallback=_UNAVAILABLE if self.fail_open else _FALLBACK)

    async def _load(self, sid: str) -> Any:
        """The stored data, or :data:`_DOWN` when the store failed and we fail closed
        (the handler still runs; :class:`UnavailableSession` answers 503 on use)."""
        from ember.outages import StoreUnavailable

        try:
            return await self._store("load", sid)
        except StoreUnavailable:
            return _DOWN

    async def __call__(self, request: Any, call_next: Any) -> Any:
        raw = request.cookies.get(self.cookie_name)
        sid = self._unsign(raw) if raw else None
        # NOTE: no valid signed cookie: nothing to load, the store is never asked
        if sid and self.lazy:
            session: Session = LazySession(sid, lambda s: self._store("load", s))
        else:
            data = await self._load(sid) if sid else None
            if data is _DOWN:
                session = UnavailableSession(sid)  # type: ignore[arg-type]
            elif data is _UNAVAILABLE:
                session = Session(None, None)
                session.unavailable = True
            else:
                session = Session(data, sid if data is not None else None)
        request._session = session
        response = await call_next(request)
        if session.modified and session.loaded and not session.unavailable:
            old = session.sid
            if not session:
                if old:
                    await self._store("delete", old)
                response.delete_cookie(self.cookie_name, path=self.path)
            else:
                # NOTE: session fixation: a regenerate() or data set after clear() never
                # keeps the id the client brought
                if old is None or session.renew or session.cleared:
                    sid = secrets.token_urlsafe(24)
                    if old is not None:
                        await self._store("delete", old)
                else:
                    sid = old
                if await self._store("save", sid, dict(session), self.max_age) \
                        is _UNAVAILABLE:
                    return response  # NOTE: fail open: not saved, so no cookie for it
                session.sid = sid
                response.set_cookie(self.cookie_name, self._sign(sid), max_age=self.max_age,
                                    path=self.path, httponly=True,
                                    secure=self._secure(request),
                                    samesite=self.same_site.capitalize())
        return response
