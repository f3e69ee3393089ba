"""Handler parameters by annotation: ``conn: Connection``, ``pool: Pool``, ``db: Database``.

A ``Connection`` is acquired after every other parameter validated (a 422 never
takes a connection) and released when the handler returns, raises or is
cancelled (client disconnect, route timeout): asyncpg cancels the running query
on the server and the pool waits for that before reusing the connection.  A
handler decorated with :func:`transactional` runs inside a transaction that
commits when it returns and rolls back when it raises or is cancelled.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

from ember.db.errors import translate
from ember.exceptions import ConfigError

_TRANSACTION = "__ember_db_transaction__"


def transactional(fn: Callable[..., Any] | None = None, *, isolation: str | None = None,
                  readonly: bool = False, deferrable: bool = False) -> Any:
    """Run the handler's injected connection in one transaction.

    ``@app.post("/orders")`` then ``@transactional`` (or
    ``@transactional(isolation="serializable")``) on a handler taking
    ``conn: Connection``: commit when the handler returns (whatever the status of
    the response it returns), rollback when it raises (an ``HTTPException``
    included) or is cancelled.  ``ConfigError`` when the handler has no
    ``Connection`` parameter.
    """
    options = {"isolation": isolation, "readonly": readonly, "deferrable": deferrable}

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(func):
            raise ConfigError(f"@transactional needs an 'async def' handler, got {func!r}")
        if not _takes_connection(func):
            raise ConfigError(f"@transactional on {func.__qualname__}: the handler needs a "
                              "parameter annotated 'conn: Connection' (from ember.db)")
        setattr(func, _TRANSACTION, options)
        return func

    return mark(fn) if fn is not None else mark


def _takes_connection(func: Callable[..., Any]) -> bool:
    from asyncpg import Connection  # NOTE: ember.db.Connection is this class

    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return True  # NOTE: unresolvable annotations: trust the caller, checked at injection
    return any(isinstance(tp, type) and issubclass(tp, Connection) for tp in hints.values())


def _database(request: Any) -> Any:
    db = getattr(request.app, "database", None)
    if db is None:
        raise RuntimeError("a handler asks for a database connection but the app has no "
                           "Database: app.add_database(Database(url)) or Ember(database=...)")
    return db


def connection_provider(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """The per-request provider of ``conn: Connection`` for ``handler``."""

    @contextlib.asynccontextmanager
    async def provide(request: Any) -> AsyncIterator[Any]:
        db = _database(request)
        conn = await db.acquire()
        try:
            # NOTE: read at request time so decorator order does not matter
            options = getattr(handler, _TRANSACTION, None)
            if options is None:
                yield conn
            else:
                tr = conn.transaction(**options)
                await tr.start()
                try:
                    yield conn
                except BaseException:
                    # NOTE: a cancelled query leaves the connection busy: the pool's reset
                    # on release rolls back then, so a failed rollback here is harmless.
                    if not conn.is_closed():
                        with contextlib.suppress(Exception):
                            await tr.rollback()
                    raise
                await tr.commit()
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await db.release(conn)

    return provide


def pool_provider(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """The provider of ``pool: Pool`` (this worker's asyncpg pool)."""

    @contextlib.asynccontextmanager
    async def provide(request: Any) -> AsyncIterator[Any]:
        yield _database(request).pool

    return provide


def database_provider(handler: Callable[..., Any]) -> Callable[[Any], Any]:
    """The provider of ``db: Database`` (the app's Database)."""

    @contextlib.asynccontextmanager
    async def provide(request: Any) -> AsyncIterator[Any]:
        yield _database(request)

    return provide


def register() -> None:
    """Teach :mod:`ember.injection` the database types (on ``import ember.db``)."""
    import asyncpg

    from ember.db.database import Database
    from ember.injection import register_resource

    register_resource(asyncpg.Connection, connection_provider)
    register_resource(asyncpg.pool.PoolConnectionProxy, connection_provider)
    register_resource(asyncpg.Pool, pool_provider)
    register_resource(Database, database_provider)
