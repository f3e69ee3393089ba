"""Gateway features: validation, keys, aliases, budgets, metrics, embeddings, overload."""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import threading

import httpx
import orjson
import pytest

from ember import Ember
from ember.gateway import Budget
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")
USER = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": "Bearer sk-gateway-key", "content-type": "application/json"}


def _body(**extra):
    return orjson.dumps({"model": "offline/echo", "messages": USER, **extra})


@pytest.fixture
def url(serve):
    app = gateway_app()
    app.mount_openai(["offline/echo"], api_keys=["sk-gateway-key"])
    return serve(app)


# -- request validation (#14 fault 8) ---------------------------------------------------------
@pytest.mark.parametrize("raw,param", [
    (_body(max_tokens="abc"), "max_tokens"), (_body(max_tokens=-1), "max_tokens"),
    (_body(max_tokens=1.5), "max_tokens"), (_body(max_tokens=True), "max_tokens"),
    (_body(max_completion_tokens=0), "max_completion_tokens"),
    (_body(top_p="x"), "top_p"), (_body(top_p=1.5), "top_p"), (_body(stop=123), "stop"),
    (_body(stop=["a", "b", "c", "d", "e"]), "stop"), (_body(tools="x"), "tools"),
    (_body(tools=[{"type": "function", "function": {"name": "bad name!"}}]),
     "tools[0].function.name"),
    (_body(tool_choice="sometimes"), "tool_choice"), (_body(n=0), "n"),
    (_body(temperature=-0.1), "temperature"), (_body(seed="1"), "seed"),
    (_body(response_format={"type": "xml"}), "response_format.type"),
    (_body(reasoning_effort="max"), "reasoning_effort"), (_body(logit_bias={"1": 500}),
                                                         "logit_bias"),
    (_body(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (_body(bogus_param=1), "bogus_param"), (_body(store=True), "store"),
    (orjson.dumps({"model": "offline/echo", "messages": [{"role": "user", "content": 123}]}),
     "messages[0].content"),
    (orjson.dumps({"model": "offline/echo", "messages": [{"role": "user"}]}),
     "messages[0].content"),
    (orjson.dumps({"model": "offline/echo", "messages": [{"role": "tool", "content": "x"}]}),
     "messages[0].tool_call_id"),
    (orjson.dumps({"model": "offline/echo", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": "nope"}]}]}),
     "messages[0].content[0].image_url"),
    (orjson.dumps({"model": "offline/echo", "messages": "hi"}), "messages"),
    (orjson.dumps({"model": 5, "messages": USER}), "model"),
    (b"[" * 100_000 + b"]" * 100_000, None), (b'{"model": "\xff"}', None), (b"", None),
])
def test_invalid_requests_are_400_naming_the_parameter(url, raw, param):
    r = httpx.post(url + "/v1/chat/completions", content=raw, headers=AUTH)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert r.headers["x-request-id"] in error["message"]


def test_valid_rich_request_passes_validation(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    r = client.chat.completions.create(
        model="offline/echo", max_tokens=5, temperature=0, top_p=1, stop=["zz"], seed=1,
        user="me", response_format={"type": "text"}, metadata={"a": "b"}, store=False,
        messages=[{"role": "developer", "content": "be brief"},
                  {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c1", "type": "function",
                       "function": {"name": "f", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "42"},
                  {"role": "user", "content": "again"}])
    assert r.choices[0].finish_reason == "length"
    client.close()


def test_request_schema_is_exposed_for_openapi():
    from ember.gateway import schemas

    doc = schemas.CHAT_COMPLETIONS_OPENAPI
    body = doc["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "ChatCompletionRequest"
    assert {"model", "messages"} <= set(body["required"])
    # self-contained: no reference into a document root it will not be the root of
    assert "$ref" not in str(body) and "$defs" not in str(body)
    assert body["properties"]["messages"]["items"]  # the message schema, inlined
    assert doc["responses"]["400"]["content"]["application/json"]["schema"] == \
        schemas.ERROR_SCHEMA


# -- keys (#10 fault 5) -----------------------------------------------------------------------
def _start(app, address):
    app.state.bound_address = address  # what the worker sets before startup

    async def go():
        await app.startup()
        await app.shutdown()

    asyncio.run(go())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_keyless_gateway_refuses_to_start_off_loopback(host):
    app = Ember()
    app.mount_openai("offline/echo")
    with pytest.raises(RuntimeError, match="api_keys"):
        _start(app, (host, 8000))
    ok = Ember()
    ok.mount_openai("offline/echo", allow_unauthenticated=True)
    _start(ok, (host, 8000))
    keyed = Ember()
    keyed.mount_openai("offline/echo", api_keys=["sk-a-key"])
    _start(keyed, (host, 8000))


def test_keyless_gateway_on_loopback_warns_and_serves(serve, caplog):
    app = gateway_app()
    app.mount_openai("offline/echo")
    with caplog.at_level(logging.WARNING, logger="ember.gateway"):
        url = serve(app, host="127.0.0.1")
    assert any("without api_keys" in r.getMessage() for r in caplog.records)
    r = httpx.post(url + "/v1/chat/completions", content=_body())
    assert r.status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic sk-gateway-key",
                                    "Bearer sk-gateway-key2", "Bearer"])
def test_wrong_keys_get_openai_401(url, header):
    headers = {"authorization": header} if header else {}
    for method, path in (("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
                         ("GET", "/v1/models"), ("GET", "/v1/models/offline/echo")):
        r = httpx.request(method, url + path, headers=headers, content=b"{}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


# -- aliases ------------------------------------------------------------------------------------
def test_aliases_and_fallback_lists(fake, serve):
    app = gateway_app()
    app.mount_openai({"fast": "offline/echo", "smart": ["gpt-4o", "offline/upper"]},
                     api_keys={"team": "sk-gateway-key"})
    url = serve(app)
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    assert [m.id for m in client.models.list()] == ["fast", "smart"]
    r = client.chat.completions.create(model="fast", messages=USER)
    assert r.model == "fast" and "You said: hi" in r.choices[0].message.content
    # the first model of "smart" fails upstream: the router falls back to the next one
    fake.queue("openai", *[Reply(status=503, body=b'{"error": {"message": "down"}}')] * 4)
    r = client.chat.completions.create(model="smart", messages=USER)
    assert r.model == "smart" and "HI" in r.choices[0].message.content
    chunks = list(client.chat.completions.create(model="smart", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.NotFoundError):  # real ids are not public names
        client.chat.completions.create(model="offline/echo", messages=USER)
    client.close()


@pytest.mark.parametrize("bad", [{}, {"x": []}, {"x": 5}, {"": "offline/echo"}, [], "",
                                 {"x": ["gpt-4o", 3]}])
def test_bad_model_maps_are_refused_at_mount(bad):
    with pytest.raises(ValueError):
        Ember().mount_openai(bad)


# -- budgets and usage metrics -----------------------------------------------------------------
def test_token_budget_per_key_gives_openai_429(serve):
    from ember.observability import Metrics

    app = gateway_app()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)
    app.mount_openai(["offline/echo"], api_keys={"alice": "sk-alice-key", "bob": "sk-bob-key"},
                     budget={"alice": Budget(tokens=300, period="day")})
    url = serve(app)
    alice = openai.OpenAI(base_url=url + "/v1", api_key="sk-alice-key", max_retries=0)
    bob = openai.OpenAI(base_url=url + "/v1", api_key="sk-bob-key", max_retries=0)
    spent = 0
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(100):  # each call reserves its worst case: body size + 5 tokens
            spent += alice.chat.completions.create(model="offline/echo", messages=USER,
                                                   max_tokens=5).usage.total_tokens
    assert 0 < spent <= 300
    assert info.value.code == "insufficient_quota"
    assert int(info.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError):  # streamed requests are checked too
        list(alice.chat.completions.create(model="offline/echo", messages=USER, stream=True))
    bob.chat.completions.create(model="offline/echo", messages=USER)  # no budget for bob
    text = httpx.get(url + "/metrics").text
    assert 'ember_gateway_key_tokens_total{key="alice",model="offline/echo",kind="prompt"}' \
        in text
    assert 'key="bob"' in text and "sk-alice-key" not in text
    assert 'ember_model_tokens_total{model="offline/echo",kind="completion"}' in text
    alice.close()
    bob.close()


def test_budget_window_renews_with_the_clock():
    from ember.gateway.budgets import Budgets

    now = [1000.0]
    budgets = Budgets(Budget(cost=1.0, period="hour"), clock=lambda: now[0])

    async def go():
        assert await budgets.check("k") is None
        await budgets.charge("k", 10, 1.5)
        wait = await budgets.check("k")
        assert wait is not None and 0 < wait <= 3600
        now[0] += wait
        assert await budgets.check("k") is None

    asyncio.run(go())


def test_redis_budget_is_shared_by_workers(redis_server, serve):
    urls = []
    for _ in range(2):  # two apps = two workers sharing one Redis
        app = gateway_app()
        app.mount_openai("offline/echo", api_keys={"k": "sk-gateway-key"},
                         budget=Budget(tokens=400, period=3600),
                         budget_store=redis_server.url + "/3")
        urls.append(serve(app))
    spent = 0
    for _ in range(100):
        r = httpx.post(urls[0] + "/v1/chat/completions", content=_body(max_tokens=5),
                       headers=AUTH)
        if r.status_code == 429:
            break
        spent += r.json()["usage"]["total_tokens"]
    assert 0 < spent <= 400
    r = httpx.post(urls[1] + "/v1/chat/completions", content=_body(max_tokens=5), headers=AUTH)
    assert r.status_code == 429 and r.json()["error"]["type"] == "insufficient_quota"


def test_budget_store_down_fails_closed(serve, caplog):
    # a budget is money: without its store, budgeted keys wait (503 + Retry-After)
    app = gateway_app()
    app.mount_openai("offline/echo", api_keys=["sk-gateway-key"], budget=Budget(tokens=1),
                     budget_store="redis://:hunter2pass@127.0.0.1:1/0")
    url = serve(app)
    with caplog.at_level(logging.WARNING, logger="ember.gateway"):
        for _ in range(2):
            r = httpx.post(url + "/v1/chat/completions", content=_body(), headers=AUTH)
            assert r.status_code == 503 and r.headers["retry-after"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unavailable" in logged and "hunter2pass" not in logged


@pytest.mark.parametrize("bad", [dict(), dict(tokens=-1), dict(tokens=1.5), dict(cost="1"),
                                 dict(tokens=1, period="fortnight"), dict(tokens=1, period=0)])
def test_bad_budgets_are_refused(bad):
    with pytest.raises(ValueError):
        Budget(**bad)


def test_model_calls_are_recorded_in_metrics_without_a_manual_hook():
    from ember.api import models
    from ember.observability import Metrics

    metrics = Metrics()
    models("offline/echo", "count me")
    text = metrics.render()
    assert 'ember_model_tokens_total{model="offline/echo",kind="prompt"}' in text


# -- embeddings ---------------------------------------------------------------------------------
def test_embeddings_offline_float_and_base64(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    r = client.embeddings.create(model="offline/echo", input=["hello world", "hello"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 64
    assert r.usage.prompt_tokens > 0
    raw = httpx.post(url + "/v1/embeddings", headers=AUTH, content=orjson.dumps(
        {"model": "offline/echo", "input": "hello", "encoding_format": "base64"})).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    vec = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert vec == pytest.approx(r.data[1].embedding, rel=1e-6)
    client.close()


@pytest.mark.filterwarnings("ignore::ember.models.pricing.PricingWarning")
def test_embeddings_through_providers(fake, serve):
    app = gateway_app()
    app.mount_openai({"small": "text-embedding-3-small", "gem": "google/text-embedding-004",
                      "claude": "claude-sonnet-4-5"}, api_keys=["sk-gateway-key"])
    url = serve(app)
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    r = client.embeddings.create(model="small", input=["a", "b"], dimensions=3)
    assert [d.embedding for d in r.data] == [[0.5, -0.5, 0.0], [0.5, -0.5, 1.0]]
    assert fake.last("embeddings").body["dimensions"] == 3
    g = client.embeddings.create(model="gem", input="x")
    assert g.data[0].embedding == [0.25, 0.0] and g.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude", input="x")
    assert info.value.param == "model"
    for bad in ({"model": "small", "input": []}, {"model": "small", "input": [1, 2]},
                {"model": "small", "input": ""}, {"model": "small"}):
        resp = httpx.post(url + "/v1/embeddings", headers=AUTH, content=orjson.dumps(bad))
        assert resp.status_code == 400 and resp.json()["error"]["param"], bad
    client.close()


# -- overload -----------------------------------------------------------------------------------
def test_over_max_in_flight_is_refused_fast_with_retry_after(fake, serve):
    gate = threading.Event()
    app = gateway_app()
    app.mount_openai("gpt-4o", api_keys=["sk-gateway-key"], max_in_flight=1, max_queue=0)
    url = serve(app)
    # the first stream holds the only slot until the upstream sends its rest (gate)
    held = _wire.openai_sse(["slow"])
    fake.handler = lambda seen: (gate.wait(30), Reply(
        body=held, content_type="text/event-stream", chunked=True))[1]
    first: dict = {}

    def run_first():
        with httpx.stream("POST", url + "/v1/chat/completions", headers=AUTH, timeout=30,
                          content=orjson.dumps({"model": "gpt-4o", "messages": USER,
                                                "stream": True})) as r:
            first["status"] = r.status_code
            first["body"] = r.read()

    t = threading.Thread(target=run_first)
    t.start()
    try:
        for _ in range(300):  # wait (event-based) until the upstream holds the request
            if fake.count("openai"):
                break
            threading.Event().wait(0.02)
        r = httpx.post(url + "/v1/chat/completions", headers=AUTH,
                       content=orjson.dumps({"model": "gpt-4o", "messages": USER}))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "overloaded"
    finally:
        gate.set()
        t.join(30)
        fake.handler = None
    assert first["status"] == 200 and b"[DONE]" in first["body"]
    r = httpx.post(url + "/v1/chat/completions", headers=AUTH,  # the slot was released
                   content=orjson.dumps({"model": "gpt-4o", "messages": USER}))
    assert r.status_code == 200


@pytest.mark.parametrize("options", [
    {"max_in_flight": 0}, {"max_in_flight": True}, {"max_in_flight": "10"},
    {"max_queue": -1}, {"max_queue": "5"}, {"queue_timeout": 0}, {"queue_timeout": "1"},
    {"queue_timeout": float("nan")}, {"limits": 5}, {"limits": {"k": 5}},
    {"limit_store": "redis://localhost"},
    {"budget": 5}, {"budget": {"k": 5}}, {"budget_store": "redis://localhost"},
    {"budget": Budget(tokens=1), "budget_store": "http://not-redis"},
    {"api_keys": "sk-single-string"}, {"api_keys": []}, {"api_keys": [""]},
    {"api_keys": {"": "sk-key"}}, {"api_keys": [123]}, {"prefix": "v1"}, {"prefix": "/v1/"},
])
def test_bad_mount_options_are_refused_with_a_reason(options):
    with pytest.raises(ValueError) as info:
        Ember().mount_openai("offline/echo", **options)
    assert str(info.value)
    assert "sk-single-string" not in str(info.value)  # a key never lands in an error


def test_redis_url_with_password_is_redacted_in_errors():
    with pytest.raises(ValueError) as info:
        Ember().mount_openai("offline/echo", budget=Budget(tokens=1),
                             budget_store="http://user:hunter2pass@host/")
    assert "hunter2pass" not in str(info.value)
