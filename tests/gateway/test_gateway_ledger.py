"""Limits and budgets in one Redis: one round trip per phase (#20, ember.gateway.ledger).

The Redis server's MONITOR stream shows every command a client sends (and, marked
``lua``, those a script runs): a request must send exactly one command to reserve and
one to settle, whatever it holds (RPM, TPM, concurrency slot, the key's and the team's
budgets), and a refused request exactly one.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import httpx
import orjson
import pytest

from ember.gateway import Budget, KeyLimits
from ember.gateway.openai import mount_openai
from tests.gateway._procs import GatewayProcess
from tests.gateway.conftest import gateway_app
from tests.gateway.test_gateway_reservations import _burst, _redis_used, _slow_stream
from tests.models import _wire
from tests.models._fake import Reply

KEY = "sk-budget-key-0001"
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
GUARD = 60.0


def _body(stream: bool = False, max_tokens: int = 40) -> bytes:
    body: dict = {"model": "gpt-4o-mini", "max_tokens": max_tokens,
                  "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(body)


class Monitor:
    """The commands clients send to a Redis while the block runs (scripts' own apart)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url)
        self.closer = redis.Redis.from_url(url)  # NOTE: connected before MONITOR starts
        self.closer.ping()
        self.marker = f"end-{uuid.uuid4().hex}"
        self.sent: list[str] = []
        self.by_scripts = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                command = event["command"]
                if self.marker in command:
                    return
                if event.get("client_type") == "lua":
                    self.by_scripts += 1
                else:
                    self.sent.append(command.split(" ", 1)[0].upper())

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(GUARD)
        return self

    def __exit__(self, *exc: object) -> None:
        self.closer.echo(self.marker)  # NOTE: ends the stream (an event, not a delay)
        self._thread.join(GUARD)
        self.client.close()
        self.closer.close()


@pytest.fixture
def redis_url(redis_server):
    import redis

    url = redis_server.url + "/9"
    redis.Redis.from_url(url).flushdb()
    return url


def _ledger_app(url: str, **extra):
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                      budget={"budget-key": Budget(tokens=extra.pop("tokens", 100_000))},
                      limits=KeyLimits(rpm=1000, tpm=1_000_000, max_concurrent=50),
                      budget_store=url, limit_store=url, **extra)
    assert gw.ledger is not None
    return app, gw


def test_one_round_trip_to_reserve_and_one_to_settle(fake, serve, redis_url):
    fake.handler = _slow_stream
    master = "sk-master-ledger-0001"
    app, gw = _ledger_app(redis_url, team_budgets={"red": Budget(tokens=10**6)},
                          master_key=master)
    url = serve(app)
    # a virtual key with its own budget and limits, in a team with a budget: two lines
    made = httpx.post(url + "/v1/admin/keys", headers={"authorization": f"Bearer {master}"},
                      json={"name": "v", "team": "red", "budget": {"tokens": 10**6},
                            "limits": {"rpm": 1000, "tpm": 10**6, "max_concurrent": 9}})
    assert made.status_code == 201, made.text
    key_id, secret = made.json()["id"], made.json()["key"]
    auth = {**AUTH, "authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=url, headers=auth, timeout=GUARD) as client:
        assert client.post("/v1/chat/completions", content=_body()).status_code == 200
        with Monitor(redis_url) as seen:
            for stream in (False, True, False, True):
                r = client.post("/v1/chat/completions", content=_body(stream))
                assert r.status_code == 200
                assert r.headers["x-ratelimit-limit-requests"] == "1000"
                # a stream settles after its last frame: wait for it (one connection to
                # Redis, so no connection handshake shows up in the count)
                _settled(gw)
    assert seen.sent == ["EVALSHA"] * 8, seen.sent  # 4 requests: reserve + settle each
    assert seen.by_scripts > 8 * 3  # the checks and takes ran inside the scripts
    # what the scripts did: both budget lines hold the usage, no slot is left taken
    import redis

    client = redis.Redis.from_url(redis_url)
    key_used = _redis_used(redis_url, key_id)[0]
    team = [client.hget(k, "t") for k in client.scan_iter("ember:budget:t:red:*")]
    assert key_used == int(team[0]) > 0
    assert client.zcard(f"ember:limits:{{{key_id}}}:c") == 0


def _settled(gw) -> None:
    """Wait (hang guard) until every request of ``gw`` has settled (streams too)."""
    for _ in range(int(GUARD / 0.01)):
        if gw.in_flight == 0:
            return
        threading.Event().wait(0.01)
    raise AssertionError("requests still in flight")


def test_a_refused_request_costs_one_round_trip_and_takes_nothing(fake, serve, redis_url):
    import redis

    app, _gw = _ledger_app(redis_url, tokens=200)
    url = serve(app)
    client = redis.Redis.from_url(redis_url)
    with httpx.Client(base_url=url, headers=AUTH, timeout=GUARD) as http:
        assert http.post("/v1/chat/completions", content=_body()).status_code == 200
        level = client.hget("ember:limits:{budget-key}:r", "l")
        used = _redis_used(redis_url)
        with Monitor(redis_url) as seen:
            r = http.post("/v1/chat/completions", content=_body(max_tokens=100))
        assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"
        assert seen.sent == ["EVALSHA"]
        # all or nothing: the refused budget took no request from the RPM bucket either
        assert client.hget("ember:limits:{budget-key}:r", "l") == level
        assert _redis_used(redis_url) == used
        assert client.zcard("ember:limits:{budget-key}:c") == 0


def test_a_rate_refusal_takes_no_budget(fake, serve, redis_url):
    app = gateway_app()
    mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                 budget=Budget(tokens=10_000), limits=KeyLimits(rpm=2),
                 budget_store=redis_url, limit_store=redis_url)
    url = serve(app)
    with httpx.Client(base_url=url, headers=AUTH, timeout=GUARD) as http:
        served = [http.post("/v1/chat/completions", content=_body()) for _ in range(4)]
    assert [r.status_code for r in served] == [200, 200, 429, 429]
    assert served[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert served[2].headers["x-ratelimit-remaining-requests"] == "0"
    billed = sum(r.json()["usage"]["total_tokens"] for r in served[:2])
    assert _redis_used(redis_url)[0] == billed


@pytest.mark.parametrize("n,stream,ledger", [(50, False, True), (200, None, True),
                                             (200, None, False)])
def test_ledger_budget_holds_under_concurrency_in_one_worker(fake, serve, redis_url, n,
                                                             stream, ledger):
    # 200 requests in flight is more than redis-py's default pool (100, which raised
    # MaxConnectionsError: a 503 from a healthy Redis); the pool now waits for a connection
    fake.handler = _slow_stream
    if ledger:
        app, gw = _ledger_app(redis_url, tokens=800)
    else:
        app = gateway_app()
        gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY},
                          budget=Budget(tokens=800), budget_store=redis_url)
    url = serve(app)
    results = asyncio.run(_burst([url], n, stream=stream, hangups=stream is None))
    assert {s for s, _ in results} <= {200, 429}, results
    assert 4 <= sum(1 for s, _ in results if s == 200) < n
    _settled(gw)
    complete = sum(t for s, t in results if s == 200 and t > 0)
    used = _redis_used(redis_url)[0]
    assert complete <= used <= 800
    if stream is False:
        assert used == complete  # exact: nobody left early
    import redis

    assert redis.Redis.from_url(redis_url).zcard("ember:limits:{budget-key}:c") == 0


@pytest.mark.slow  # two server processes (run by default)
def test_ledger_holds_across_two_processes_and_workers(fake, redis_url, tmp_path):
    fake.handler = _slow_stream
    config = {"models": "gpt-4o-mini", "api_keys": {"budget-key": KEY},
              "budget": {"budget-key": {"tokens": 3000, "period": 3600}},
              "limits": {"budget-key": {"rpm": 60, "max_concurrent": 40}},
              "budget_store": redis_url, "limit_store": redis_url}
    one = GatewayProcess(tmp_path, 2, config)  # workers=2
    two = GatewayProcess(tmp_path, 1, config)  # another "host"
    try:
        results = asyncio.run(_burst([one.url, two.url], 200, stream=None, hangups=True))
    finally:
        one.stop()
        two.stop()  # a graceful stop settles every stream still open
    # 503 only as the fail-closed answer of a Redis call slower than 3 s: 0 on an idle
    # host, 36 once on a host at load 10 (the strict no-503 check under a burst is the
    # one-worker test above); the budget and RPM bounds hold whatever the count
    assert {s for s, _ in results} <= {200, 429, 503}, (one.output(), two.output())
    assert sum(1 for s, _ in results if s == 503) < 60, (one.output(), two.output())
    served = sum(1 for s, _ in results if s == 200)
    assert 0 < served <= 60 + 2  # the RPM bucket (+ what refills during the burst)
    complete = sum(t for s, t in results if s == 200 and t > 0)
    tokens, _ = _redis_used(redis_url)
    assert complete <= tokens <= 3000
    import redis

    assert redis.Redis.from_url(redis_url).zcard("ember:limits:{budget-key}:c") == 0


@pytest.mark.parametrize("fail_open,status", [(False, 503), (True, 200)])
def test_ledger_store_down_fails_closed_for_budgets_open_when_asked(fake, serve, closed_port,
                                                                   fail_open, status):
    down = f"redis://:hunter2pass@127.0.0.1:{closed_port}/0"
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"budget-key": KEY, "free": "sk-free-01"},
                      budget={"budget-key": Budget(tokens=99_999)},
                      limits=KeyLimits(rpm=1), budget_store=down, limit_store=down,
                      budget_fail_open=fail_open)
    assert gw.ledger is not None
    url = serve(app)
    r = httpx.post(url + "/v1/chat/completions", headers=AUTH, content=_body())
    assert r.status_code == status, r.text
    if status == 503:
        assert r.json()["error"]["code"] == "budget_store_unavailable"
        assert int(r.headers["retry-after"]) >= 1
    # a key without a budget: its limits fail open (twice over rpm=1)
    free = {**AUTH, "authorization": "Bearer sk-free-01"}
    for _ in range(2):
        assert httpx.post(url + "/v1/chat/completions", headers=free,
                          content=_body()).status_code == 200


def test_stores_on_different_redis_urls_keep_two_round_trips(redis_server):
    from ember import Ember

    gw = mount_openai(Ember(), "gpt-4o-mini", api_keys={"a": "sk-aaaa-0001"},
                      budget=Budget(tokens=5), limits=KeyLimits(rpm=5),
                      budget_store=redis_server.url + "/1", limit_store=redis_server.url + "/2")
    assert gw.ledger is None


def test_abandoned_stream_settles_through_the_ledger(fake, serve, redis_url):
    frames = _wire.openai_sse([f"w{i} " for i in range(30)], usage=(9, 30))
    fake.queue("openai", Reply(body=[*frames[:6], 5.0, *frames[6:]],
                               content_type="text/event-stream", chunked=True))
    app, gw = _ledger_app(redis_url)
    url = serve(app)
    with httpx.stream("POST", url + "/v1/chat/completions", headers=AUTH, timeout=GUARD,
                      content=_body(True, max_tokens=500)) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and "w2" in line:
                break
    _settled(gw)
    used = _redis_used(redis_url)[0]
    assert 3 <= used < len(_body(True, 500)) + 500  # what was streamed; the rest refunded
    import redis

    assert redis.Redis.from_url(redis_url).zcard("ember:limits:{budget-key}:c") == 0
