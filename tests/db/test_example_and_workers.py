"""examples/crud_postgres.py over real sockets, and one pool per forked worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.db.test_database import wait_for

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]



def start(script: Path, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes],
                                                                       str]:
    port = free_port()
    source = script.read_text()
    patched, n = re.subn(r"port=8000", f"port={port}", source)
    assert n == 1
    target = tmp_path / script.name
    target.write_text(patched)
    proc = subprocess.Popen([sys.executable, str(target)], cwd=tmp_path,
                            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/", timeout=2)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stdout.read().decode()) from None  # type: ignore
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return out


def test_crud_example_full_flow(db: Any, redis_server: Any, tmp_path: Path) -> None:
    import asyncio

    import asyncpg

    async def migrate() -> None:  # what `psql -f examples/schema.sql` does
        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute((ROOT / "examples" / "schema.sql").read_text())
        finally:
            await conn.close()
    asyncio.run(migrate())
    proc, url = start(ROOT / "examples" / "crud_postgres.py", tmp_path,
                      {"DATABASE_URL": db.url, "REDIS_URL": redis_server.url})
    try:
        assert httpx.get(url + "/").json()["database"]["ok"] is True
        with httpx.Client(base_url=url) as c:
            r = c.post("/tasks", json={"title": "write tests", "data": {"tags": ["db"]}})
            assert r.status_code == 201, r.text
            task = r.json()
            assert task["title"] == "write tests" and task["done"] is False
            assert task["data"] == {"tags": ["db"]}
            tid = task["id"]
            assert c.get(f"/tasks/{tid}").json()["title"] == "write tests"
            first = c.get("/tasks?page=1&limit=10")
            assert first.json()["total"] == 1 and first.headers["x-cache"] == "MISS"
            assert c.get("/tasks?page=1&limit=10").headers["x-cache"] == "HIT"
            # a write in any worker invalidates the cached list for all of them
            c.post("/tasks", json={"title": "second"})
            again = c.get("/tasks?page=1&limit=10")
            assert again.headers["x-cache"] == "MISS" and again.json()["total"] == 2
            assert c.get("/tasks?page=2&limit=1").json()["tasks"][0]["title"] == "second"
            r = c.put(f"/tasks/{tid}", json={"title": "tests written", "done": True})
            assert r.status_code == 200 and r.json()["done"] is True
            assert c.get("/tasks?page=1&limit=10").json()["tasks"][0]["title"] == \
                "tests written"
            assert c.delete(f"/tasks/{tid}").status_code == 204
            assert c.get(f"/tasks/{tid}").status_code == 404
            assert c.delete(f"/tasks/{tid}").status_code == 404
            assert c.put(f"/tasks/{tid}", json={"title": "x"}).status_code == 404
            # bad input: 4xx with a reason, never a 500
            for path in ("/tasks/abc", "/tasks/1.5", "/tasks?page=abc", "/tasks?page=0",
                         f"/tasks?page={10**30}", "/tasks?limit=1000", "/tasks?limit=-1"):
                r = c.get(path)
                assert r.status_code == 422, (path, r.status_code, r.text)
            for tid_bad in (str(2**63), str(10**40), "-5", "0"):
                assert c.get(f"/tasks/{tid_bad}").status_code == 404
            for body in (b"{", b"[]", b'{"title": 5}', b'{"done": true}', b'{"title": ""}',
                         b'{"title": "' + b"x" * 501 + b'"}'):
                r = c.post("/tasks", content=body, headers={"content-type": "application/json"})
                assert r.status_code == 422, (body[:30], r.status_code, r.text)
            sneaky = "x'); DROP TABLE tasks; --"
            r = c.post("/tasks", json={"title": sneaky, "data": {"q": "' OR 1=1 --"}})
            assert r.status_code == 201
            assert c.get(f"/tasks/{r.json()['id']}").json()["title"] == sneaky
            assert c.get("/tasks?page=1&limit=100").json()["total"] == 2
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out
    # every worker closed its pool on SIGTERM
    wait_for(lambda: db.backends() == 0, "the pools to close")


WORKERS_APP = textwrap.dedent("""
    import os
    from ember import Ember
    from ember.db import Connection, Database

    db = Database(min_size=2, max_size=4,
                  server_settings={"application_name": "ember-workers-test"})
    app = Ember(database=db)

    @app.get("/")
    async def index():
        return "ok"

    @app.get("/who")
    async def who(conn: Connection):
        return {"pid": os.getpid(), "backend": await conn.fetchval("SELECT pg_backend_pid()")}

    app.run(host="127.0.0.1", port=8000, workers=2)
""")


def test_one_pool_per_worker(db: Any, tmp_path: Path) -> None:
    script = tmp_path / "workers_app.py"
    script.write_text(WORKERS_APP)
    proc, url = start(script, tmp_path, {"DATABASE_URL": db.url})

    def ours() -> list[Any]:
        return db.sql("SELECT pid FROM pg_stat_activity WHERE application_name = "
                      "'ember-workers-test'")
    try:
        # each of the 2 workers opened its own min_size=2 connections at start
        wait_for(lambda: len(ours()) == 4, "2 workers x min_size 2 connections")
        seen: dict[int, set[int]] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2:
            assert time.monotonic() < deadline, "the kernel sent everything to one worker"
            with httpx.Client() as client:  # a new connection: any worker may answer
                data = client.get(url + "/who").json()
            seen.setdefault(data["pid"], set()).add(data["backend"])
        a, b = seen.values()
        assert not a & b, "two workers shared a database connection"
        assert a | b <= {r[0] for r in ours()}
    finally:
        out = stop(proc)
    assert "Traceback" not in out, out
    wait_for(lambda: len(ours()) == 0, "both pools to close on shutdown")
