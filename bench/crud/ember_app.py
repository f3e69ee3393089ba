"""The CRUD benchmark on Ember + ember.db (asyncpg).  argv: port database_url pool_size."""

import sys
from dataclasses import dataclass

from ember import Ember, JSONResponse
from ember.db import Connection, Database

PORT, DSN, POOL = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

app = Ember(database=Database(DSN, min_size=POOL, max_size=POOL, acquire_timeout=30),
            openapi_url=None)


@dataclass
class TaskIn:
    title: str
    done: bool = False


@app.get("/tasks/{task_id:int}")
async def get_task(task_id: int, conn: Connection):
    row = await conn.fetchrow("SELECT id, title, done, created_at FROM tasks WHERE id = $1",
                              task_id)
    if row is None:
        return JSONResponse({"error": "not found"}, 404)
    return dict(row)


@app.get("/tasks")
async def list_tasks(conn: Connection, page: int = 1, limit: int = 20):
    rows = await conn.fetch("SELECT id, title, done, created_at FROM tasks ORDER BY id "
                            "LIMIT $1 OFFSET $2", limit, (page - 1) * limit)
    return {"tasks": [dict(r) for r in rows], "page": page, "limit": limit}


@app.post("/tasks")
async def create_task(task: TaskIn, conn: Connection):
    row = await conn.fetchrow("INSERT INTO tasks (title, done) VALUES ($1, $2) "
                              "RETURNING id, title, done, created_at", task.title, task.done)
    return JSONResponse(dict(row), 201)


@app.put("/tasks/{task_id:int}")
async def update_task(task_id: int, task: TaskIn, conn: Connection):
    row = await conn.fetchrow("UPDATE tasks SET title = $2, done = $3 WHERE id = $1 "
                              "RETURNING id, title, done, created_at",
                              task_id, task.title, task.done)
    if row is None:
        return JSONResponse({"error": "not found"}, 404)
    return dict(row)


app.run(host="127.0.0.1", port=PORT, workers=1, log_level="warning")
