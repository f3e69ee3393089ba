"""ModelRouter over the model system, against a real local fake upstream that fails on demand."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ember import ModelRouter
from ember.ai.router import RouterStream
from ember.api.exceptions import ModelProviderError, ProviderAPIError
from tests._clock import FakeClock
from tests.models import _wire
from tests.models._fake import Reply


def _error(status: int, **headers: str) -> Reply:
    return Reply(status=status, body=orjson.dumps({"error": {"message": f"status {status}",
                                                             "type": "x"}}), headers=headers)


def test_fallback_on_rate_limit_and_server_errors(fake, registry):
    fake.queue("openai", _error(429, **{"retry-after": "0"}), _error(500))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=1, backoff=0.001,
                         registry=registry)
    response = asyncio.run(router.acomplete("hi"))
    assert response.text == "[offline echo] You said: hi"
    assert fake.count("openai") == 2  # one try + one retry, no retries inside the provider
    stats = router.stats()
    assert stats["gpt-4o"]["cooling_down"] and stats["offline/echo"]["calls"] == 1
    assert router.order() == ["offline/echo", "gpt-4o"]
    assert router("again").text.startswith("[offline echo]")  # sync, cooling model skipped
    assert fake.count("openai") == 2


def test_a_retry_on_the_same_model_can_succeed(fake, registry):
    fake.queue("openai", _error(503))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=2, backoff=0.001,
                         registry=registry)
    assert router.complete("hello").text == "Echo: hello"  # sync from sync code
    assert fake.count("openai") == 2
    assert not router.stats()["gpt-4o"]["cooling_down"]


def test_complete_is_awaitable_inside_a_loop(fake, registry):
    router = ModelRouter(["offline/upper"], registry=registry)

    async def main():
        return await router.complete("shout")

    assert asyncio.run(main()).text == "[offline upper] SHOUT"


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication"), (403, "authentication"),
                                              (400, "bad_request")])
def test_non_retryable_errors_are_raised_intact(fake, registry, status, kind):
    fake.queue("openai", _error(status))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=3, registry=registry)
    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(router.acomplete("hi"))
    assert info.value.context["error_type"] == kind
    assert info.value.status_code == status
    assert fake.count("openai") == 1
    assert not router.stats()["gpt-4o"]["cooling_down"]


def test_a_missing_api_key_falls_back_with_one_warning(registry, monkeypatch, caplog):
    monkeypatch.delenv("OPENAI_API_KEY")
    router = ModelRouter(["gpt-4o", "offline/echo"], registry=registry)
    with caplog.at_level("WARNING", logger="ember.ai.router"):
        assert router.complete("hi").text.startswith("[offline echo]")
        assert "".join(c.text for c in router.stream("again")).startswith("[offline echo]")
        assert asyncio.run(router.acomplete("async")).text.startswith("[offline echo]")
    warnings = [r.getMessage() for r in caplog.records if "skipping gpt-4o" in r.getMessage()]
    assert len(warnings) == 1 and "OPENAI_API_KEY" in warnings[0]


def test_a_missing_api_key_with_nothing_else_is_raised(registry, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    router = ModelRouter(["gpt-4o"], registry=registry)
    with pytest.raises(ModelProviderError, match="OPENAI_API_KEY") as info:
        router.complete("hi")
    assert info.value.context["attempted_models"] == ["gpt-4o"]


def test_all_failing_raises_the_last_provider_error(fake, registry):
    fake.handler = lambda seen: _error(503)
    router = ModelRouter(["gpt-4o", "openai/gpt-4o-mini"], max_retries=1, backoff=0.001,
                         registry=registry)
    with pytest.raises(ProviderAPIError) as info:
        router.complete("hi")
    assert info.value.context["error_type"] == "server"
    assert info.value.context["attempted_models"] == ["gpt-4o", "openai/gpt-4o-mini"]
    assert fake.count("openai") == 4


def test_timeouts_fall_back(fake, registry):
    # NOTE: an upstream hung for a minute; only the 0.3 s timeout can end this in time
    # (the wait_for is a hang guard, never reached when the timeout works)
    fake.queue("openai", Reply(delay=60.0))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=0, registry=registry)
    response = asyncio.run(asyncio.wait_for(router.acomplete("slow?", timeout=0.3), 30))
    assert response.text.startswith("[offline echo]")


def test_streaming_falls_back_before_the_first_token(fake, registry):
    fake.queue("openai", _error(429), _error(429), _error(500), _error(500))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=1, backoff=0.001,
                         cooldown=0, registry=registry)

    async def main():
        stream = router.stream("stream please")
        assert isinstance(stream, RouterStream)
        return "".join([c.text async for c in stream])

    assert asyncio.run(main()) == "[offline echo] You said: stream please"
    assert "".join(c.text for c in router.stream("sync too")) == \
        "[offline echo] You said: sync too"
    assert fake.count("openai") == 4


def test_streaming_does_not_fall_back_after_the_first_token(fake, registry):
    frames = _wire.openai_sse(["Hel", "lo"], usage=None, done=False)[:2]
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True,
                               abort=True))
    router = ModelRouter(["gpt-4o", "offline/echo"], max_retries=2, backoff=0.001,
                         registry=registry)
    got: list[str] = []

    async def main():
        async for chunk in router.astream("hi"):
            got.append(chunk.text)

    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(main())
    assert info.value.context["error_type"] in ("connection", "server")
    assert "Hel" in "".join(got) and "offline" not in "".join(got)
    assert fake.count("openai") == 1


def test_streams_from_the_upstream_when_it_works(fake, registry):
    router = ModelRouter(["gpt-4o", "offline/echo"], registry=registry)

    async def main():
        return "".join([c.text async for c in router.stream("live")])

    assert asyncio.run(main()) == "Echo: live"


def test_strategies(fake, registry):
    rr = ModelRouter(["offline/a", "offline/b"], strategy="round_robin", registry=registry)
    seen = [rr.complete("x").text.split("]")[0] for _ in range(4)]
    assert seen == ["[offline a", "[offline b", "[offline a", "[offline b"]
    cost = ModelRouter(["gpt-4", "gpt-4o-mini", "offline/echo"], strategy="cost",
                       registry=registry)
    assert cost.order() == ["offline/echo", "gpt-4o-mini", "gpt-4"]
    lat = ModelRouter(["offline/slow", "offline/fast", "offline/new"], strategy="latency",
                      registry=registry)
    lat._succeeded("offline/slow", 1.0)
    lat._succeeded("offline/fast", 0.01)
    assert lat.order() == ["offline/new", "offline/fast", "offline/slow"]
    busy = ModelRouter(["offline/a", "offline/b"], strategy="least_busy", registry=registry)
    busy._state["offline/a"].in_flight = 3
    assert busy.order()[0] == "offline/b"


def test_least_busy_spreads_concurrent_calls(registry, monkeypatch):
    monkeypatch.setenv("EMBER_OFFLINE_TOKEN_DELAY", "0.01")
    router = ModelRouter(["offline/a", "offline/b"], strategy="least_busy", registry=registry)

    async def one():
        return "".join([c.text async for c in router.stream("some words to stream")])

    async def main():
        return await asyncio.gather(*(one() for _ in range(4)))

    answers = asyncio.run(main())
    assert sum(a.startswith("[offline a]") for a in answers) == 2
    assert all(s["in_flight"] == 0 for s in router.stats().values())


@pytest.mark.parametrize("kwargs", [{"models": []}, {"models": "gpt-4"}, {"models": [1]},
                                    {"models": ["a"], "strategy": "random"},
                                    {"models": ["a"], "cooldown": -1},
                                    {"models": ["a"], "failure_threshold": 0}])
def test_bad_configuration(kwargs):
    with pytest.raises(ValueError):
        ModelRouter(**kwargs)


def test_cooldown_expires(registry, monkeypatch):
    clock = FakeClock.install(monkeypatch, "ember.ai.router")
    router = ModelRouter(["gpt-4o", "offline/echo"], cooldown=0.1, registry=registry)
    router._failed("gpt-4o")
    assert router.order()[0] == "offline/echo"
    clock.advance(0.05)
    assert router.order()[0] == "offline/echo"
    clock.advance(0.051)
    assert router.order()[0] == "gpt-4o"
