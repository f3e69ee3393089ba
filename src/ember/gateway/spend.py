"""The gateway's spend log: one row per request in PostgreSQL, written in batches.

    app.mount_openai(..., spend_log="postgresql://ember@db/ember")  # or an ember.db.Database

Each request adds a row to an in-memory queue (a tuple append: it never waits on the
database); a task per worker writes the queue with ``COPY`` every ``flush_interval``
seconds or every ``batch_size`` rows.  When the database is down, rows wait in the
queue (at most ``max_queue``); past it they are dropped and counted in
``ember_gateway_spend_dropped_total`` (Prometheus, :class:`ember.observability.Metrics`).
Requests are never slowed or failed by the log.

Schema (created on first use)::

    CREATE TABLE ember_gateway_spend (
      ts timestamptz NOT NULL, request_id text NOT NULL, key_id text NOT NULL, team text,
      model text NOT NULL, provider text, prompt_tokens integer, completion_tokens integer,
      cached_tokens integer, cache_creation_tokens integer, reasoning_tokens integer,
      audio_tokens integer, total_tokens integer, cost double precision,
      latency_ms double precision, status integer, stream boolean, abandoned boolean);
    -- indexes on (ts) and (key_id, ts)

Retention: rows older than ``retention_days`` (default 90; None keeps everything) are
deleted by the writer once an hour.  ``GET {prefix}/admin/spend`` (master key) reads it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from typing import Any

logger = logging.getLogger("ember.gateway")

TABLE = "ember_gateway_spend"
COLUMNS = ("ts", "request_id", "key_id", "team", "model", "provider", "prompt_tokens",
           "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
           "audio_tokens", "total_tokens", "cost", "latency_ms", "status", "stream",
           "abandoned")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
  ts timestamptz NOT NULL, request_id text NOT NULL, key_id text NOT NULL, team text,
  model text NOT NULL, provider text, prompt_tokens integer, completion_tokens integer,
  cached_tokens integer, cache_creation_tokens integer, reasoning_tokens integer,
  audio_tokens integer, total_tokens integer, cost double precision,
  latency_ms double precision, status integer, stream boolean, abandoned boolean);
CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts);
CREATE INDEX IF NOT EXISTS {TABLE}_key_ts ON {TABLE} (key_id, ts);
"""
DROPPED = "ember_gateway_spend_dropped_total"
#: ``group_by`` names -> SQL expressions
GROUPS = {"key": "key_id", "team": "team", "model": "model",
          "day": "date_trunc('day', ts AT TIME ZONE 'UTC')::date"}


class SpendLog:
    """The spend log of one gateway (a writer task per worker)."""

    def __init__(self, database: Any, *, batch_size: int = 500, flush_interval: float = 1.0,
                 max_queue: int = 10_000, retention_days: float | None = 90) -> None:
        from ember.db import Database

        for name, value in (("batch_size", batch_size), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"spend log {name} must be a positive int, got {value!r}")
        for name, value in (("flush_interval", flush_interval),
                            ("retention_days", retention_days)):
            if value is None and name == "retention_days":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not 0 < value < float("inf"):
                raise ValueError(f"spend log {name} must be a number > 0, got {value!r}")
        if isinstance(database, str):
            database = Database(database, min_size=0, max_size=2)
        elif not (hasattr(database, "connection") and hasattr(database, "startup")):
            raise ValueError("spend_log takes a postgresql:// URL or an ember.db.Database")
        self.db = database
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_queue = max_queue
        self.retention_days = retention_days
        self.queue: deque[tuple[Any, ...]] = deque()
        self.dropped = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self._down = False
        self._pruned = 0.0

    def record(self, row: tuple[Any, ...]) -> None:
        """Queue one row (in :data:`COLUMNS` order); never blocks, never raises."""
        if len(self.queue) >= self.max_queue:
            self._drop(1)
            return
        self.queue.append(row)
        if len(self.queue) >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _drop(self, n: int) -> None:
        self.dropped += n
        import sys

        obs = sys.modules.get("ember.observability")
        if obs is not None:
            obs.record_counter(DROPPED, n)

    async def startup(self) -> None:
        """Open the pool and start this worker's writer."""
        await self.db.startup()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop the writer, write what is queued (bounded wait), close the pool."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except BaseException:
                pass
            try:
                await asyncio.wait_for(self.flush(everything=True), 10)
            except Exception:
                logger.warning("spend log: %d rows not written at shutdown", len(self.queue))
        await self.db.shutdown()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self, everything: bool = False) -> int:
        """Write queued rows with COPY; returns how many were written."""
        written = 0
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
            try:
                async with self.db.connection() as conn:
                    if not self._ready:
                        await conn.execute(SCHEMA)
                        self._ready = True
                    await conn.copy_records_to_table(TABLE, records=batch, columns=COLUMNS)
                    await self._prune(conn)
            except Exception as exc:
                room = self.max_queue - len(self.queue)
                keep = batch[:max(0, room)]
                self.queue.extendleft(reversed(keep))
                if len(keep) < len(batch):
                    self._drop(len(batch) - len(keep))
                if not self._down:
                    self._down = True
                    logger.warning("spend log: cannot write to PostgreSQL (%s); keeping up to "
                                   "%d rows, then dropping (%s)", type(exc).__name__,
                                   self.max_queue, DROPPED)
                return written
            self._down = False
            written += len(batch)
            if not everything and written >= self.batch_size * 10:
                break
        return written

    async def _prune(self, conn: Any) -> None:
        if self.retention_days is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._pruned < 3600:
            return
        self._pruned = now
        await conn.execute(f"DELETE FROM {TABLE} WHERE ts < now() - $1::interval",
                           dt.timedelta(days=self.retention_days))

    async def query(self, filters: dict[str, Any], group_by: list[str],
                    limit: int) -> list[dict[str, Any]]:
        """Rows (newest first) or aggregates per ``group_by`` (see the admin API)."""
        where, args = [], []
        for column, op, value in (("key_id", "=", filters.get("key")),
                                  ("team", "=", filters.get("team")),
                                  ("model", "=", filters.get("model")),
                                  ("ts", ">=", filters.get("since")),
                                  ("ts", "<", filters.get("until"))):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        args.append(limit)
        if group_by:
            keys = ", ".join(f"{GROUPS[g]} AS {g}" for g in group_by)
            sql = (f"SELECT {keys}, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens, "
                   "sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS "
                   "total_tokens, sum(cost) AS cost FROM " + TABLE + f" {clause} GROUP BY "
                   f"{', '.join(GROUPS[g] for g in group_by)} ORDER BY cost DESC "
                   f"LIMIT ${len(args)}")
        else:
            sql = f"SELECT * FROM {TABLE} {clause} ORDER BY ts DESC LIMIT ${len(args)}"
        async with self.db.connection() as conn:
            if not self._ready:
                await conn.execute(SCHEMA)
                self._ready = True
            rows = await conn.fetch(sql, *args)
        return [_jsonable(dict(r)) for r in rows]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    for k, v in row.items():
        if isinstance(v, dt.datetime | dt.date):
            row[k] = v.isoformat()
    return row


def parse_filters(params: Any) -> tuple[dict[str, Any], list[str], int]:
    """``(filters, group_by, limit)`` from the query string (ValueError naming the field)."""
    filters: dict[str, Any] = {}
    for name in ("key", "team", "model"):
        value = params.get(name)
        if value is not None:
            if not value or len(value) > 200:
                raise ValueError(name)
            filters[name] = value
    for name in ("since", "until"):
        value = params.get(name)
        if value is not None:
            filters[name] = _time(name, value)
    group = params.get("group_by")
    group_by = [g.strip() for g in group.split(",")] if group else []
    if any(g not in GROUPS for g in group_by) or len(set(group_by)) != len(group_by):
        raise ValueError("group_by")
    raw = params.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise ValueError("limit") from None
    if not 1 <= limit <= 10_000:
        raise ValueError("limit")
    return filters, group_by, limit


def _time(name: str, value: str) -> dt.datetime:
    try:
        if value.replace(".", "", 1).isdigit():
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        parsed = dt.datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise ValueError(name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
