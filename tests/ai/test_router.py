"""ModelRouter over the model system, with a real fake upstream that fails on demand."""

from __future__ import annotations

import asyncio
import time

import pytest

from ember import Ember, JSONResponse, ModelRouter, Request
from ember.models import ModelRegistry


@pytest.fixture
def registry():
    reg = ModelRegistry()
    yield reg
    reg.close()


@pytest.fixture
def upstream(serve, monkeypatch):
    """An OpenAI-compatible server whose status codes the test controls."""
    app = Ember()
    app.state.plan = []  # statuses to answer, in order; then 200
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        app.state.calls += 1
        body = await request.json()
        status = app.state.plan.pop(0) if app.state.plan else 200
        if status != 200:
            return JSONResponse({"error": {"message": f"status {status}", "type": "x"}}, status,
                                headers={"retry-after": "0"} if status == 429 else None)
        return {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "upstream"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}

    url = serve(app)
    monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("EMBER_MODEL_MAX_RETRIES", "0")
    return app


def test_fallback_on_rate_limit_and_server_errors(upstream, registry):
    upstream.state.plan = [429, 429, 500, 500]
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=1, backoff=0.01,
                         registry=registry)
    response = asyncio.run(router.acomplete("hi"))
    assert "offline" in response.text  # gpt-4o failed twice, then the fallback answered
    assert upstream.state.calls == 2
    response = router.complete("again")  # 500, 500 → fallback again; now in cooldown
    assert "offline" in response.text
    assert router.stats()["gpt-4o"]["cooling_down"]
    assert router.order()[0] == "offline/echo"


def test_authentication_errors_are_not_retried_and_keep_their_type(upstream, registry):
    upstream.state.plan = [401]
    router = ModelRouter(["gpt-4o", "offline/echo"], registry=registry)
    with pytest.raises(Exception) as info:
        asyncio.run(router.acomplete("hi"))
    assert info.value.context["error_type"] == "authentication"
    assert upstream.state.calls == 1


def test_all_failing_raises_the_last_provider_error(upstream, registry):
    upstream.state.plan = [503] * 10
    router = ModelRouter(["gpt-4o", "openai/gpt-4o-mini"], max_retries=0,
                         registry=registry)
    with pytest.raises(Exception) as info:
        router.complete("hi")
    assert info.value.context["error_type"] == "server"
    assert info.value.context["attempted_models"] == ["gpt-4o", "openai/gpt-4o-mini"]


def test_streaming_falls_back_before_the_first_token(upstream, registry):
    upstream.state.plan = [429, 429]
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=1, backoff=0.01,
                         registry=registry)

    async def main():
        return "".join([c.text async for c in router.astream("stream please")])

    assert "stream please" in asyncio.run(main())
    assert "stream please" in "".join(c.text for c in router.stream("stream please"))


def test_strategies(upstream, registry):
    rr = ModelRouter(["offline/a", "offline/b"], strategy="round_robin",
                     registry=registry)
    seen = [rr.complete("x").text.split("]")[0] for _ in range(4)]
    assert seen == ["[offline a", "[offline b", "[offline a", "[offline b"]
    cost = ModelRouter(["gpt-4", "gpt-4o-mini"], strategy="cost", registry=registry)
    assert cost.order() == ["gpt-4o-mini", "gpt-4"]
    lat = ModelRouter(["offline/slow", "offline/fast"], strategy="latency",
                      registry=registry)
    lat._succeeded("offline/slow", 1.0)
    lat._succeeded("offline/fast", 0.01)
    assert lat.order()[0] == "offline/fast"
    busy = ModelRouter(["offline/a", "offline/b"], strategy="least_busy",
                       registry=registry)
    busy._state["offline/a"].in_flight = 3
    assert busy.order()[0] == "offline/b"


@pytest.mark.parametrize("kwargs", [{"models": []}, {"models": "gpt-4"},
                                    {"models": ["a"], "strategy": "random"},
                                    {"models": ["a"], "cooldown": -1}])
def test_bad_configuration(kwargs):
    with pytest.raises(ValueError):
        ModelRouter(**kwargs)


def test_cooldown_expires(upstream, registry):
    router = ModelRouter(["gpt-4o", "offline/echo"], cooldown=0.1, failure_threshold=1,
                         registry=registry)
    router._failed("gpt-4o")
    assert router.order()[0] == "offline/echo"
    time.sleep(0.15)
    assert router.order()[0] == "gpt-4o"
