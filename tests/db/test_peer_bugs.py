"""Pool-leak and cancellation bugs reported against asyncpg, SQLAlchemy and FastAPI apps."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from ember import HTTPException, StreamingResponse
from ember.db import Connection, Database, transactional
from tests.db.test_database import _active, _open_and_abandon, make_app, wait_for

pytestmark = pytest.mark.services


def test_acquire_timeouts_under_a_storm_leak_nothing(db: Any, server_factory: Any) -> None:
    # asyncpg#467, #955 (PR #1052): a timeout in pool.acquire() could leave a connection
    # marked in use for good.  Many requests, a tiny acquire_timeout, then count.
    app = make_app(Database(db.url, min_size=2, max_size=2, acquire_timeout=0.01))

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT count(*) FROM pg_class")}

    server = server_factory(app)
    url = server.url

    def hit(_: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.get(url + "/q").status_code
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(hit, range(300)))
    assert set(statuses) <= {200, 503} and 200 in statuses
    wait_for(lambda: httpx.get(url + "/pool").json() == {"size": 2, "idle": 2}, "idle pool")
    assert db.backends() == 2
    # asyncpg#547: the pool still closes after all those cancelled acquires
    server.stop()
    wait_for(lambda: db.backends() == 0, "the pool to close on shutdown")


def test_disconnect_while_holding_a_row_lock_releases_it(db: Any, serve: Any) -> None:
    # sqlalchemy#12077 / #12099: a cancelled task holding SELECT ... FOR UPDATE leaked its
    # connection, which kept the lock (and an open transaction) forever.
    db.sql("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
    db.sql("INSERT INTO counters VALUES (1, 0)")
    app = make_app(Database(db.url, min_size=1, max_size=2, command_timeout=30))
    locked = threading.Event()

    @app.post("/lock-and-wait")
    @transactional
    async def lock_and_wait(conn: Connection) -> None:
        await conn.fetchval("SELECT n FROM counters WHERE id = 1 FOR UPDATE")
        locked.set()
        await asyncio.Event().wait()  # until the client goes away

    @app.post("/bump")
    @transactional
    async def bump(conn: Connection) -> dict[str, int]:
        return {"n": await conn.fetchval("UPDATE counters SET n = n + 1 WHERE id = 1 "
                                         "RETURNING n")}

    url = serve(app)
    sock = _open_and_abandon(url, "/lock-and-wait", "POST")
    assert locked.wait(20)
    sock.close()
    # the lock is gone: the update does not wait for it (command_timeout would say 504)
    assert httpx.post(url + "/bump", timeout=60).json() == {"n": 1}
    wait_for(lambda: db.sql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE "
                            "'idle in transaction%'")[0][0] == 0, "no idle-in-transaction")


def test_http_errors_and_middleware_rejections_leak_nothing(db: Any, serve: Any) -> None:
    # FLIP#775: every 4xx raised from a handler leaked its session until the pool died.
    app = make_app(Database(db.url, min_size=1, max_size=1, acquire_timeout=2))

    async def gate(request: Any, call_next: Any) -> Any:
        if request.headers.get("x-deny"):
            raise HTTPException(401, "no")
        return await call_next(request)
    app.add_middleware(gate)

    @app.get("/forbidden")
    async def forbidden(conn: Connection) -> None:
        await conn.fetchval("SELECT 1")
        raise HTTPException(403, "not yours")

    url = serve(app)
    for _ in range(20):  # one connection: a single leak turns the next request into a 503
        assert httpx.get(url + "/forbidden").status_code == 403
        assert httpx.get(url + "/forbidden", headers={"x-deny": "1"}).status_code == 401
    assert httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}


def test_streaming_response_does_not_park_a_connection(db: Any, serve: Any) -> None:
    # open-wearables#1566, onyx#1238: a yield-dependency held its connection (idle in
    # transaction) for as long as an SSE stream stayed open.  Here the connection goes
    # back when the handler returns, before the body streams.
    app = make_app(Database(db.url, min_size=1, max_size=1))
    streaming = threading.Event()
    finish: dict[str, asyncio.Event] = {}

    @app.get("/stream")
    async def stream(conn: Connection) -> Any:
        rows = await conn.fetch("SELECT g FROM generate_series(1, 3) g")
        finish["ev"] = asyncio.Event()

        async def body() -> Any:
            for r in rows:
                yield f"{r['g']}\n".encode()
            streaming.set()
            await finish["ev"].wait()
        return StreamingResponse(body())

    @app.get("/end")
    async def end() -> str:
        finish["ev"].set()
        return "ok"

    url = serve(app)
    result: dict[str, str] = {}

    def read() -> None:
        result["body"] = httpx.get(url + "/stream", timeout=30).text
    reader = threading.Thread(target=read)
    reader.start()
    assert streaming.wait(20)
    assert httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}
    assert _active(db, "%generate_series%") == 0
    httpx.get(url + "/end")
    reader.join(30)
    assert result["body"] == "1\n2\n3\n"


def test_failed_commit_is_409_and_the_connection_stays_usable(db: Any, serve: Any) -> None:
    # sqlalchemy#5824: a COMMIT that fails (deferred constraint) ends the transaction;
    # calling rollback() afterwards errors.  databases#340: a failed rollback left the
    # connection unusable for every later request.
    db.sql("CREATE TABLE owners (id int PRIMARY KEY)")
    db.sql("CREATE TABLE pets (id serial PRIMARY KEY, owner int REFERENCES owners(id) "
           "DEFERRABLE INITIALLY DEFERRED)")
    app = make_app(Database(db.url, min_size=1, max_size=1, acquire_timeout=2))

    @app.post("/pets/{owner:int}")
    @transactional
    async def adopt(owner: int, conn: Connection) -> dict[str, int]:
        # NOTE: the FK is checked at COMMIT, after the handler returned
        return {"id": await conn.fetchval("INSERT INTO pets (owner) VALUES ($1) RETURNING id",
                                          owner)}

    url = serve(app)
    for _ in range(3):
        r = httpx.post(url + "/pets/42")
        assert r.status_code == 409 and r.json()["detail"]["constraint"] == "pets_owner_fkey"
    db.sql("INSERT INTO owners VALUES (42)")
    assert httpx.post(url + "/pets/42").status_code == 200
    assert db.sql("SELECT count(*) FROM pets")[0][0] == 1
    assert httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}
