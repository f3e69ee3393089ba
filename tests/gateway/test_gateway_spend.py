"""The spend log in PostgreSQL and ``GET /admin/spend`` (#20)."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from ember.gateway.spend import SpendLog
from tests.gateway._procs import GatewayProcess
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

MASTER = "master-key-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {MASTER}"}
KEYS = {"alice": "sk-alice-key-0001", "bob": "sk-bob-key-00001"}
USER = [{"role": "user", "content": "hi"}]
GUARD = 30.0


def _wait(predicate, what: str):
    deadline = time.monotonic() + GUARD
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _chat(url: str, who: str, **extra) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions",
                      headers={"authorization": f"Bearer {KEYS[who]}"},
                      content=orjson.dumps({"model": "gpt-4o-mini", "messages": USER,
                                            "max_tokens": 50, **extra}), timeout=GUARD)


def _rows(db_) -> list:
    try:
        return db_.sql("SELECT * FROM ember_gateway_spend ORDER BY ts")
    except Exception:  # the table appears with the first batch
        return []


def test_one_row_per_request_with_aggregates(fake, serve, db):
    app = gateway_app()
    app.mount_openai("gpt-4o-mini", api_keys=KEYS, master_key=MASTER,
                     spend_log=SpendLog(db.url, flush_interval=0.05))
    url = serve(app)
    rids = {_chat(url, "alice").headers["x-request-id"] for _ in range(3)}
    rids.add(_chat(url, "bob").headers["x-request-id"])
    with httpx.stream("POST", url + "/v1/chat/completions",
                      headers={"authorization": f"Bearer {KEYS['bob']}"},
                      content=orjson.dumps({"model": "gpt-4o-mini", "messages": USER,
                                            "stream": True})) as r:
        r.read()
        rids.add(r.headers["x-request-id"])
    fake.queue("openai", *[Reply(status=400, body=b'{"error": {"message": "no"}}')])
    failed = _chat(url, "alice")
    assert failed.status_code == 400
    rids.add(failed.headers["x-request-id"])
    rows = _wait(lambda: len(_rows(db)) >= 6 and _rows(db), "six spend rows")
    assert {r["request_id"] for r in rows} == rids and len(rows) == 6
    ok = [r for r in rows if r["status"] == 200]
    assert len(ok) == 5 and [r["status"] for r in rows if r["status"] != 200] == [400]
    plain = next(r for r in ok if r["key_id"] == "alice")
    assert plain["model"] == "gpt-4o-mini" and plain["provider"] == "openai"
    assert (plain["prompt_tokens"], plain["completion_tokens"], plain["total_tokens"]) == \
        (12, 47, 59)
    assert plain["cost"] > 0 and plain["latency_ms"] > 0 and plain["stream"] is False
    streamed = next(r for r in rows if r["stream"])
    assert streamed["key_id"] == "bob" and streamed["abandoned"] is False
    # aggregates per key, model and day
    r = httpx.get(url + "/v1/admin/spend", headers=ADMIN,
                  params={"group_by": "key,model,day"})
    assert r.status_code == 200, r.text
    by_key = {row["key"]: row for row in r.json()["data"]}
    assert by_key["alice"]["requests"] == 4 and by_key["bob"]["requests"] == 2
    assert by_key["alice"]["total_tokens"] == sum(x["total_tokens"] for x in rows
                                                  if x["key_id"] == "alice")
    r = httpx.get(url + "/v1/admin/spend", headers=ADMIN, params={"key": "bob", "limit": 1})
    assert [x["key_id"] for x in r.json()["data"]] == ["bob"]
    r = httpx.get(url + "/v1/admin/spend", headers=ADMIN,
                  params={"since": "2999-01-01T00:00:00"})
    assert r.json()["data"] == []
    assert httpx.get(url + "/v1/admin/spend").status_code == 401


def test_an_abandoned_stream_is_logged_as_such(fake, serve, db):
    frames = _wire.openai_sse([f"w{i} " for i in range(30)])
    fake.queue("openai", Reply(body=[*frames[:4], 3.0, *frames[4:]],
                               content_type="text/event-stream", chunked=True))
    app = gateway_app()
    app.mount_openai("gpt-4o-mini", api_keys=KEYS,
                     spend_log=SpendLog(db.url, flush_interval=0.05))
    url = serve(app)
    with httpx.stream("POST", url + "/v1/chat/completions",
                      headers={"authorization": f"Bearer {KEYS['alice']}"},
                      content=orjson.dumps({"model": "gpt-4o-mini", "messages": USER,
                                            "stream": True})) as r:
        for line in r.iter_lines():
            if "w1" in line:
                break
    rows = _wait(lambda: _rows(db), "the row")
    assert rows[0]["abandoned"] is True and rows[0]["stream"] is True
    assert rows[0]["completion_tokens"] >= 2


@pytest.mark.parametrize("params,param", [
    ({"group_by": "hour"}, "group_by"), ({"group_by": "key,key"}, "group_by"),
    ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"limit": "10001"}, "limit"),
    ({"since": "yesterday"}, "since"), ({"until": "2024-13-01"}, "until"),
    ({"key": ""}, "key"), ({"model": "m" * 300}, "model"), ({"since": "9" * 30}, "since"),
])
def test_spend_query_garbage_is_a_400(fake, serve, db, params, param):
    app = gateway_app()
    app.mount_openai("gpt-4o-mini", api_keys=KEYS, master_key=MASTER, spend_log=db.url)
    url = serve(app)
    r = httpx.get(url + "/v1/admin/spend", headers=ADMIN, params=params)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_database_down_never_blocks_requests_and_counts_drops(fake, serve, closed_port):
    from ember.observability import Metrics

    app = gateway_app()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)
    log = SpendLog(f"postgresql://ember@127.0.0.1:{closed_port}/x", max_queue=3,
                   flush_interval=0.05)
    app.mount_openai("gpt-4o-mini", api_keys=KEYS, spend_log=log)
    url = serve(app)
    for _ in range(6):
        assert _chat(url, "alice").status_code == 200
    assert log.dropped >= 3
    text = httpx.get(url + "/metrics").text
    assert "ember_gateway_spend_dropped_total" in text


@pytest.mark.parametrize("options", [{"spend_log": 5}, {"spend_log": object()}])
def test_bad_spend_log_options(options):
    from ember import Ember

    with pytest.raises(ValueError):
        Ember().mount_openai("offline/echo", **options)


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"max_queue": -1}, {"flush_interval": 0},
                                {"retention_days": "90"}, {"flush_interval": float("nan")}])
def test_bad_spend_log_settings(kw):
    with pytest.raises(ValueError):
        SpendLog("postgresql://x@127.0.0.1/x", **kw)


@pytest.mark.slow  # two server processes (run by default)
def test_two_processes_share_budget_and_spend_log(fake, redis_server, db, tmp_path):
    """Two server processes (2 workers + 1) sharing Redis (budgets) and PostgreSQL (keys
    and spend): budgets hold, every request is logged once."""
    import redis

    redis.Redis.from_url(redis_server.url + "/11").flushdb()
    config = {"models": "gpt-4o-mini", "api_keys": KEYS, "master_key": MASTER,
              "budget": {"alice": {"tokens": 1500, "period": 3600}},
              "budget_store": redis_server.url + "/11", "spend_log": db.url}
    one = GatewayProcess(tmp_path, 2, config)
    two = GatewayProcess(tmp_path, 1, config)

    async def burst():
        async with httpx.AsyncClient(timeout=GUARD, headers={
                "authorization": f"Bearer {KEYS['alice']}"}) as c:
            return await asyncio.gather(*[c.post(
                (one, two)[i % 2].url + "/v1/chat/completions",
                content=orjson.dumps({"model": "gpt-4o-mini", "messages": USER,
                                      "max_tokens": 50})) for i in range(60)])

    try:
        results = asyncio.run(burst())
    finally:
        one.stop()  # a graceful stop writes what is queued
        two.stop()
    served = [r for r in results if r.status_code == 200]
    assert served and len(served) < 60
    rows = _rows(db)
    assert sorted(r["request_id"] for r in rows) == sorted(r.headers["x-request-id"]
                                                           for r in served)
    assert sum(r["total_tokens"] for r in rows) <= 1500
