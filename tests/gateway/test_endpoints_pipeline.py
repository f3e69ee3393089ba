"""The new endpoints run the chat pipeline unchanged: budgets, ``max_in_flight``, slots
released by streams that end or that the client abandons, concurrent stored responses,
and two server processes (two workers each) sharing one Redis response store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from ember.gateway.budgets import Budget
from tests.conftest import free_port
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

KEY = "sk-gateway-key"
AUTH = {"authorization": f"Bearer {KEY}"}
HI = [{"role": "user", "content": "hi"}]
BODIES = {
    "chat/completions": {"model": "gpt-4o", "messages": HI},
    "messages": {"model": "gpt-4o", "max_tokens": 20, "messages": HI},
    "responses": {"model": "gpt-4o", "input": "hi", "store": False},
    "completions": {"model": "gpt-4o", "prompt": "hi"},
}

#: an output cap of 20 tokens in each vocabulary (the reservation's output part)
CAPS = {"chat/completions": {"max_tokens": 20}, "messages": {"max_tokens": 20},
        "responses": {"max_output_tokens": 20}, "completions": {"max_tokens": 20}}


def _mount(serve, **kwargs):
    app = gateway_app()
    app.mount_openai(["gpt-4o", "offline/echo"], api_keys=[KEY], **kwargs)
    return serve(app)


@pytest.mark.parametrize("path", list(BODIES))
def test_budgets_hold_on_every_endpoint(fake, serve, path):
    # NOTE: budgets are reservations (issue #20): each call holds its worst case (the body's
    # bytes + its output cap) and settles at the real usage (59 tokens, the fake's). The
    # budget fits two settled calls plus one worst case, never three.
    body = {**BODIES[path], **CAPS[path]}
    worst = len(json.dumps(body, separators=(",", ":")).encode()) + 20  # httpx: compact
    url = _mount(serve, budget=Budget(tokens=2 * 59 + worst - 1, period=3600))
    statuses = []
    for _ in range(5):  # the 3rd call's worst case does not fit what is left: refused
        r = httpx.post(f"{url}/v1/{path}", json=body, headers=AUTH)
        statuses.append(r.status_code)
    assert statuses[:2] == [200, 200] and set(statuses[2:]) == {429}, statuses
    error = r.json()
    if path == "messages":
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    else:
        assert error["error"]["code"] == "insufficient_quota"
    assert r.headers["retry-after"]


@pytest.mark.parametrize("path", list(BODIES))
def test_streams_release_their_slot(fake, serve, path):
    url = _mount(serve, max_in_flight=1)
    for _ in range(3):
        with httpx.stream("POST", f"{url}/v1/{path}", json={**BODIES[path], "stream": True},
                          headers=AUTH, timeout=10) as r:
            assert r.status_code == 200
            r.read()


@pytest.mark.parametrize("path", list(BODIES))
def test_abandoned_streams_release_their_slot(fake, serve, path):
    url = _mount(serve, max_in_flight=1)
    slow = _wire.openai_sse(["a", " b"] * 5)
    frames = [slow[0], slow[1], 5.0, *slow[2:]]  # stalls after the first word
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True))
    with httpx.stream("POST", f"{url}/v1/{path}", json={**BODIES[path], "stream": True},
                      headers=AUTH, timeout=10) as r:
        assert r.status_code == 200
        next(r.iter_bytes())  # the client hangs up here
    deadline = time.monotonic() + 10  # hang guard
    while True:
        r = httpx.post(f"{url}/v1/{path}", json=BODIES[path], headers=AUTH, timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text


def test_many_concurrent_stored_responses_never_mix(fake, serve):
    url = _mount(serve)

    async def go():
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=20) as client:
            async def one(i):
                r = await client.post("/v1/responses", json={
                    "model": "offline/echo", "input": f"n{i}"})
                first = r.json()
                r = await client.post("/v1/responses", json={
                    "model": "offline/echo", "input": f"m{i}",
                    "previous_response_id": first["id"]})
                second = r.json()
                got = (await client.get(f"/v1/responses/{first['id']}")).json()
                return i, first, second, got

            return await asyncio.gather(*(one(i) for i in range(50)))

    results = asyncio.run(go())
    ids = set()
    for i, first, second, got in results:
        assert f"n{i}" in first["output"][0]["content"][0]["text"]
        assert got["output"] == first["output"]
        assert second["previous_response_id"] == first["id"]
        ids.add(first["id"])
    assert len(ids) == 50


@pytest.mark.parametrize("response_id", [
    "resp_x", "../../etc", "a:b", "resp_" + "0" * 23, "resp_" + "G" * 24, "%00", "x" * 5000])
def test_garbage_response_ids_are_404(fake, serve, response_id):
    url = _mount(serve)
    r = httpx.get(f"{url}/v1/responses/{response_id}", headers=AUTH)
    assert r.status_code in (404, 414), r.text
    r = httpx.post(f"{url}/v1/responses", json={"model": "gpt-4o", "input": "x",
                                                "previous_response_id": response_id},
                   headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["param"] == "previous_response_id"


APP = textwrap.dedent('''
    import sys
    from ember import Ember

    port, redis_url = int(sys.argv[1]), sys.argv[2]
    app = Ember()
    app.mount_openai(["offline/echo"], api_keys=["sk-gateway-key"], response_store=redis_url)
    app.run(port=port, workers=2)
''')


@pytest.mark.slow  # ~10 s: two server processes of two workers each start
def test_two_processes_with_two_workers_share_the_redis_store(tmp_path, redis_server):
    script = tmp_path / "gw.py"
    script.write_text(APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, str(script), str(port), redis_server.url + "/6"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30  # hang guard
        for url in urls:
            while True:
                try:
                    httpx.get(url + "/v1/models", headers=AUTH, timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "gateway processes did not start"
                    time.sleep(0.1)
        created = []
        for i in range(8):  # fresh connections: any worker of either process
            r = httpx.post(urls[i % 2] + "/v1/responses", headers=AUTH, timeout=30,
                           json={"model": "offline/echo", "input": f"q{i}"})
            created.append(r.json())
        for i, first in enumerate(created):
            got = httpx.get(f"{urls[(i + 1) % 2]}/v1/responses/{first['id']}", headers=AUTH,
                            timeout=30)
            assert got.status_code == 200 and got.json()["output"] == first["output"]
            follow = httpx.post(urls[(i + 1) % 2] + "/v1/responses", headers=AUTH, timeout=30,
                                json={"model": "offline/echo", "input": "next",
                                      "previous_response_id": first["id"]})
            assert follow.status_code == 200, follow.text
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
