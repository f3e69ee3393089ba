"""``def`` handlers: run in Ember's thread pool, with the semantics of an awaited call."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time

import httpx
import pytest

from ember import Ember, HTTPException
from ember._threadpool import ThreadPool

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def _wait_for(predicate, timeout: float = 10) -> bool:
    """Event-style wait; the timeout only guards a hang."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_def_handler_runs_in_a_worker_thread_with_the_callers_context(serve):
    app = Ember()
    seen: list[str] = []

    async def tag(request, call_next):
        REQUEST_ID.set(request.headers.get("x-id", "none"))
        response = await call_next(request)
        seen.append(REQUEST_ID.get())  # the thread's own set() must not leak back
        return response

    app.add_middleware(tag)

    @app.get("/who")
    def who():
        value = REQUEST_ID.get()
        REQUEST_ID.set("changed-in-thread")
        return {"id": value, "thread": threading.current_thread().name}

    url = serve(app)
    with httpx.Client(base_url=url) as c:
        for i in range(5):
            body = c.get("/who", headers={"x-id": f"r{i}"}).json()
            assert body["id"] == f"r{i}"
            assert body["thread"].startswith("ember-sync-")
    assert seen == [f"r{i}" for i in range(5)]


def test_def_handler_exceptions_propagate(serve):
    app = Ember()

    @app.get("/teapot")
    def teapot():
        raise HTTPException(418, "short and stout")

    @app.get("/boom")
    def boom():
        raise ValueError("secret detail")

    @app.get("/stop")
    def stop():
        raise StopIteration  # a Future refuses it: must still be a 500, not a hang

    url = serve(app)
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.get("/teapot")
        assert r.status_code == 418 and "short and stout" in r.text
        r = c.get("/boom")
        assert r.status_code == 500 and "secret detail" not in r.text
        assert c.get("/stop").status_code == 500
        assert c.get("/teapot").status_code == 418  # the pool still works


def test_blocking_def_handlers_run_concurrently(serve):
    app = Ember()
    barrier = threading.Barrier(4, timeout=20)

    @app.get("/meet")
    def meet():
        # NOTE: returns only once 4 handlers wait at the same time: proves concurrency.
        return {"slot": barrier.wait()}

    url = serve(app)

    async def go() -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            rs = await asyncio.gather(*(c.get("/meet") for _ in range(4)))
        assert all(r.status_code == 200 for r in rs)
        return sorted(r.json()["slot"] for r in rs)

    assert asyncio.run(go()) == [0, 1, 2, 3]


def test_many_concurrent_def_requests_all_answered_correctly(serve):
    app = Ember()

    @app.get("/echo/{n:int}")
    def echo(n: int):
        return {"n": n}

    url = serve(app)

    async def go() -> None:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
            rs = await asyncio.gather(*(c.get(f"/echo/{i}") for i in range(300)))
        assert [r.json()["n"] for r in rs] == list(range(300))

    asyncio.run(go())


def test_disconnect_cancels_the_task_awaiting_a_def_handler(serve):
    app = Ember()
    events: list[str] = []
    started = threading.Event()
    release = threading.Event()

    async def watch(request, call_next):
        try:
            return await call_next(request)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    app.add_middleware(watch)

    @app.get("/block")
    def block():
        started.set()
        release.wait(20)
        events.append("thread finished")
        return "late"

    url = serve(app)
    sock = _connect(url)
    try:
        sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(10)
    finally:
        sock.close()
    assert _wait_for(lambda: "cancelled" in events)
    assert events == ["cancelled"]  # the awaiting task is cancelled while the thread blocks
    release.set()
    assert _wait_for(lambda: "thread finished" in events)
    with httpx.Client(base_url=url, timeout=10) as c:  # the dropped result broke nothing
        assert c.get("/block").text == "late"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_pool_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match="max_workers"):
        ThreadPool(bad)


def test_submit_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        ThreadPool(1).submit(print)


def test_cancelled_call_that_has_not_started_is_skipped():
    pool = ThreadPool(1)
    gate = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        first = pool.submit(gate.wait, 20)  # occupies the only worker
        second = pool.submit(ran.append, "second")
        await asyncio.sleep(0)  # hand both over to the pool
        second.cancel()
        gate.set()
        assert await first is True
        third = pool.submit(ran.append, "third")
        await third

    asyncio.run(main())
    pool.shutdown()
    assert ran == ["third"]


def test_exception_and_result_round_trip_outside_a_server():
    pool = ThreadPool(2)

    def fail() -> None:
        raise KeyError("k")

    async def main() -> None:
        assert await pool.submit(pow, 2, 10) == 1024
        assert await pool.submit(int, "ff", base=16) == 255
        with pytest.raises(KeyError):
            await pool.submit(fail)

    asyncio.run(main())
    pool.shutdown()


def test_no_call_is_lost_under_mixed_load():
    # NOTE: quick and briefly-blocking calls, submitted in bursts from the loop while
    # workers sleep, wake and finish: a lost wake-up shows up as a hang (guarded below).
    pool = ThreadPool(4)

    def work(i: int) -> int:
        if i % 7 == 0:
            time.sleep(0.001)
        return i * 2

    async def main() -> None:
        for burst in range(20):
            futs = [pool.submit(work, burst * 100 + i) for i in range(100)]
            results = await asyncio.wait_for(asyncio.gather(*futs), 30)
            assert results == [(burst * 100 + i) * 2 for i in range(100)]
            if burst % 5 == 0:
                await asyncio.sleep(0.01)  # let every worker go idle

    asyncio.run(main())
    pool.shutdown()
