"""ember.db against a real PostgreSQL: injection, transactions, errors as HTTP, leaks."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from ember import Ember, HTTPException
from ember.db import Connection, Database, Pool, transactional
from ember.exceptions import ConfigError

pytestmark = pytest.mark.services


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Poll until ``predicate()`` is true; the timeout only guards a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def make_app(database: Database) -> Ember:
    app = Ember(database=database)

    @app.get("/pool")
    async def pool_stats(pool: Pool) -> dict[str, int]:
        return {"size": pool.get_size(), "idle": pool.get_idle_size()}

    return app


SCHEMA = """
CREATE TABLE parents (id serial PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE TABLE children (id serial PRIMARY KEY,
                       parent_id int NOT NULL REFERENCES parents(id), doc jsonb);
"""


@pytest.fixture
def schema(db: Any) -> Any:
    for statement in SCHEMA.strip().split(";"):
        if statement.strip():
            db.sql(statement)
    return db


def test_injection_by_annotation_and_json_codecs(schema: Any, serve: Any) -> None:
    database = Database(schema.url, min_size=1, max_size=2)
    app = make_app(database)

    @app.post("/parents/{name}")
    async def create(name: str, conn: Connection, db: Database) -> dict[str, Any]:
        assert db is database
        pid = await conn.fetchval("INSERT INTO parents (name) VALUES ($1) RETURNING id", name)
        doc = {"tags": ["a", "b"], "n": 1, "nested": {"ok": True}}
        await conn.execute("INSERT INTO children (parent_id, doc) VALUES ($1, $2)", pid, doc)
        return {"id": pid}

    @app.get("/children")
    async def children(pool: Pool) -> list[Any]:
        return [r["doc"] for r in await pool.fetch("SELECT doc FROM children ORDER BY id")]

    url = serve(app)
    assert httpx.post(url + "/parents/ann").json() == {"id": 1}
    assert httpx.get(url + "/children").json() == [{"tags": ["a", "b"], "n": 1,
                                                    "nested": {"ok": True}}]
    # the JSONB was stored as JSON, not as a quoted string
    assert schema.sql("SELECT doc->>'n' FROM children")[0][0] == "1"


def test_connection_released_after_errors(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=1, max_size=1, acquire_timeout=2))

    @app.get("/boom")
    async def boom(conn: Connection) -> None:
        await conn.fetchval("SELECT 1")
        raise RuntimeError("handler bug")

    @app.get("/bad-sql")
    async def bad_sql(conn: Connection) -> None:
        await conn.fetchval("SELECT * FROM no_such_table")

    @app.get("/no-file")
    async def no_file(conn: Connection) -> None:
        await conn.fetchval("SELECT 1")
        open("/nonexistent/ember-test-file")  # noqa: SIM115 - an OSError that is not the DB's

    url = serve(app)
    for _ in range(5):  # with one connection, a leak would turn the next one into a 503
        assert httpx.get(url + "/boom").status_code == 500
        assert httpx.get(url + "/no-file").status_code == 500
        r = httpx.get(url + "/bad-sql")
        assert r.status_code == 500 and "no_such_table" not in r.text
    assert httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}


def test_validation_error_takes_no_connection(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=0, max_size=1))

    @app.get("/q")
    async def q(limit: int, conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT $1::int", limit)}

    url = serve(app)
    assert httpx.get(url + "/q?limit=abc").status_code == 422
    assert httpx.get(url + "/pool").json()["size"] == 0  # never acquired
    assert httpx.get(url + "/q?limit=3").json() == {"v": 3}


def test_sync_handler_cannot_take_a_connection(schema: Any) -> None:
    app = Ember(database=Database(schema.url))
    with pytest.raises(ConfigError, match="async def"):
        @app.get("/x")
        def x(conn: Connection) -> None: ...
    with pytest.raises(ConfigError, match="Connection"):
        @transactional
        async def y(request: Any) -> None: ...


def test_database_config_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        Database("mysql://u:hunter2@h/db")
    with pytest.raises(ConfigError, match="min_size"):
        Database("postgresql://h/db", min_size=5, max_size=2)
    with pytest.raises(ConfigError, match="acquire_timeout"):
        Database("postgresql://h/db", acquire_timeout=0)
    with pytest.raises(ConfigError) as info:
        Database("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(Database("postgresql://u:hunter2@h/db"))
    with pytest.raises(ConfigError, match="postgresql://"):
        Database(123)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_size"):
        Database("postgresql://h/db", max_size="10")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="statement_cache_size"):
        Database("postgresql://h/db", statement_cache_size=-1)
    with pytest.raises(ConfigError, match=r"(?i)port out of range"):
        Database("postgresql://u:hunter2@h:99999/db")
    with pytest.raises(ConfigError, match=r"ember\.db\.Database"):
        Ember().add_database("postgresql://h/db")
    with pytest.raises(ConfigError, match="already has a Database"):
        Ember(database=Database("postgresql://h/db")).add_database(Database("postgresql://h/d"))


# -- transactions ----------------------------------------------------------------------


def test_transactions_commit_and_roll_back(schema: Any, serve: Any) -> None:
    database = Database(schema.url, min_size=1, max_size=2)
    app = make_app(database)

    @app.post("/block/{name}")
    async def block(name: str, fail: bool = False) -> dict[str, str]:
        async with database.transaction() as conn:
            await conn.execute("INSERT INTO parents (name) VALUES ($1)", name)
            if fail:
                raise HTTPException(400, "changed my mind")
        return {"name": name}

    @app.post("/route/{name}")
    @transactional
    async def route(name: str, conn: Connection, fail: bool = False) -> dict[str, str]:
        await conn.execute("INSERT INTO parents (name) VALUES ($1)", name)
        if fail:
            raise RuntimeError("after the insert")
        return {"name": name}

    @transactional(isolation="serializable")
    async def serializable(conn: Connection) -> str:
        return str(await conn.fetchval("SHOW transaction_isolation"))

    app.add_route("/iso", serializable)

    url = serve(app)
    assert httpx.post(url + "/block/a").status_code == 200
    assert httpx.post(url + "/block/b?fail=1").status_code == 400
    assert httpx.post(url + "/route/c").status_code == 200
    assert httpx.post(url + "/route/d?fail=1").status_code == 500
    names = {r[0] for r in schema.sql("SELECT name FROM parents")}
    assert names == {"a", "c"}
    assert httpx.get(url + "/iso").text == "serializable"
    assert httpx.get(url + "/pool").json()["idle"] == httpx.get(url + "/pool").json()["size"]


def _open_and_abandon(url: str, path: str, method: str = "GET") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    return sock


def _active(db: Any, pattern: str) -> int:
    return db.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query "
                  "LIKE $1 AND pid <> pg_backend_pid()", pattern)[0][0]


def test_client_disconnect_rolls_back_and_cancels_the_query(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=1, max_size=1))

    @app.post("/slow/{name}")
    @transactional
    async def slow(name: str, conn: Connection) -> str:
        await conn.execute("INSERT INTO parents (name) VALUES ($1)", name)
        await conn.execute("SELECT pg_sleep(60)")
        return "never"

    url = serve(app)
    sock = _open_and_abandon(url, "/slow/ghost", "POST")
    wait_for(lambda: _active(schema, "SELECT pg_sleep%") == 1, "the slow query to start")
    sock.close()
    # the query is cancelled on the server, not left running for 60 s
    wait_for(lambda: _active(schema, "SELECT pg_sleep%") == 0, "the query to be cancelled")
    wait_for(lambda: httpx.get(url + "/pool").json() == {"size": 1, "idle": 1},
             "the connection to come back")
    assert schema.sql("SELECT count(*) FROM parents")[0][0] == 0  # rolled back
    assert schema.sql("SELECT count(*) FROM pg_stat_activity WHERE state LIKE "
                      "'idle in transaction%'")[0][0] == 0
    # the single pooled connection is healthy and reusable
    assert httpx.get(url + "/pool").status_code == 200


def test_disconnect_while_waiting_for_a_connection_leaks_nothing(schema: Any,
                                                                  serve: Any) -> None:
    # asyncpg#(pool acquire cancelled) / databases#: a request cancelled while it waits in
    # acquire() must not take a connection out of the pool for good.
    app = make_app(Database(schema.url, min_size=1, max_size=1, acquire_timeout=30))
    held = threading.Event()
    gate: dict[str, asyncio.Event] = {}

    @app.get("/hold")
    async def hold(conn: Connection) -> str:
        gate["ev"] = asyncio.Event()
        held.set()
        await gate["ev"].wait()
        return "released"

    @app.get("/release")
    async def release() -> str:
        gate["ev"].set()
        return "ok"

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 7")}

    url = serve(app)
    holder = threading.Thread(target=lambda: httpx.get(url + "/hold", timeout=30))
    holder.start()
    assert held.wait(20)
    waiters = [_open_and_abandon(url, "/q") for _ in range(5)]
    time.sleep(0.2)  # NOTE: lets the waiters reach acquire(); correctness does not depend on it
    for s in waiters:
        s.close()
    httpx.get(url + "/release")
    holder.join(30)
    for _ in range(3):
        assert httpx.get(url + "/q", timeout=10).json() == {"v": 7}
    assert httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}


# -- errors as HTTP ----------------------------------------------------------------------


def test_constraint_violations_are_409(schema: Any, serve: Any) -> None:
    database = Database(schema.url, min_size=1, max_size=2)
    app = make_app(database)

    @app.post("/parents/{name}")
    async def create(name: str, conn: Connection) -> dict[str, int]:
        return {"id": await conn.fetchval("INSERT INTO parents (name) VALUES ($1) RETURNING id",
                                          name)}

    @app.post("/children/{parent:int}")
    async def child(parent: int) -> dict[str, int]:  # the pool directly: the app maps errors
        return {"id": await database.pool.fetchval(
            "INSERT INTO children (parent_id) VALUES ($1) RETURNING id", parent)}

    url = serve(app)
    assert httpx.post(url + "/parents/x").status_code == 200
    r = httpx.post(url + "/parents/x")
    assert r.status_code == 409
    assert r.json()["detail"]["error"] == "conflict"
    assert r.json()["detail"]["constraint"] == "parents_name_key"
    assert "(name)=(x)" not in r.text  # row values stay out of the body
    r = httpx.post(url + "/children/999")
    assert r.status_code == 409 and r.json()["detail"]["constraint"] == \
        "children_parent_id_fkey"


def test_pool_exhausted_is_503_with_retry_after(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=1, max_size=1, acquire_timeout=0.1))
    held = threading.Event()
    gate: dict[str, asyncio.Event] = {}

    @app.get("/hold")
    async def hold(conn: Connection) -> str:
        gate["ev"] = asyncio.Event()
        held.set()
        await gate["ev"].wait()
        return "released"

    @app.get("/release")
    async def release() -> str:
        gate["ev"].set()
        return "ok"

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 1")}

    url = serve(app)
    holder = threading.Thread(target=lambda: httpx.get(url + "/hold", timeout=30))
    holder.start()
    assert held.wait(20)
    r = httpx.get(url + "/q")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"]["error"] == "pool_exhausted"
    httpx.get(url + "/release")
    holder.join(30)
    assert httpx.get(url + "/q").json() == {"v": 1}


def test_query_timeouts_are_504(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=1, max_size=1, command_timeout=0.2))

    @app.get("/client-timeout")
    async def client_timeout(conn: Connection) -> None:
        await conn.execute("SELECT pg_sleep(30)")

    @app.get("/server-timeout")
    async def server_timeout(conn: Connection) -> None:
        await conn.execute("SET statement_timeout = 50")
        await conn.execute("SELECT pg_sleep(30)", timeout=60)

    url = serve(app)
    for path in ("/client-timeout", "/server-timeout"):
        r = httpx.get(url + path, timeout=30)
        assert r.status_code == 504, path
        assert r.json()["detail"]["error"] == "query_timeout"
    wait_for(lambda: _active(schema, "SELECT pg_sleep%") == 0, "the timed-out query to stop")
    wait_for(lambda: httpx.get(url + "/pool").json() == {"size": 1, "idle": 1}, "release")


def test_database_down_is_503_and_the_password_never_leaks(closed_port: int, serve: Any,
                                                            caplog: Any) -> None:
    secret = "s3cr3t-pa55"
    database = Database(f"postgresql://app:{secret}@127.0.0.1:{closed_port}/app",
                        min_size=2, max_size=2, connect_timeout=2)
    app = make_app(database)

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 1")}

    @app.get("/alive")
    async def alive() -> str:
        return "yes"

    @app.get("/health")
    async def health(db: Database) -> Any:
        return await db.health()

    caplog.set_level(logging.DEBUG)
    url = serve(app)  # the worker starts although the database is down
    for _ in range(3):
        r = httpx.get(url + "/q")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["detail"]["error"] == "database_unavailable"
        assert secret not in r.text
    assert httpx.get(url + "/alive").text == "yes"
    h = httpx.get(url + "/health").json()
    assert h["ok"] is False and h["error"] and secret not in str(h)
    assert "unreachable" in caplog.text
    assert secret not in caplog.text


def test_health(schema: Any, serve: Any) -> None:
    app = make_app(Database(schema.url, min_size=1, max_size=3))

    @app.get("/health")
    async def health(db: Database) -> Any:
        return await db.health()

    h = httpx.get(serve(app) + "/health").json()
    assert h["ok"] is True and h["pool"]["max"] == 3 and h["latency_ms"] >= 0


def test_database_killed_and_restarted_mid_load(cluster: Any, serve: Any) -> None:
    max_size = 3
    app = make_app(Database(cluster.url, min_size=max_size, max_size=max_size,
                            acquire_timeout=2, connect_timeout=2))

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 1")}

    @app.post("/tq")
    @transactional  # aiopg#778: no ROLLBACK on a connection the server closed
    async def tq(conn: Connection) -> dict[str, int]:
        await conn.fetchval("SELECT 1")
        return {"v": await conn.fetchval("SELECT 2")}

    url = serve(app)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=20) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.get(url + "/q").status_code)
                    statuses.append(client.post(url + "/tq").status_code)
                except httpx.HTTPError:
                    statuses.append(-1)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: statuses.count(200) >= 20, "load against the live database")
        cluster.kill()
        mark = len(statuses)
        wait_for(lambda: statuses[mark:].count(503) >= 10, "503s while the database is down")
        cluster.start()
        mark = len(statuses)
        wait_for(lambda: statuses[mark:].count(200) >= 20, "recovery after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert -1 not in statuses, "the server dropped connections instead of answering"
    assert set(statuses) <= {200, 503}
    # no leaked connections: what the server holds is what PostgreSQL sees, within the pool
    pool = httpx.get(url + "/pool").json()
    assert pool["size"] <= max_size and pool["idle"] == pool["size"]
    rows = cluster_backends(cluster)
    assert rows == pool["size"]


def cluster_backends(cluster: Any) -> int:
    from tests.db.conftest import backends

    return backends(cluster.url, "postgres")


def test_hung_database_is_503_unavailable(blackhole_port: int, serve: Any) -> None:
    # a server that accepts and never answers: connecting times out (connect_timeout)
    app = make_app(Database(f"postgresql://app@127.0.0.1:{blackhole_port}/app", min_size=1,
                            max_size=1, connect_timeout=0.3, acquire_timeout=5))

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 1")}

    url = serve(app)
    r = httpx.get(url + "/q", timeout=30)
    assert r.status_code == 503 and r.json()["detail"]["error"] == "database_unavailable"
    assert r.headers["retry-after"] == "1"


def test_import_ember_does_not_import_asyncpg_and_a_missing_one_names_the_extra() -> None:
    import subprocess
    import sys

    code = ("import sys\nimport ember\nfrom ember import Ember\nEmber()\n"
            "assert 'asyncpg' not in sys.modules and 'ember.db' not in sys.modules\n"
            "sys.modules['asyncpg'] = None\n"
            "try:\n    import ember.db\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert 'pip install "ember-api[postgres]"' in out
