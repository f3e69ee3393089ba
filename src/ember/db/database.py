"""``Database``: one asyncpg pool per worker, opened and closed with the app.

The pool is created when a worker starts (``app.add_database(db)`` or
``Ember(database=db)`` registers the hooks) and closed when it stops; a forked
worker never uses its parent's sockets.  When the database is down at start,
the worker still starts: the pool is created empty and connects on demand, so
requests answer 503 until the database returns and then recover by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from ember._redact import redact, redact_url
from ember.db.errors import DatabaseUnavailable, PoolExhausted, translate
from ember.exceptions import ConfigError, require

logger = logging.getLogger("ember.db")

DEFAULT_URL = "postgresql://postgres@localhost:5432/postgres"


def _positive(name: str, value: Any, *, allow_none: bool = False, integer: bool = False) -> Any:
    if value is None and allow_none:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0 \
            or value == float("inf"):
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise ConfigError(f"{name} must be {kind}{' or None' if allow_none else ''}, "
                          f"got {value!r}")
    return value


def _check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"Database url must be a postgresql:// URL string, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigError(f"invalid database URL {redact_url(url)!r}: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"database URL must start with postgresql:// or postgres://, got "
                          f"{redact_url(url)!r}")
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Database:
    """A PostgreSQL database reached through an asyncpg pool (one pool per worker).

    ``url``: a ``postgresql://user:password@host:port/dbname`` DSN (default
    ``$DATABASE_URL``, then ``postgresql://postgres@localhost:5432/postgres``).
    ``min_size``/``max_size``: connections kept open / at most, per worker.
    ``statement_cache_size``: prepared statements cached per connection (0 behind
    PgBouncer in transaction mode).  ``command_timeout``: seconds a query may run
    before it is cancelled (504).  ``acquire_timeout``: seconds a request waits for
    a free connection before a 503 with ``Retry-After``.  ``connect_timeout``:
    seconds to open one connection.  ``init``: ``async def init(conn)`` run on each
    new connection after the JSON codecs are set.  Other keywords go to
    :func:`asyncpg.create_pool` (``server_settings``, ``ssl``, ...).

    Errors raised by this class and by the connections it hands out become HTTP
    answers (see :mod:`ember.db.errors`); the DSN's password never appears in a log
    line or an error message.
    """

    def __init__(self, url: str | None = None, *, min_size: int = 2, max_size: int = 10,
                 statement_cache_size: int = 1024, command_timeout: float | None = 30.0,
                 acquire_timeout: float = 5.0, connect_timeout: float = 5.0,
                 max_inactive_connection_lifetime: float = 300.0,
                 init: Callable[[Any], Any] | None = None, **pool_options: Any) -> None:
        require("asyncpg", "postgres", "ember.db.Database")
        if url is None:
            url = os.environ.get("DATABASE_URL") or DEFAULT_URL
        self.url = _check_url(url)
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
            raise ConfigError(f"min_size must be an integer >= 0, got {min_size!r}")
        self.max_size = _positive("max_size", max_size, integer=True)
        if min_size > max_size:
            raise ConfigError(f"min_size ({min_size}) must not exceed max_size ({max_size})")
        self.min_size = min_size
        if isinstance(statement_cache_size, bool) or not isinstance(statement_cache_size, int) \
                or statement_cache_size < 0:
            raise ConfigError(f"statement_cache_size must be an integer >= 0, got "
                              f"{statement_cache_size!r}")
        self.statement_cache_size = statement_cache_size
        self.command_timeout = _positive("command_timeout", command_timeout, allow_none=True)
        self.acquire_timeout = _positive("acquire_timeout", acquire_timeout)
        self.connect_timeout = _positive("connect_timeout", connect_timeout)
        self.max_inactive_connection_lifetime = max_inactive_connection_lifetime
        if init is not None and not callable(init):
            raise ConfigError(f"init must be an async function init(conn), got {init!r}")
        self._init = init
        self.pool_options = pool_options
        # NOTE: one pool (and its gate, see acquire) per event loop and process, as the
        # caches keep their clients.
        self._pools: weakref.WeakKeyDictionary[Any, tuple[int, Any, asyncio.Semaphore]] = \
            weakref.WeakKeyDictionary()
        self._down = False

    # -- the pool -----------------------------------------------------------------------

    async def _setup(self, conn: Any) -> None:
        for typename in ("json", "jsonb"):
            await conn.set_type_codec(typename, encoder=_json_dumps, decoder=orjson.loads,
                                      schema="pg_catalog", format="text")
        if self._init is not None:
            result = self._init(conn)
            if asyncio.iscoroutine(result):
                await result

    def _create_pool(self, min_size: int) -> Any:
        import asyncpg

        return asyncpg.create_pool(
            self.url, min_size=min_size, max_size=self.max_size,
            statement_cache_size=self.statement_cache_size,
            command_timeout=self.command_timeout, timeout=self.connect_timeout,
            max_inactive_connection_lifetime=self.max_inactive_connection_lifetime,
            init=self._setup, **self.pool_options)

    async def startup(self) -> None:
        """Open this worker's pool (``min_size`` connections); never raises.

        A database that is down is logged (without the password) and the pool is
        created empty: requests get 503 until it is back.
        """
        loop = asyncio.get_running_loop()
        entry = self._pools.get(loop)
        if entry is not None and entry[0] == os.getpid():
            return
        try:
            pool = await self._create_pool(self.min_size)
            self._ok()
        except Exception as exc:
            self._failed(exc)
            pool = await self._create_pool(0)  # NOTE: connects on first acquire
        self._pools[loop] = (os.getpid(), pool, asyncio.Semaphore(self.max_size))

    async def shutdown(self) -> None:
        """Close this worker's pool: waits for released connections, terminates the rest."""
        entry = self._pools.pop(asyncio.get_running_loop(), None)
        if entry is None or entry[0] != os.getpid():
            return  # NOTE: a parent's pool is not ours to close
        pool = entry[1]
        try:
            await asyncio.wait_for(pool.close(), 10)
        except Exception:
            logger.debug("closing the database pool failed; terminating it", exc_info=True)
            pool.terminate()

    def _entry(self) -> tuple[int, Any, asyncio.Semaphore]:
        entry = self._pools.get(asyncio.get_running_loop())
        if entry is None or entry[0] != os.getpid():
            raise RuntimeError("the database pool is not open in this worker: register the "
                               "Database with app.add_database(db) (or Ember(database=db)), "
                               "or await db.startup() yourself")
        return entry

    @property
    def pool(self) -> Any:
        """This worker's ``asyncpg.Pool`` (``RuntimeError`` before the app started)."""
        return self._entry()[1]

    @property
    def started(self) -> bool:
        """Whether this process has an open pool on the running loop."""
        try:
            self.pool  # noqa: B018
        except RuntimeError:
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            logger.warning("database %s unreachable (%s: %s); answering 503 until it returns",
                           redact_url(self.url), type(exc).__name__,
                           redact(exc, secrets=[urlsplit(self.url).password]))

    def _ok(self) -> None:
        if self._down:
            self._down = False
            logger.warning("database %s is reachable again", redact_url(self.url))

    # -- connections ----------------------------------------------------------------------

    async def acquire(self) -> Any:
        """A connection from this worker's pool; release it with :meth:`release`.

        Raises :class:`PoolExhausted` (503) when none is free within
        ``acquire_timeout`` and :class:`DatabaseUnavailable` (503) when the
        database cannot be reached.
        """
        _, pool, gate = self._entry()
        # PERF/NOTE: waiters queue on a FIFO semaphore, not in asyncpg's pool: its
        # asyncio.Queue lets a newcomer take a just-released connection from under a woken
        # waiter, which goes back to the end of the line — under load that unfairness is
        # the latency tail.  Past the gate a connection is free, so the pool never waits.
        if gate.locked():
            try:
                async with asyncio.timeout(self.acquire_timeout):
                    await gate.acquire()
            except TimeoutError:
                raise PoolExhausted(f"all {self.max_size} database connections stayed busy "
                                    f"for {self.acquire_timeout:g} s; retry shortly") from None
        else:
            await gate.acquire()  # free: returns at once
        # NOTE: unbounded when a connection is free or may be opened (connecting is bounded
        # by connect_timeout); bounded when db.pool is used directly and holds them all.
        busy = not pool.get_idle_size() and pool.get_size() >= self.max_size
        try:
            conn = await (pool.acquire(timeout=self.acquire_timeout) if busy
                          else pool.acquire())
        except BaseException as exc:
            gate.release()
            if busy and isinstance(exc, TimeoutError):
                raise PoolExhausted(f"all {self.max_size} database connections stayed busy "
                                    f"for {self.acquire_timeout:g} s; retry shortly") from None
            if not isinstance(exc, Exception):
                raise
            # NOTE: a connect timeout means an unreachable database, not a slow query
            mapped = DatabaseUnavailable() if isinstance(exc, TimeoutError) else \
                translate(exc, timeouts=False, connecting=True)
            if mapped is None:
                raise
            self._failed(exc)
            raise mapped from None
        self._ok()
        return conn

    async def release(self, conn: Any) -> None:
        """Give ``conn`` back to the pool (a broken one is closed, never reused)."""
        entry = self._pools.get(asyncio.get_running_loop())
        if entry is None or entry[0] != os.getpid():  # NOTE: released after shutdown
            with contextlib.suppress(Exception):
                conn.terminate()
            return
        _, pool, gate = entry
        try:
            await pool.release(conn)
        except Exception:
            logger.debug("releasing a database connection failed", exc_info=True)
            with contextlib.suppress(Exception):
                conn.terminate()
        finally:
            gate.release()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """``async with db.connection() as conn:`` — a pooled connection, always released.

        asyncpg errors leaving the block become :class:`~ember.db.errors.DatabaseError`.
        """
        conn = await self.acquire()
        try:
            yield conn
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await self.release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[Any]:
        """``async with db.transaction() as conn:`` — commit at the end, rollback on error.

        ``options`` go to asyncpg's ``conn.transaction()`` (``isolation``,
        ``readonly``, ``deferrable``).  A cancelled task (client disconnect) rolls back.
        """
        async with self.connection() as conn, conn.transaction(**options):
            yield conn

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """``{"ok": bool, "latency_ms": float, "pool": {...}, "error": str?}``; never raises."""
        started = time.perf_counter()
        result: dict[str, Any] = {"ok": False}
        try:
            pool = self.pool
            result["pool"] = {"size": pool.get_size(), "idle": pool.get_idle_size(),
                              "min": self.min_size, "max": self.max_size}
            async with asyncio.timeout(timeout):
                await pool.fetchval("SELECT 1")
            result["ok"] = True
            self._ok()
        except Exception as exc:
            result["error"] = (f"{type(exc).__name__}: "
                               f"{redact(exc, secrets=[urlsplit(self.url).password])}")[:300]
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    # -- the app ---------------------------------------------------------------------------

    def attach(self, app: Any) -> None:
        """Open the pool on each worker's start, close it on stop, map asyncpg errors."""
        import asyncpg

        from ember.responses import JSONResponse

        app.on_startup(self.startup)
        app.on_shutdown(self.shutdown)

        def handle(request: Any, exc: Exception) -> Any:
            mapped = translate(exc, timeouts=False)
            if mapped is None:
                raise exc  # NOTE: the app's 500 path (logged there, generic body)
            logger.info("%s %s: %s answered %d", request.method, request.path,
                        type(exc).__name__, mapped.status_code)
            return JSONResponse({"detail": mapped.detail}, mapped.status_code,
                                headers=mapped.headers)

        for cls in (asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.exceptions.InternalClientError):
            app._exception_handlers.setdefault(cls, handle)

    def __repr__(self) -> str:
        return (f"Database({redact_url(self.url)!r}, min_size={self.min_size}, "
                f"max_size={self.max_size})")
