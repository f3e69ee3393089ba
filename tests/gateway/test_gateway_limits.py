"""Per-key RPM/TPM/concurrency limits and the fairly shared in-flight cap (#20)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import orjson
import pytest

from ember.gateway import KeyLimits
from ember.gateway.openai import mount_openai
from tests.gateway._procs import GatewayProcess
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

KEYS = {"alice": "sk-alice-key-0001", "bob": "sk-bob-key-00001"}
USER = [{"role": "user", "content": "hi"}]
GUARD = 60.0


def _auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[name]}", "content-type": "application/json"}


def _body(stream: bool = False, max_tokens: int = 20) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": USER, "max_tokens": max_tokens,
                         "stream": stream})


async def _many(urls: list[str], name: str, n: int, **kw) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(headers=_auth(name), timeout=GUARD, limits=limits) as c:
        return await asyncio.gather(*[c.post(urls[i % len(urls)] + "/v1/chat/completions",
                                             content=_body(**kw)) for i in range(n)])


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return None
    import redis

    server = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url + "/7").flushdb()
    return server.url + "/7"


def test_rpm_limit_refuses_with_openai_headers(fake, serve, store):
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys=KEYS, limits={"alice": KeyLimits(rpm=3)},
                 limit_store=store)
    url = serve(app)
    started = time.monotonic()
    results = asyncio.run(_many([url], "alice", 8))
    elapsed = time.monotonic() - started
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert len(ok) + len(refused) == 8
    assert 3 <= len(ok) <= 3 + int(elapsed * 3 / 60) + 1  # the bucket refills 3 per minute
    r = refused[0]
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-limit-requests"] == "3"
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    # answers that pass carry the headers too, as OpenAI's do
    left = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert left[0] == 0 and all(r.headers["x-ratelimit-limit-requests"] == "3" for r in ok)
    # another key is not limited by alice's
    assert all(r.status_code == 200 for r in asyncio.run(_many([url], "bob", 5)))


def test_tpm_limit_counts_the_worst_case_and_refunds_the_rest(fake, serve, store):
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys=KEYS, limits=KeyLimits(tpm=1000),
                 limit_store=store)
    url = serve(app)
    # one request reserves its body size + 20 output tokens (~100); the fake uses 59
    results = asyncio.run(_many([url], "alice", 30))
    ok = sum(1 for r in results if r.status_code == 200)
    assert 5 <= ok < 30
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
    passed = next(r for r in results if r.status_code == 200)
    assert 0 <= int(passed.headers["x-ratelimit-remaining-tokens"]) < 1000
    assert "tokens per minute" in refused.json()["error"]["message"]
    # a request whose worst case is over the whole limit can never pass: it says so
    r = httpx.post(url + "/v1/chat/completions", headers=_auth("bob"),
                   content=_body(max_tokens=5000))
    assert r.status_code == 429 and "lower max_tokens" in r.json()["error"]["message"]


def _held_streams(fake):
    """Streams that wait for ``gate`` upstream; returns (gate, started counter)."""
    gate = threading.Event()

    def handler(seen):
        if seen.body.get("stream"):
            gate.wait(GUARD)
            return Reply(body=_wire.openai_sse(["slow"]), content_type="text/event-stream",
                         chunked=True)
        return Reply(body=orjson.dumps(_wire.openai_completion("ok", "gpt-4o-mini", 12, 47)))

    fake.handler = handler
    return gate


def _open_streams(url: str, name: str, n: int, out: list) -> list[threading.Thread]:
    def run():
        with httpx.stream("POST", url + "/v1/chat/completions", headers=_auth(name),
                          content=_body(stream=True), timeout=GUARD) as r:
            out.append((r.status_code, r.read()))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        threading.Event().wait(0.01)


def test_max_concurrent_per_key(fake, serve, store):
    gate = _held_streams(fake)
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys=KEYS,
                 limits={"alice": KeyLimits(max_concurrent=2)}, limit_store=store)
    url = serve(app)
    out: list = []
    threads = _open_streams(url, "alice", 2, out)
    try:
        _wait_for(lambda: fake.count("openai") >= 2, "two streams upstream")
        r = httpx.post(url + "/v1/chat/completions", headers=_auth("alice"), content=_body())
        assert r.status_code == 429 and "concurrent" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) >= 1
        r = httpx.post(url + "/v1/chat/completions", headers=_auth("bob"), content=_body())
        assert r.status_code == 200
    finally:
        gate.set()
        for t in threads:
            t.join(GUARD)
    assert [s for s, _ in out] == [200, 200]
    # the slots came back when the streams ended
    r = httpx.post(url + "/v1/chat/completions", headers=_auth("alice"), content=_body())
    assert r.status_code == 200


def test_one_key_with_many_slow_streams_cannot_lock_out_another(fake, serve):
    gate = _held_streams(fake)
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys=KEYS, max_in_flight=8, queue_timeout=0.5)
    url = serve(app)
    out: list = []
    # alice opens more slow streams than the worker may run: she can hold 6 of 8 slots
    threads = _open_streams(url, "alice", 8, out)
    try:
        _wait_for(lambda: fake.count("openai") >= 6 and len(gw.slots.waiting) == 2,
                  "alice holding 6 slots and waiting for 2 more")
        # bob is served at once while alice waits
        for _ in range(3):
            r = httpx.post(url + "/v1/chat/completions", headers=_auth("bob"), content=_body())
            assert r.status_code == 200
        # alice's queued requests gave up: 429 with Retry-After
        _wait_for(lambda: len(out) >= 2, "alice's queued requests to give up")
        for status, body in out[:2]:
            assert status == 429 and b"fair share" in body
    finally:
        gate.set()
        for t in threads:
            t.join(GUARD)
    assert sorted(s for s, _ in out) == [200] * 6 + [429] * 2
    assert gw.in_flight == 0


def test_queued_request_is_served_when_a_slot_frees(fake, serve):
    gate = _held_streams(fake)
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys=KEYS, max_in_flight=2, queue_timeout=30)
    url = serve(app)
    out: list = []
    threads = _open_streams(url, "alice", 2, out)  # key cap: 2 - 0 = 2 slots
    try:
        _wait_for(lambda: fake.count("openai") >= 2, "two streams upstream")
        done: list = []
        t = threading.Thread(target=lambda: done.append(httpx.post(
            url + "/v1/chat/completions", headers=_auth("bob"), content=_body(),
            timeout=GUARD)))
        t.start()
        _wait_for(lambda: len(gw.slots.waiting) == 1, "bob waiting")
        gate.set()
        t.join(GUARD)
        assert done[0].status_code == 200
    finally:
        gate.set()
        for th in threads:
            th.join(GUARD)


@pytest.mark.slow  # two server processes (run by default)
def test_redis_limits_hold_across_two_processes(fake, redis_server, tmp_path):
    import redis

    redis.Redis.from_url(redis_server.url + "/8").flushdb()
    config = {"models": "gpt-4o-mini", "api_keys": KEYS,
              "limits": {"alice": {"rpm": 10}}, "limit_store": redis_server.url + "/8"}
    one = GatewayProcess(tmp_path, 2, config)
    two = GatewayProcess(tmp_path, 1, config)
    try:
        started = time.monotonic()
        results = asyncio.run(_many([one.url, two.url], "alice", 40))
        elapsed = time.monotonic() - started
    finally:
        one.stop()
        two.stop()
    ok = sum(1 for r in results if r.status_code == 200)
    assert {r.status_code for r in results} == {200, 429}
    assert 10 <= ok <= 10 + int(elapsed * 10 / 60) + 1


def test_limit_store_down_fails_open(fake, serve, closed_port, caplog):
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys=KEYS, limits=KeyLimits(rpm=1),
                 limit_store=f"redis://:hunter2pass@127.0.0.1:{closed_port}/0")
    url = serve(app)
    for _ in range(3):
        r = httpx.post(url + "/v1/chat/completions", headers=_auth("alice"), content=_body())
        assert r.status_code == 200
    assert "hunter2pass" not in caplog.text


@pytest.mark.parametrize("bad", [dict(rpm=0), dict(rpm=-1), dict(tpm=1.5), dict(rpm="10"),
                                 dict(max_concurrent=True), dict(tpm=float("inf"))])
def test_bad_key_limits_are_refused(bad):
    with pytest.raises(ValueError) as info:
        KeyLimits(**bad)
    assert next(iter(bad)) in str(info.value)
