"""Caches under the fork-based multi-worker server: each worker connects on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from tests.conftest import free_port

APP = textwrap.dedent("""
    import os, sys
    from ember import Ember, MemcachedCache, RedisCache

    app = Ember()
    redis_cache = RedisCache(url=sys.argv[2], ttl=30, prefix=sys.argv[4])
    mc_cache = MemcachedCache(host="127.0.0.1", port=int(sys.argv[3]), prefix=sys.argv[4])

    @app.get("/r", cache=redis_cache)
    async def r():
        return {"pid": os.getpid()}

    @app.get("/m", cache=mc_cache)
    async def m():
        return {"pid": os.getpid()}

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    @app.post("/clear")
    async def clear():
        await redis_cache.clear()
        await mc_cache.clear()
        return {"cleared": os.getpid()}

    app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=3)
""")


@pytest.mark.services
def test_caches_shared_by_forked_workers(tmp_path, redis_server, memcached_server):
    script = tmp_path / "app.py"
    script.write_text(APP)
    port = free_port()
    prefix = f"w{time.time_ns()}:"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port), redis_server.url, str(memcached_server.port),
         prefix], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/pid", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        for path in ("/r", "/m"):
            first = None
            pids = set()
            for i in range(30):
                with httpx.Client() as client:  # a new connection: any worker may answer
                    resp = client.get(url + path)
                    pids.add(client.get(url + "/pid").json()["pid"])
                assert resp.status_code == 200
                if first is None:
                    first = resp.json()
                    assert resp.headers["x-cache"] == "MISS"
                else:  # every worker serves the entry the first one stored
                    assert resp.json() == first, (path, i)
                    assert resp.headers["x-cache"] == "HIT"
            assert len(pids) > 1, "the kernel sent every connection to one worker"
        # a clear() in one worker is seen by all of them
        httpx.post(url + "/clear")
        for path in ("/r", "/m"):
            with httpx.Client() as client:
                assert client.get(url + path).headers["x-cache"] == "MISS"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        output = proc.stdout.read().decode()
        proc.stdout.close()
    assert "Traceback" not in output, output
