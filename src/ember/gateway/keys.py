"""Virtual keys of the gateway, kept as data: memory, Redis or PostgreSQL.

A key record is a JSON document::

    {"id": "key_3f9c...", "name": "ci", "prefix": "sk-ember-AbC", "models": ["fast"],
     "budget": {"tokens": 1000000, "cost": null, "period": "day"},
     "limits": {"rpm": 60, "tpm": null, "max_concurrent": 4}, "team": "search",
     "owner": "ana@example.com", "metadata": {}, "expires_at": 1767225600.0,
     "revoked": false, "created_at": 1765000000.0}

The secret (``sk-ember-`` + 43 random characters) is shown once, when the key is
created or rotated; stores keep only its SHA-256 (``hash``), looked up by hash.  Each
worker caches a lookup (found or not) for :data:`CACHE_TTL` seconds, so a change made
through the admin API on any host applies everywhere within a second.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson

from ember._redact import redact_url

#: Seconds a worker trusts a key lookup (created, rotated, revoked keys apply after it).
CACHE_TTL = 1.0
SECRET_PREFIX = "sk-ember-"


def new_secret() -> str:
    """A new key secret (256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str | bytes) -> str:
    """The stored form of a secret."""
    raw = secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def new_id() -> str:
    """A public key id (not secret: it labels budgets, limits, spend)."""
    return "key_" + secrets.token_hex(8)


class KeyStoreUnavailable(Exception):
    """The key store could not be reached."""


class MemoryKeyStore:
    """Keys in this process (one worker; for tests and single-process deployments)."""

    shared = False

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._hashes: dict[str, str] = {}

    async def put(self, doc: dict[str, Any], secret_hash: str, old_hash: str | None = None
                  ) -> None:
        """Create or replace ``doc`` (and map ``secret_hash`` to it)."""
        if old_hash is not None:
            self._hashes.pop(old_hash, None)
        self._docs[doc["id"]] = {**doc, "hash": secret_hash}
        self._hashes[secret_hash] = doc["id"]

    async def get(self, key_id: str) -> dict[str, Any] | None:
        """The record of ``key_id``."""
        doc = self._docs.get(key_id)
        return dict(doc) if doc else None

    async def by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        """The record whose secret hashes to ``secret_hash``."""
        key_id = self._hashes.get(secret_hash)
        return await self.get(key_id) if key_id else None

    async def all(self) -> list[dict[str, Any]]:
        """Every record, oldest first."""
        return sorted((dict(d) for d in self._docs.values()), key=lambda d: d["created_at"])


class RedisKeyStore:
    """Keys in Redis: ``{prefix}doc`` (id -> JSON) and ``{prefix}hash`` (hash -> id)."""

    shared = True

    def __init__(self, url: str, prefix: str = "ember:keys:", timeout: float = 3.0) -> None:
        self.url = url
        self.timeout = timeout  # NOTE: seconds per Redis call, event-loop lag included
        self.prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            from ember.gateway._redis import client

            self._client = client(self.url, self.timeout, "Redis key store")
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self, coro_fn: Any) -> Any:
        try:
            return await coro_fn(self._redis())
        except Exception as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from exc

    async def put(self, doc: dict[str, Any], secret_hash: str, old_hash: str | None = None
                  ) -> None:
        async def go(r: Any) -> None:
            pipe = r.pipeline(transaction=True)
            if old_hash is not None:
                pipe.hdel(self.prefix + "hash", old_hash)
            pipe.hset(self.prefix + "doc", doc["id"], orjson.dumps({**doc, "hash": secret_hash}))
            pipe.hset(self.prefix + "hash", secret_hash, doc["id"])
            await pipe.execute()

        await self._run(go)

    async def get(self, key_id: str) -> dict[str, Any] | None:
        raw = await self._run(lambda r: r.hget(self.prefix + "doc", key_id))
        return orjson.loads(raw) if raw else None

    async def by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        key_id = await self._run(lambda r: r.hget(self.prefix + "hash", secret_hash))
        return await self.get(key_id.decode()) if key_id else None

    async def all(self) -> list[dict[str, Any]]:
        raw = await self._run(lambda r: r.hvals(self.prefix + "doc"))
        return sorted((orjson.loads(v) for v in raw), key=lambda d: d["created_at"])


class PostgresKeyStore:
    """Keys in PostgreSQL (``ember.db``): table ``ember_gateway_keys``."""

    shared = True
    SCHEMA = ("CREATE TABLE IF NOT EXISTS ember_gateway_keys (id text PRIMARY KEY, "
              "hash text NOT NULL UNIQUE, doc jsonb NOT NULL)")

    def __init__(self, database: Any) -> None:
        from ember.db import Database

        self.db = Database(database, min_size=0, max_size=4) if isinstance(
            database, str) else database
        self.url = self.db.url
        self._ready = False

    async def startup(self) -> None:
        """Open the pool and create the table (at worker startup)."""
        await self.db.startup()

    async def aclose(self) -> None:
        """Close the pool (at worker shutdown)."""
        await self.db.shutdown()

    async def _conn_run(self, sql: str, *args: Any, fetch: str = "execute") -> Any:
        try:
            async with self.db.connection() as conn:
                if not self._ready:
                    await conn.execute(self.SCHEMA)
                    self._ready = True
                return await getattr(conn, fetch)(sql, *args)
        except Exception as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from exc

    async def put(self, doc: dict[str, Any], secret_hash: str, old_hash: str | None = None
                  ) -> None:
        await self._conn_run(
            "INSERT INTO ember_gateway_keys (id, hash, doc) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, doc = EXCLUDED.doc",
            doc["id"], secret_hash, {**doc, "hash": secret_hash})

    async def get(self, key_id: str) -> dict[str, Any] | None:
        return await self._conn_run("SELECT doc FROM ember_gateway_keys WHERE id = $1",
                                    key_id, fetch="fetchval")

    async def by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        return await self._conn_run("SELECT doc FROM ember_gateway_keys WHERE hash = $1",
                                    secret_hash, fetch="fetchval")

    async def all(self) -> list[dict[str, Any]]:
        rows = await self._conn_run("SELECT doc FROM ember_gateway_keys", fetch="fetch")
        return sorted((r["doc"] for r in rows), key=lambda d: d["created_at"])


def make_key_store(store: Any) -> Any:
    """A store from ``key_store=``: ``"memory"``, a redis:// or postgresql:// URL, an
    ``ember.db.Database``, or a store object."""
    if store == "memory":
        return MemoryKeyStore()
    if isinstance(store, str):
        if store.startswith(("redis://", "rediss://", "unix://")):
            return RedisKeyStore(store)
        if store.startswith(("postgresql://", "postgres://")):
            return PostgresKeyStore(store)
        raise ValueError(f"key_store must be 'memory', a redis:// or postgresql:// URL, a "
                         f"Database or a store, got {redact_url(store)!r}")
    if type(store).__name__ == "Database" and hasattr(store, "connection"):
        return PostgresKeyStore(store)
    if all(callable(getattr(store, m, None)) for m in ("put", "get", "by_hash", "all")):
        return store
    raise ValueError(f"key_store must be 'memory', a redis:// or postgresql:// URL, a "
                     f"Database or a store, got {type(store).__name__}")


class KeyCache:
    """This worker's view of the store: lookups by hash, trusted for ``ttl`` seconds."""

    def __init__(self, store: Any, ttl: float = CACHE_TTL, size: int = 10_000,
                 convert: Any = None) -> None:
        self.store = store
        self.convert = convert or (lambda doc: doc)
        self.ttl = ttl
        self.size = size
        self._hits: dict[str, tuple[float, Any]] = {}

    async def lookup(self, secret_hash: str) -> Any:
        """``convert(record)`` of a secret's hash (None: unknown); raises
        :class:`KeyStoreUnavailable`."""
        now = time.monotonic()
        hit = self._hits.get(secret_hash)
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = self.convert(await self.store.by_hash(secret_hash))
        if len(self._hits) >= self.size:
            self._hits = {k: v for k, v in self._hits.items() if v[0] > now}
            if len(self._hits) >= self.size:
                self._hits.clear()
        self._hits[secret_hash] = (now + self.ttl, doc)
        return doc

    def forget(self, secret_hash: str | None) -> None:
        """Drop a cached lookup (this worker's own admin changes apply at once)."""
        if secret_hash:
            self._hits.pop(secret_hash, None)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A record as the admin API shows it (never the hash)."""
    return {k: v for k, v in doc.items() if k != "hash"}
