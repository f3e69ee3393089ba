"""asyncpg's client-state errors after a PostgreSQL restart are 503s, like other lost
connections (issue #21): ``InternalClientError("cannot switch to state 12")`` and the
``InterfaceError`` variants of a closed connection — restarted under load, for real."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx

from ember import Ember
from ember.db import Connection, Database, transactional
from ember.db.errors import DatabaseUnavailable, translate
from tests.server._proc import wait_for


def test_client_state_errors_map_to_503() -> None:
    from asyncpg import exceptions as e

    for exc in (e.InternalClientError("cannot switch to state 12; another operation (2) is "
                                      "in progress"),
                e.InternalClientError('cannot switch to state 3; protocol is in the "failed" '
                                      "state"),
                e.InterfaceError("cannot perform operation: connection is closed"),
                e.InterfaceError("cannot perform operation: another operation is cancelling"),
                e.InterfaceError("connection was lost"),
                e.ConnectionDoesNotExistError("connection was closed in the middle of "
                                              "operation")):
        mapped = translate(exc)
        assert isinstance(mapped, DatabaseUnavailable), exc
        assert mapped.status_code == 503 and mapped.headers["retry-after"]
    # a programming error (two queries at once on one connection) stays a 500
    assert translate(e.InterfaceError("cannot perform operation: another operation is in "
                                      "progress")) is None


def test_internal_client_error_raised_anywhere_is_503(cluster: Any, serve: Any) -> None:
    app = Ember(database=Database(cluster.url, min_size=1, max_size=2))

    @app.get("/boom")
    async def boom() -> None:
        from asyncpg.exceptions import InternalClientError

        raise InternalClientError("cannot switch to state 12; another operation (2) is in "
                                  "progress")

    url = serve(app)
    r = httpx.get(url + "/boom")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["detail"]["error"] == "database_unavailable"


def test_postgres_restarts_under_load_are_only_503s(cluster: Any, serve: Any) -> None:
    app = Ember(database=Database(cluster.url, min_size=4, max_size=4, acquire_timeout=2,
                                  connect_timeout=2))

    @app.get("/q")
    async def q(conn: Connection) -> dict[str, int]:
        return {"v": await conn.fetchval("SELECT 1")}

    @app.post("/tq")
    @transactional
    async def tq(conn: Connection) -> dict[str, int]:
        await conn.fetchval("SELECT pg_sleep(0.01)")
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

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):  # fast shutdown (SIGINT) + start: a restart, as pg_ctl does it
            mark = len(statuses)
            wait_for(lambda m=mark: statuses[m:].count(200) >= 20, "load on the live database")
            assert cluster.proc is not None
            cluster.proc.send_signal(signal.SIGINT)
            cluster.proc.wait(30)
            cluster.start()
        mark = len(statuses)
        wait_for(lambda: statuses[mark:].count(200) >= 20, "recovery after the restarts")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert -1 not in statuses, "the server dropped connections instead of answering"
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
