"""Database errors as HTTP answers.

    HTTPException (ember.exceptions)
     └── DatabaseError              a database failure with an HTTP status
          ├── Conflict              409: unique or foreign-key violation
          ├── DatabaseUnavailable   503 + Retry-After: the server is down or restarting
          │    └── PoolExhausted    503 + Retry-After: no connection free within acquire_timeout
          └── QueryTimeout          504: command_timeout or statement_timeout hit

:func:`translate` turns asyncpg's exceptions into these; it runs where a
connection handed out by :mod:`ember.db` is released (injection,
``db.connection()``, ``db.transaction()``) and as the app's exception handler for
asyncpg errors raised anywhere else.  Bodies never carry the DSN, the query or
row values: only the constraint name and a hint.
"""

from __future__ import annotations

import re
from typing import Any

from ember.exceptions import HTTPException

#: seconds a client is told to wait before retrying a 503
RETRY_AFTER = 1


class DatabaseError(HTTPException):
    """A database failure that answers with ``status_code`` and a JSON ``detail``."""

    code = "database_error"

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(status_code, {"error": self.code, "message": message, **extra},
                         headers)
        self.message = message

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class Conflict(DatabaseError):
    """409: the write violates a unique or foreign-key constraint."""

    code = "conflict"

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(409, message, constraint=constraint)
        self.constraint = constraint


class DatabaseUnavailable(DatabaseError):
    """503 with ``Retry-After``: the database cannot be reached right now."""

    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(503, message, headers={"retry-after": str(RETRY_AFTER)})


class PoolExhausted(DatabaseUnavailable):
    """503 with ``Retry-After``: every pooled connection stayed busy past ``acquire_timeout``."""

    code = "pool_exhausted"


class QueryTimeout(DatabaseError):
    """504: the query ran longer than ``command_timeout`` (or the server's statement_timeout)."""

    code = "query_timeout"

    def __init__(self, message: str = "the database query timed out") -> None:
        super().__init__(504, message)


def _asyncpg() -> Any:
    import asyncpg

    return asyncpg


def translate(exc: BaseException, *, timeouts: bool = True,
              connecting: bool = False) -> DatabaseError | None:
    """The :class:`DatabaseError` for an asyncpg (or socket) error, or ``None`` to keep it.

    ``timeouts``: whether a bare ``TimeoutError`` means a query timeout (true where
    it came out of a block holding a database connection).  ``connecting``: any
    ``OSError`` means the database is unreachable (while opening a connection);
    otherwise only connection errors do (a handler's ``FileNotFoundError`` stays a 500).
    """
    if isinstance(exc, DatabaseError):
        return exc
    asyncpg = _asyncpg()
    errors = asyncpg.exceptions
    if isinstance(exc, errors.UniqueViolationError):
        return Conflict("a row with the same unique value already exists",
                        getattr(exc, "constraint_name", None))
    if isinstance(exc, errors.ForeignKeyViolationError):
        return Conflict("the row refers to a row that does not exist, or is still referred "
                        "to", getattr(exc, "constraint_name", None))
    if isinstance(exc, errors.QueryCanceledError):  # statement_timeout, pg_cancel_backend
        return QueryTimeout()
    if isinstance(exc, TimeoutError):  # NOTE: before OSError, of which it is a subclass
        return QueryTimeout() if timeouts else None
    if isinstance(exc, (errors.PostgresConnectionError, errors.CannotConnectNowError,
                        errors.AdminShutdownError, errors.CrashShutdownError,
                        errors.ConnectionDoesNotExistError, errors.TooManyConnectionsError,
                        ConnectionError)) or (connecting and isinstance(exc, OSError)):
        return DatabaseUnavailable()
    if isinstance(exc, errors.InternalClientError) or (
            isinstance(exc, errors.InterfaceError) and _LOST.search(str(exc))):
        # NOTE: after a server restart a pooled connection's protocol can be left in a
        # failed state: asyncpg raises InternalClientError ("cannot switch to state 12")
        # or InterfaceError ("connection is closed", "another operation is cancelling")
        # for what is a lost connection; the pool replaces it, a retry works.
        return DatabaseUnavailable()
    return None


_LOST = re.compile(r"closed|cancelling|connection (?:was )?lost|connection reset", re.I)


__all__ = ["Conflict", "DatabaseError", "DatabaseUnavailable", "PoolExhausted", "QueryTimeout",
           "translate"]
