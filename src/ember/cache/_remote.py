"""What the Redis and Memcached caches share: per-worker clients and versioned keys.

Invalidation never scans keys.  Three small *version* keys hold a random token:

* ``{prefix}gen``            — bumped by :meth:`clear`;
* ``{prefix}pv:<h(path)>``   — bumped by ``invalidate(path)``;
* ``{prefix}qv:<h(base)>``   — bumped by ``invalidate(path, query)``.

An entry lives at ``{prefix}e:<h(gen|pv|qv|key)>``, so bumping a version makes
the old entries unreachable; they expire on their own.  Tokens are random (not
counters) and a version key outlives every entry written before it changed
(``ttl`` + a margin), so an expired or evicted version key can never bring an
invalidated entry back.  The lookup returns the entry key it read, and the
store writes exactly that key: a response computed before an invalidation is
stored where nobody will look for it.
"""

from __future__ import annotations

import asyncio
import os
import re
import weakref
from typing import Any

from ember.cache.base import RouteCache, logger
from ember.cache.keys import digest
from ember.exceptions import ConfigError

#: extra lifetime of a version key beyond the entry ttl
VERSION_MARGIN = 60.0

_PREFIX_RE = re.compile(r"[!-~]{1,100}")  # printable ASCII, no spaces (Memcached-safe)


class RemoteCache(RouteCache):
    """A cache in another process, reached through one client per worker and loop."""

    def __init__(self, ttl: float | None, *, prefix: str, timeout: float,
                 **options: Any) -> None:
        super().__init__(ttl, **options)
        if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(f"prefix must be 1-100 printable ASCII characters without spaces, "
                              f"got {prefix!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
                not 0 < timeout <= 60:
            raise ConfigError(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
        self.prefix = prefix
        self.timeout = float(timeout)
        # NOTE: one client per event loop (and per process: a forked worker never uses
        # its parent's sockets); a loop that goes away takes its entry with it.
        self._clients: weakref.WeakKeyDictionary[Any, tuple[int, Any]] = \
            weakref.WeakKeyDictionary()

    # -- the client -------------------------------------------------------------------

    def _connect(self) -> Any:
        """A new client (no I/O yet)."""
        raise NotImplementedError

    async def _close(self, client: Any) -> None:
        raise NotImplementedError

    def client(self) -> Any:
        """This worker's client for the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        pid = os.getpid()
        if entry is None or entry[0] != pid:
            entry = (pid, self._connect())
            self._clients[loop] = entry
        return entry[1]

    @property
    def connected(self) -> bool:
        """Whether this process has a client for the running (or any) event loop."""
        pid = os.getpid()
        return any(entry[0] == pid for entry in self._clients.values())

    async def startup(self) -> None:
        """Connect now rather than on the first request; failures are logged, not raised."""
        try:
            await self._ping()
            self._ok()
        except Exception as exc:
            self._failed("connect", exc)

    async def _ping(self) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        """Close this worker's connections for the running loop (idempotent)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is None or entry[0] != os.getpid():
            return  # NOTE: a parent's client is not ours to close
        client = entry[1]
        try:
            await asyncio.wait_for(self._close(client), self.timeout)
        except Exception:  # shutting down: a backend that is gone cannot be closed politely
            logger.debug("%s: error while closing the connection", self.backend, exc_info=True)

    # -- keys -------------------------------------------------------------------------

    def gen_key(self) -> str:
        """The cache-wide version key (bumped by :meth:`clear`)."""
        return f"{self.prefix}gen"

    def path_version_key(self, path: str) -> str:
        """The version key of one path (bumped by ``invalidate(path)``)."""
        return f"{self.prefix}pv:{digest(path)}"

    def query_version_key(self, path: str, query: str) -> str:
        """The version key of one path + query (bumped by ``invalidate(path, query)``)."""
        return f"{self.prefix}qv:{digest(path, query)}"

    def entry_key(self, versions: tuple[str, str, str], material: str) -> str:
        """Where an entry lives (fixed length, whatever the URL)."""
        return f"{self.prefix}e:{digest(*versions, material)}"

    def version_ttl(self) -> float | None:
        """How long a version key must live (``None``: forever, like the entries)."""
        return None if self.ttl is None else self.ttl + VERSION_MARGIN

    @staticmethod
    def new_token() -> str:
        """A fresh random version token."""
        return os.urandom(8).hex()
