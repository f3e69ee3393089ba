"""PgVectorBackend: SemanticCache shared through PostgreSQL + pgvector."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from ember.ai.semantic_cache import SemanticCache, hashed_trigram_embedder
from ember.db import Database
from ember.db.pgvector import PgVectorBackend
from ember.exceptions import ConfigError

pytestmark = pytest.mark.services


def test_shared_semantic_cache(pgvector_server: str) -> None:
    async def go() -> None:
        embed = hashed_trigram_embedder(64)
        first = PgVectorBackend(pgvector_server, table="sc_shared")
        second = PgVectorBackend(Database(pgvector_server, min_size=1, max_size=2),
                                 table="sc_shared")
        await second.database.startup()
        try:
            a = SemanticCache(threshold=0.8, embedder=embed, backend=first)
            b = SemanticCache(threshold=0.8, embedder=embed, backend=second)
            assert await b.get("what is the capital of France?") is None
            await a.set("what is the capital of France?", {"answer": "Paris"})
            # another "host" (its own pool) finds it, for a similar prompt too
            assert await b.get("What is the capital of France") == {"answer": "Paris"}
            assert await b.get("how do magnets work?") is None
            score, prompt, _ = await b.lookup("what is the capital of France?")
            assert math.isclose(score, 1.0, abs_tol=1e-5)
            assert prompt == "what is the capital of France?"
            with pytest.raises(ValueError, match="dimensions"):
                await second.search([1.0, 0.0])
            with pytest.raises(ValueError, match="finite"):
                await second.search([math.nan] * 64)
            await b.clear()
            assert await a.get("what is the capital of France?") is None
        finally:
            await first.close()
            await second.database.shutdown()
    asyncio.run(go())


def test_expiry_and_max_entries(pgvector_server: str) -> None:
    async def go() -> None:
        backend = PgVectorBackend(pgvector_server, table="sc_small", max_entries=3)
        try:
            for i in range(5):
                await backend.add([1.0, float(i), 0.0], f"p{i}", i)
            pool = backend.database.pool
            assert await pool.fetchval("SELECT count(*) FROM sc_small") == 3
            await backend.clear()
            await backend.add([0.0, 0.0, 1.0], "gone", "x", time.monotonic() - 1)
            assert await backend.search([0.0, 0.0, 1.0]) is None  # expired
            await backend.add([0.0, 0.0, 1.0], "live", "y", time.monotonic() + 600)
            found = await backend.search([0.0, 0.0, 1.0])
            assert found is not None and found[1:] == ("live", "y")
        finally:
            await backend.close()
    asyncio.run(go())


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="identifier"):
        PgVectorBackend("postgresql://h/db", table="x; DROP TABLE y")
    with pytest.raises(ConfigError, match="Database"):
        PgVectorBackend(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_entries"):
        PgVectorBackend("postgresql://h/db", max_entries=0)


def test_server_without_pgvector_says_so(db: Any) -> None:
    async def go() -> None:
        backend = PgVectorBackend(db.url, table="sc_none")
        try:
            assert await backend.search([1.0, 0.0]) is None  # nothing stored: no extension needed
            with pytest.raises(RuntimeError, match="pgvector"):
                await backend.add([1.0, 0.0], "p", "a")
        finally:
            await backend.close()
    asyncio.run(go())
