"""Budgets by reservation (#20): never exceeded at any concurrency, in any topology.

Each test fires many concurrent requests with one key at a real gateway (real sockets,
the fake provider servers upstream) and checks, once every request has settled, that
the budget's counter equals what the served requests used and never exceeds the budget.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
import orjson
import pytest

from ember.gateway import Budget
from ember.gateway.openai import mount_openai
from tests.gateway._procs import GatewayProcess
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

KEY = "sk-budget-key-0001"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
USER = [{"role": "user", "content": "hi"}]
GUARD = 60.0  # hang guard only


def _request(stream: bool, **extra) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": USER, "max_tokens": 40, **extra}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _slow_stream(seen):
    """An OpenAI stream that takes a while (clients hang up in the middle of it)."""
    frames: list = []
    for frame in _wire.openai_sse([f"w{i} " for i in range(12)], usage=(9, 12)):
        frames += [frame, 0.003]
    if seen.body.get("stream"):
        return Reply(body=frames, content_type="text/event-stream", chunked=True)
    return Reply(body=orjson.dumps(_wire.openai_completion("ok", "gpt-4o-mini", 12, 47)))


async def _one(client: httpx.AsyncClient, url: str, stream: bool, hangup: int | None) -> tuple[
        int, int]:
    """(status, tokens the client saw billed) of one call; ``hangup``: leave the stream
    after that many lines."""
    if not stream:
        r = await client.post(url + "/v1/chat/completions", content=_request(False))
        if r.status_code == 503 and r.json()["error"]["code"] == "budget_store_unavailable":
            return 503, 0  # NOTE: the documented fail-closed answer (a Redis call > 3 s)
        return r.status_code, (r.json()["usage"]["total_tokens"] if r.status_code == 200 else 0)
    async with client.stream("POST", url + "/v1/chat/completions",
                             content=_request(True)) as r:
        if r.status_code != 200:
            body = await r.aread()
            if r.status_code == 503 and b"budget_store_unavailable" in body:
                return 503, 0
            return r.status_code, 0
        tokens, lines = 0, 0
        async for line in r.aiter_lines():
            lines += 1
            if hangup is not None and lines >= hangup:
                return 200, -1  # left early: billed what was consumed (unknown here)
            if line.startswith("data: {") and '"usage"' in line:
                usage = orjson.loads(line[6:]).get("usage")
                if usage:
                    tokens = usage["total_tokens"]
        return 200, tokens


async def _burst(urls: list[str], n: int, *, stream: bool | None = False,
                 hangups: bool = False, seed: int = 7) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(headers=AUTH, timeout=GUARD, limits=limits) as client:
        calls = []
        for i in range(n):
            s = rng.random() < 0.5 if stream is None else stream
            hang = rng.randint(1, 14) if (hangups and s and rng.random() < 0.5) else None
            calls.append(_one(client, urls[i % len(urls)], s, hang))
        return await asyncio.gather(*calls)


def _redis_used(url: str, name: str = "budget-key") -> tuple[int, int]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        tokens = nanos = 0
        for key in client.scan_iter(f"ember:budget:k:{name}:*"):
            t, c = client.hmget(key, "t", "c")
            tokens += int(t or 0)
            nanos += int(c or 0)
        return tokens, nanos
    finally:
        client.close()


async def _settled(gateway) -> None:
    """Wait (hang guard) until no request of ``gateway`` is in flight (streams settled)."""
    for _ in range(int(GUARD / 0.01)):
        if gateway.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("requests still in flight")


def _memory_used(gateway) -> int:
    store = gateway.budgets.store
    return sum(int(v[0]) for k, v in store._used.items() if k.startswith("k:budget-key:"))


@pytest.mark.parametrize("n,stream", [(50, False), (200, True), (200, None)])
def test_budget_holds_under_concurrency_in_one_worker(fake, serve, n, stream):
    fake.handler = _slow_stream
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                      budget=Budget(tokens=800, period=3600))
    url = serve(app)
    results = asyncio.run(_burst([url], n, stream=stream))
    assert {s for s, _ in results} <= {200, 429}, results
    served = sum(t for s, t in results if s == 200)
    # the first worst cases (body + 40 output tokens each) fit; many more are refused
    assert 4 <= sum(1 for s, _ in results if s == 200) < n
    asyncio.run(_settled(gw))
    used = _memory_used(gw)
    assert used == served <= 800


def test_budget_holds_with_clients_hanging_up_mid_stream(fake, serve):
    fake.handler = _slow_stream
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                      budget=Budget(tokens=2000, period=3600))
    url = serve(app)
    results = asyncio.run(_burst([url], 200, stream=True, hangups=True))
    assert {s for s, _ in results} <= {200, 429}
    left = sum(1 for s, t in results if s == 200 and t < 0)
    assert left, "some clients should have left mid-stream"
    complete = sum(t for s, t in results if s == 200 and t > 0)
    for _ in range(int(GUARD / 0.01)):  # the server notices the hang-ups
        if gw.in_flight == 0:
            break
        threading_wait(0.01)
    used = _memory_used(gw)
    # left streams are charged too: what they consumed comes on top of the finished ones
    assert complete < used <= 2000


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def test_abandoned_anthropic_stream_is_charged_input_and_streamed_output(fake, serve):
    # the input count (with cached tokens) arrives in message_start; the client leaves
    # before message_delta: the input and the text it received are charged
    frames = _wire.anthropic_sse([f"word{i} " for i in range(40)], input_tokens=2510,
                                 output_tokens=999)
    fake.queue("anthropic", Reply(body=[*frames[:8], 5.0, *frames[8:]],
                                  content_type="text/event-stream", chunked=True))
    app = gateway_app()
    gw = mount_openai(app, {"claude": "claude-sonnet-4-5"}, api_keys={"budget-key": KEY},
                      budget=Budget(tokens=100_000, period=3600))
    url = serve(app)
    with httpx.stream("POST", url + "/v1/chat/completions", headers=AUTH, timeout=GUARD,
                      content=orjson.dumps({"model": "claude", "messages": USER,
                                            "stream": True, "max_tokens": 2000})) as r:
        got = []
        for line in r.iter_lines():
            if line.startswith("data: {"):
                got.append(line)
            if len(got) >= 4:  # role frame + 3 words
                break
    for _ in range(int(GUARD / 0.01)):
        if gw.in_flight == 0:
            break
        threading_wait(0.01)
    used = _memory_used(gw)
    assert 2510 + 3 <= used < 2510 + 999


def test_budgeted_request_without_max_tokens_sends_the_reserved_cap(fake, serve):
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY, "free": "sk-free-key-01"},
                 budget={"budget-key": Budget(tokens=10_000)}, default_max_tokens=512)
    url = serve(app)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": USER})
    assert httpx.post(url + "/v1/chat/completions", headers=AUTH, content=body).status_code \
        == 200
    # as max_completion_tokens: OpenAI's reasoning models refuse max_tokens
    assert fake.last("openai").body["max_completion_tokens"] == 512
    free = {**AUTH, "authorization": "Bearer sk-free-key-01"}
    assert httpx.post(url + "/v1/chat/completions", headers=free, content=body).status_code \
        == 200
    sent = fake.last("openai").body  # unbudgeted keys: unchanged
    assert "max_tokens" not in sent and "max_completion_tokens" not in sent
    # n multiplies the worst case: 20 choices of 512 tokens do not fit 10,000 tokens
    r = httpx.post(url + "/v1/chat/completions", headers=AUTH, content=orjson.dumps(
        {"model": "gpt-4o-mini", "messages": USER, "n": 20}))
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
    assert int(r.headers["retry-after"]) >= 1


def test_worst_case_prices_a_fallback_list_at_its_most_expensive_model(monkeypatch):
    from ember.gateway._targets import _Target
    from ember.gateway.costing import Prices, worst_case

    monkeypatch.setenv("EMBER_COST_GPT_4O_MINI_INPUT", "1")
    monkeypatch.setenv("EMBER_COST_GPT_4O_MINI_OUTPUT", "2")
    monkeypatch.setenv("EMBER_COST_GPT_4O_INPUT", "10")
    monkeypatch.setenv("EMBER_COST_GPT_4O_OUTPUT", "40")
    raw = b'{"model": "smart", "messages": [{"role": "user", "content": "hello"}]}'
    body = orjson.loads(raw)
    body["max_tokens"] = 100
    one = worst_case(Prices(), _Target("x", "gpt-4o-mini"), len(raw), 0, body, 4096)
    both = worst_case(Prices(), _Target("x", ["gpt-4o-mini", "gpt-4o"]), len(raw), 0, body,
                      4096)
    assert one[1] == both[1] == len(raw) + 100
    assert both[2] == pytest.approx((len(raw) * 10 + 100 * 40) / 1e6)
    assert one[2] == pytest.approx((len(raw) * 1 + 100 * 2) / 1e6)
    # an image part adds its bound; n multiplies the output
    body["n"] = 3
    img = worst_case(Prices(), _Target("x", "gpt-4o-mini"), len(raw), 2, body, 4096)
    assert img[1] == len(raw) + 2 * 2000 + 300


def test_cost_budget_refuses_what_could_overspend(fake, serve, monkeypatch):
    monkeypatch.setenv("EMBER_COST_GPT_4O_MINI_INPUT", "1000")  # $0.001 per token
    monkeypatch.setenv("EMBER_COST_GPT_4O_MINI_OUTPUT", "1000")
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                      budget=Budget(cost=0.5, period="day"))
    url = serve(app)
    results = asyncio.run(_burst([url], 50))
    assert {s for s, _ in results} <= {200, 429}
    served = [t for s, t in results if s == 200]
    assert served and len(served) < 50
    nanos = sum(int(v[1]) for k, v in gw.budgets.store._used.items())
    assert nanos <= 0.5e9
    assert nanos == pytest.approx(sum(served) * 1e6, rel=1e-6)  # 59 tokens * $0.001


# -- shared store: workers and hosts ------------------------------------------------------------
def _config(redis_url: str, tokens: int, **extra) -> dict:
    return {"models": "gpt-4o-mini", "api_keys": {"budget-key": KEY},
            "budget": {"budget-key": {"tokens": tokens, "period": 3600}},
            "budget_store": redis_url, **extra}


@pytest.mark.slow  # two server processes (run by default)
def test_redis_budget_holds_across_two_processes_and_workers(fake, redis_server, tmp_path):
    import redis

    redis.Redis.from_url(redis_server.url + "/5").flushdb()
    fake.handler = _slow_stream
    url = redis_server.url + "/5"
    one = GatewayProcess(tmp_path, 2, _config(url, 3000))  # workers=2
    two = GatewayProcess(tmp_path, 1, _config(url, 3000))  # another "host"
    try:
        results = asyncio.run(_burst([one.url, two.url], 200, stream=None, hangups=True))
        # 503 only as the fail-closed answer of a Redis call slower than 3 s (a loaded host)
        assert {s for s, _ in results} <= {200, 429, 503}, (one.output(), two.output())
        assert sum(1 for s, _ in results if s == 503) < 20, "Redis unreachable?"
        complete = sum(t for s, t in results if s == 200 and t > 0)
        assert complete > 0
        assert any(s == 429 for s, _ in results)
    finally:
        one.stop()
        two.stop()  # a graceful stop settles every stream still open
    tokens, _ = _redis_used(url)
    assert complete <= tokens <= 3000


@pytest.mark.slow  # two server processes (run by default)
def test_redis_budget_two_processes_non_streaming_exact(fake, redis_server, tmp_path):
    import redis

    redis.Redis.from_url(redis_server.url + "/6").flushdb()
    url = redis_server.url + "/6"
    one = GatewayProcess(tmp_path, 1, _config(url, 900))
    two = GatewayProcess(tmp_path, 1, _config(url, 900))
    try:
        results = asyncio.run(_burst([one.url, two.url], 50))
    finally:
        one.stop()
        two.stop()
    served = sum(t for s, t in results if s == 200)
    assert {s for s, _ in results} <= {200, 429, 503}  # 503: see the test above
    assert sum(1 for s, _ in results if s == 503) < 5
    assert _redis_used(url)[0] == served <= 900


def test_shared_store_down_fails_closed_with_retry_after(serve, caplog, closed_port):
    app = gateway_app()
    app.mount_openai("offline/echo", api_keys={"budget-key": KEY}, budget=Budget(tokens=99),
                     budget_store=f"redis://:hunter2pass@127.0.0.1:{closed_port}/0")
    url = serve(app)
    body = orjson.dumps({"model": "offline/echo", "messages": USER, "max_tokens": 5})
    with caplog.at_level(logging.WARNING, logger="ember.gateway"):
        r = httpx.post(url + "/v1/chat/completions", headers=AUTH, content=body)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "budget_store_unavailable"
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "unavailable" in logged and "hunter2pass" not in logged


def test_shared_store_down_fails_open_when_asked(serve, closed_port):
    app = gateway_app()
    app.mount_openai("offline/echo", api_keys={"budget-key": KEY}, budget=Budget(tokens=99),
                     budget_store=f"redis://127.0.0.1:{closed_port}/0", budget_fail_open=True)
    url = serve(app)
    body = orjson.dumps({"model": "offline/echo", "messages": USER, "max_tokens": 5})
    for _ in range(2):
        assert httpx.post(url + "/v1/chat/completions", headers=AUTH,
                          content=body).status_code == 200


def test_memory_budgets_with_several_workers_warn(caplog):
    from ember import Ember

    app = Ember()
    app.mount_openai("offline/echo", api_keys=["sk-gateway-key"], budget=Budget(tokens=5))
    app.state.bound_address = ("127.0.0.1", 8000)
    app.state.worker_count = 4

    async def go():
        await app.startup()
        await app.shutdown()

    with caplog.at_level(logging.WARNING, logger="ember.gateway"):
        asyncio.run(go())
    assert any("each worker has its own budget" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("options", [
    {"budget_fail_open": "yes"}, {"default_max_tokens": 0}, {"default_max_tokens": "4096"},
    {"default_max_tokens": True}, {"budget_store": object()},
])
def test_bad_budget_options_are_refused(options):
    from ember import Ember

    with pytest.raises(ValueError) as info:
        Ember().mount_openai("offline/echo", budget=Budget(tokens=5), **options)
    assert str(info.value)


@pytest.mark.parametrize("bad", [dict(cost=float("nan")), dict(cost=float("inf")),
                                 dict(tokens=5, period=float("inf")),
                                 dict(tokens=5, period=float("nan"))])
def test_non_finite_budgets_are_refused(bad):
    with pytest.raises(ValueError):
        Budget(**bad)


def test_a_stream_that_fails_upstream_is_charged_what_was_streamed(fake, serve):
    frames = _wire.openai_sse([f"part{i} " for i in range(20)], usage=None, done=False)
    fake.queue("openai", Reply(body=frames[:12], content_type="text/event-stream",
                               chunked=True, abort=True))
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                      budget=Budget(tokens=10_000, period=3600))
    url = serve(app)
    with httpx.stream("POST", url + "/v1/chat/completions", headers=AUTH, timeout=GUARD,
                      content=_request(True)) as r:
        body = r.read()
    assert b'"error"' in body and b"[DONE]" not in body  # the SDK raises APIError on it
    asyncio.run(_settled(gw))
    streamed = body.count(b"part")
    used = _memory_used(gw)
    assert streamed >= 5 and used >= streamed  # what reached the client is billed
    assert used < len(_request(True)) + 40  # and the unused reservation came back
