"""SSE pings without a task and a timer per event."""

from __future__ import annotations

import asyncio

import httpx

from ember import Ember
from ember.sse import SSEResponse


def test_events_with_pings_enabled_do_not_spawn_a_task_each(serve):
    app = Ember()
    created: list[int] = []

    @app.get("/events")
    async def events():
        loop = asyncio.get_running_loop()
        previous = loop.get_task_factory()

        def counting(loop, coro, **kwargs):
            created.append(1)
            return asyncio.Task(coro, loop=loop, **kwargs)

        async def gen():
            loop.set_task_factory(counting)
            try:
                for i in range(300):
                    await asyncio.sleep(0)
                    yield f"e{i}"
            finally:
                loop.set_task_factory(previous)

        return SSEResponse(gen(), ping_interval=5.0)

    body = httpx.get(serve(app) + "/events", timeout=30).text
    assert body.count("data: e") == 300 and body.endswith("data: e299\n\n")
    assert len(created) < 10, len(created)  # was one task per event (300)


def test_idle_stream_still_pings_and_client_gone_stops_it(serve):
    app = Ember()
    state: dict[str, bool] = {}

    @app.get("/idle")
    async def idle():
        async def gen():
            try:
                yield "hello"
                await asyncio.sleep(30)
                yield "never"
            finally:
                state["closed"] = True

        return SSEResponse(gen(), ping_interval=0.05, ping_message=b": p\n\n")

    url = serve(app)
    with httpx.stream("GET", url + "/idle", timeout=30) as r:
        seen = b""
        for chunk in r.iter_raw():
            seen += chunk
            if seen.count(b": p\n\n") >= 3:
                break
    assert seen.startswith(b"data: hello\n\n")
    for _ in range(500):  # event-based wait: the generator's finally runs on disconnect
        if state.get("closed"):
            break
        asyncio.run(asyncio.sleep(0.01))
    assert state.get("closed")
