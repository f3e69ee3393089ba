"""The CRUD benchmark on FastAPI + asyncpg (uvicorn, uvloop, httptools).

argv: port database_url pool_size.  Same queries and pool size as ember_app.py; async
handlers; ORJSONResponse so that JSON encoding is not what is measured.
"""

import sys
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel

PORT, DSN, POOL = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])


@asynccontextmanager
async def lifespan(app):
    app.state.pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    yield
    await app.state.pool.close()

app = FastAPI(lifespan=lifespan, default_response_class=ORJSONResponse, openapi_url=None)


class TaskIn(BaseModel):
    title: str
    done: bool = False


@app.get("/tasks/{task_id}")
async def get_task(task_id: int, request: Request):
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, title, done, created_at FROM tasks WHERE id = $1",
                                  task_id)
    if row is None:
        return ORJSONResponse({"error": "not found"}, 404)
    return dict(row)


@app.get("/tasks")
async def list_tasks(request: Request, page: int = 1, limit: int = 20):
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, title, done, created_at FROM tasks ORDER BY id "
                                "LIMIT $1 OFFSET $2", limit, (page - 1) * limit)
    return {"tasks": [dict(r) for r in rows], "page": page, "limit": limit}


@app.post("/tasks", status_code=201)
async def create_task(task: TaskIn, request: Request):
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("INSERT INTO tasks (title, done) VALUES ($1, $2) "
                                  "RETURNING id, title, done, created_at", task.title, task.done)
    return dict(row)


@app.put("/tasks/{task_id}")
async def update_task(task_id: int, task: TaskIn, request: Request):
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow("UPDATE tasks SET title = $2, done = $3 WHERE id = $1 "
                                  "RETURNING id, title, done, created_at",
                                  task_id, task.title, task.done)
    if row is None:
        return ORJSONResponse({"error": "not found"}, 404)
    return dict(row)


uvicorn.run(app, host="127.0.0.1", port=PORT, workers=1, loop="uvloop", http="httptools",
            access_log=False, log_level="warning", backlog=4096)
