"""PostgreSQL for Ember apps, on asyncpg (``pip install "ember-api[postgres]"``).

::

    from ember import Ember
    from ember.db import Connection, Database

    db = Database(os.environ.get("DATABASE_URL", "postgresql://postgres@localhost/postgres"))
    app = Ember(database=db)

    @app.get("/users/{id:int}")
    async def user(id: int, conn: Connection):
        return dict(await conn.fetchrow("SELECT * FROM users WHERE id = $1", id))

``import ember`` never imports asyncpg; ``import ember.db`` does (and raises an
error naming the extra when it is missing).  See docs/database.md.
"""

from __future__ import annotations

from ember.exceptions import require

require("asyncpg", "postgres", "ember.db")

import asyncpg  # noqa: E402

from ember.db import _inject  # noqa: E402
from ember.db._inject import transactional  # noqa: E402
from ember.db.database import Database  # noqa: E402
from ember.db.errors import (  # noqa: E402
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    PoolExhausted,
    QueryTimeout,
)

#: annotate a handler parameter ``conn: Connection`` to get a pooled connection
Connection = asyncpg.Connection
#: annotate ``pool: Pool`` to get this worker's pool
Pool = asyncpg.Pool

_inject.register()

__all__ = ["Conflict", "Connection", "Database", "DatabaseError", "DatabaseUnavailable", "Pool",
           "PoolExhausted", "QueryTimeout", "transactional"]
