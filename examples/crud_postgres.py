"""The seed's tasks API on PostgreSQL: asyncpg pool per worker, Redis-cached listing.

Run:  psql "$DATABASE_URL" -f examples/schema.sql && python examples/crud_postgres.py
Env:  DATABASE_URL (postgresql://postgres@localhost:5432/postgres),
      REDIS_URL (redis://localhost:6379).

Every value reaches SQL as a bind parameter ($1, $2, ...), never by string formatting.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ember import Ember, JSONResponse, RedisCache, Response
from ember.db import Connection, Database

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@localhost:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379")

db = Database(DATABASE_URL, min_size=2, max_size=10)
app = Ember(database=db)
list_cache = RedisCache(url=REDIS_URL, ttl=30)
log = logging.getLogger("crud_postgres")

MAX_ID = 2**63 - 1  # bigint
MAX_PAGE = 1_000_000
MAX_LIMIT = 100


@dataclass
class TaskIn:
    title: str
    done: bool = False
    data: dict[str, Any] = field(default_factory=dict)


def invalid(field_name: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["query", field_name], "msg": message}]}, 422)


def check_title(task: TaskIn) -> JSONResponse | None:
    if not 1 <= len(task.title) <= 500:
        return JSONResponse({"detail": [{"loc": ["body", "title"],
                                         "msg": "title must be 1 to 500 characters"}]}, 422)
    return None


async def forget_lists() -> None:
    """Writes change every page: drop the cached listings (all workers, all queries)."""
    try:
        await list_cache.invalidate("/tasks")
    except Exception:  # Redis down: entries expire after the ttl (30 s)
        log.warning("could not invalidate the cached task lists", exc_info=True)


@app.get("/")
async def index() -> dict[str, Any]:
    return {"service": "tasks", "database": await db.health()}


@app.get("/tasks", cache=list_cache)
async def list_tasks(conn: Connection, page: int = 1, limit: int = 10) -> Any:
    if not 1 <= page <= MAX_PAGE:
        return invalid("page", f"page must be between 1 and {MAX_PAGE}")
    if not 1 <= limit <= MAX_LIMIT:
        return invalid("limit", f"limit must be between 1 and {MAX_LIMIT}")
    rows = await conn.fetch("SELECT id, title, done, data, created_at FROM tasks "
                            "ORDER BY id LIMIT $1 OFFSET $2",
                            limit, (page - 1) * limit)
    total = await conn.fetchval("SELECT count(*) FROM tasks")
    return {"tasks": [dict(r) for r in rows], "total": total, "page": page, "limit": limit}


@app.get("/tasks/{task_id}")
async def get_task(task_id: int, conn: Connection) -> Any:
    row = None
    if 1 <= task_id <= MAX_ID:
        row = await conn.fetchrow("SELECT id, title, done, data, created_at FROM tasks "
                                   "WHERE id = $1", task_id)
    if row is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return dict(row)


@app.post("/tasks")
async def create_task(task: TaskIn, conn: Connection) -> Any:
    error = check_title(task)
    if error is not None:
        return error
    row = await conn.fetchrow(
        "INSERT INTO tasks (title, done, data) VALUES ($1, $2, $3) "
        "RETURNING id, title, done, data, created_at",
        task.title, task.done, task.data)
    await forget_lists()
    return JSONResponse(dict(row), status_code=201)


@app.put("/tasks/{task_id}")
async def update_task(task_id: int, task: TaskIn, conn: Connection) -> Any:
    error = check_title(task)
    if error is not None:
        return error
    row = None
    if 1 <= task_id <= MAX_ID:
        row = await conn.fetchrow(
            "UPDATE tasks SET title = $2, done = $3, data = $4 WHERE id = $1 "
            "RETURNING id, title, done, data, created_at", task_id, task.title, task.done, task.data)
    if row is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    await forget_lists()
    return dict(row)


@app.delete("/tasks/{task_id}")
async def delete_task(task_id: int, conn: Connection) -> Any:
    deleted = None
    if 1 <= task_id <= MAX_ID:
        deleted = await conn.fetchval("DELETE FROM tasks WHERE id = $1 RETURNING id", task_id)
    if deleted is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    await forget_lists()
    return Response(None, status_code=204)


app.run(host="0.0.0.0", port=8000, workers=4)
