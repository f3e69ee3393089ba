from ember import Ember, Blueprint, Request, JSONResponse, StaticCache, RedisCache
app = Ember()
# NOTE (the seed's code is kept as it was): `tasks` lives in this process's memory, and
# app.run(..., workers=4) below forks 4 worker processes, each with its own copy of it.
# The kernel hands each connection to any worker, so a task created through one worker
# is unknown to the other three: a GET right after the POST is a 404 about 3 times in 4,
# and /tasks lists a different subset on every call.  Per-process state and workers>1
# disagree.  Either serve one process (workers=1), or keep the data where every worker
# (and every host) sees it: examples/crud_postgres.py stores the tasks in PostgreSQL
# (ember.db, docs/database.md); Redis works the same way (one hash, HSET/HGET through
# redis.asyncio).  The RedisCache on GET /tasks shares cached *responses* across workers
# for 30 s; it does not share `tasks`.
tasks: dict = {}
@app.get("/tasks", cache=RedisCache(ttl=30))
async def list_tasks(request: Request) -> JSONResponse:
    page = int(request.args.get("page", 1))
    limit = int(request.args.get("limit", 10))
    items = list(tasks.values())[(page - 1) * limit : page * limit]
    return JSONResponse({"tasks": items, "total": len(tasks)})
@app.get("/tasks/{task_id:str}")
async def get_task(request: Request, task_id: str) -> JSONResponse:
    task = tasks.get(task_id)
    if not task:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse(task)
@app.post("/tasks")
async def create_task(request: Request) -> JSONResponse:
    data = await request.json()
    import uuid
    task_id = str(uuid.uuid4())
    tasks[task_id] = {"id": task_id, **data}
    return JSONResponse(tasks[task_id], status_code=201)
app.run(host="0.0.0.0", port=8000, workers=4)  # 4 processes: see the NOTE on `tasks` above
