"""The one model-calling core: RetryPolicy decisions, first-token timeout, usage on the
stream object, the one chunk encoder — against the real local fake upstream."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ember import ModelRouter
from ember._chunks import DONE, ChunkEncoder
from ember.api.exceptions import ProviderAPIError
from ember.models.retry import RetryPolicy
from tests.models import _wire
from tests.models._fake import Reply


def _stalled_anthropic(pings: int = 400) -> Reply:
    """message_start, then only pings (event pings and SSE comments), never a token."""
    frames: list[bytes | float] = [_wire.anthropic_sse([], stop=False)[0]]
    for _ in range(pings):
        frames += [_wire.sse({"type": "ping"}, "ping"), b": keep-alive\n\n", 0.05]
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def _stalled_openai(pings: int = 400) -> Reply:
    """A role delta with empty content (no token), then only keep-alive comments."""
    frames: list[bytes | float] = [_wire.sse(_wire.openai_chunk({"role": "assistant",
                                                                 "content": ""}))]
    for _ in range(pings):
        frames += [b": keep-alive\n\n", 0.05]
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


@pytest.mark.parametrize("per_call", [False, True])
def test_first_token_timeout_falls_back_to_the_next_model(fake, registry, per_call):
    fake.queue("anthropic", _stalled_anthropic())
    kwargs = {} if per_call else {"first_token_timeout": 1.5}
    router = ModelRouter(["claude-3-5-haiku-latest", "offline/echo"], registry=registry,
                         max_retries=2, **kwargs)
    call = {"first_token_timeout": 1.5} if per_call else {}

    async def main():
        stream = router.stream("hi", **call)
        chunks = [c async for c in stream]
        return stream, "".join(c.text for c in chunks)

    stream, text = asyncio.run(asyncio.wait_for(main(), 30))
    assert text == "[offline echo] You said: hi"
    assert fake.count("anthropic") == 1  # stalled: the next model, not a retry of this one
    assert router.stats()["claude-3-5-haiku-latest"]["cooling_down"]
    keys = [k for k, _u, _e in stream.calls]
    assert keys == ["anthropic/claude-3-5-haiku-latest", "offline/echo"]
    stalled = stream.calls[0][1]
    # the abandoned attempt is billed: the input Anthropic reported in message_start (#20)
    assert stalled.prompt_tokens > 0 and stalled.completion_tokens >= 0


def test_empty_deltas_and_comments_are_not_a_first_token(fake, registry):
    fake.queue("openai", _stalled_openai())
    router = ModelRouter(["gpt-4o-mini", "offline/echo"], registry=registry,
                         first_token_timeout=1.5)

    async def main():
        return [c.text async for c in router.astream("yo")]

    assert "".join(asyncio.run(asyncio.wait_for(main(), 30))) == "[offline echo] You said: yo"


def test_a_slow_but_live_stream_is_kept(fake, registry):
    frames = _wire.openai_sse(["a", " b", " c"])
    fake.queue("openai", Reply(body=[frames[0], 0.1, *frames[1:2], 1.7, *frames[2:]],
                               content_type="text/event-stream", chunked=True))
    router = ModelRouter(["gpt-4o-mini", "offline/echo"], registry=registry,
                         first_token_timeout=1.5)

    async def main():
        stream = router.stream("x")
        return stream, "".join([c.text async for c in stream])

    stream, text = asyncio.run(main())
    assert text == "a b c"  # gaps after the first token are not the first-token timeout
    assert stream.usage.prompt_tokens == 9 and stream.usage.completion_tokens == 7


def test_every_model_stalled_raises_a_timeout_naming_the_limit(fake, registry):
    fake.queue("openai", _stalled_openai(), _stalled_openai())
    router = ModelRouter(["gpt-4o-mini", "gpt-4o"], registry=registry, first_token_timeout=1.0)

    async def main():
        return [c async for c in router.astream("x")]

    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(asyncio.wait_for(main(), 30))
    assert info.value.error_type == "timeout"
    assert info.value.context["first_token_timeout"] == 1.0
    assert info.value.context["code"] == "timeout"
    assert info.value.context["attempted_models"] == ["gpt-4o-mini", "gpt-4o"]


def test_retry_after_is_never_shortened(fake, registry):
    """A Retry-After beyond the policy's max_wait moves on at once instead of waiting less."""
    error = Reply(status=429, headers={"retry-after": "120"},
                  body=orjson.dumps({"error": {"message": "slow down", "type": "x"}}))
    fake.queue("openai", error)
    router = ModelRouter(["gpt-4o", "offline/echo"], registry=registry, max_retries=3)
    assert router("hi").text.startswith("[offline echo]")
    assert fake.count("openai") == 1


@pytest.mark.parametrize("bad", [
    {"max_retries": -1}, {"backoff": -0.1}, {"max_wait": -1}, {"cooldown": -1},
    {"failure_threshold": 0}, {"first_token_timeout": 0}, {"first_token_timeout": -2},
    {"retry_on": ["authentication"]}, {"retry_on": ["server", "bad_request"]},
])
def test_policy_garbage_is_refused(bad):
    args = {"max_retries": 1, "backoff": 0.1, "max_wait": 1.0, **bad}
    with pytest.raises(ValueError):
        RetryPolicy(args.pop("max_retries"), args.pop("backoff"), args.pop("max_wait"), **args)


def test_router_refuses_garbage_policy_and_timeout(registry):
    with pytest.raises(ValueError):
        ModelRouter(["offline/echo"], policy="fast", registry=registry)
    router = ModelRouter(["offline/echo"], registry=registry)

    async def main():
        return [c async for c in router.astream("x", first_token_timeout="soon")]

    with pytest.raises(ValueError, match="first_token_timeout"):
        asyncio.run(main())


def test_policy_decisions():
    policy = RetryPolicy(2, 1.5, 10.0)

    def err(kind: str, **ctx: object) -> ProviderAPIError:
        return ProviderAPIError("x", error_type=kind, context=ctx)

    assert policy.delay(0, err("authentication")) is None
    assert policy.delay(0, err("bad_request")) is None
    assert policy.delay(2, err("server")) is None  # attempts used up
    assert 0.75 <= policy.delay(0, err("server")) <= 1.5  # backoff with jitter
    assert policy.delay(0, ProviderAPIError("x", error_type="rate_limit",
                                            retry_after=7.5)) == 7.5
    assert policy.delay(0, ProviderAPIError("x", error_type="rate_limit",
                                            retry_after=11)) is None
    assert policy.delay(0, err("server", malformed=True)) is None
    assert policy.delay(0, err("server", malformed=True), malformed=True) is not None
    assert policy.delay(0, ValueError("not a model error")) is None
    assert policy.replace(max_retries=0).delay(0, err("server")) is None


@pytest.mark.parametrize("model", ["gpt-4o", "m\u00e9t\u00e9o \"quoted\"", ""])
def test_chunk_encoder_bytes_equal_a_full_dump(model):
    enc = ChunkEncoder("chatcmpl-1", model, 1700000000)
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "system_fingerprint": None}
    choice = {"index": 2, "delta": {"content": "h\u00e9\n"}, "logprobs": None,
              "finish_reason": "stop"}
    assert enc.choice(2, {"content": "h\u00e9\n"}, "stop") == \
        b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert enc.usage(usage) == \
        b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
    assert DONE == b"data: [DONE]\n\n"


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf", "nan"])
def test_env_first_token_timeout_garbage_is_refused(registry, monkeypatch, raw):
    monkeypatch.setenv("EMBER_MODEL_FIRST_TOKEN_TIMEOUT", raw)
    with pytest.raises(ValueError, match="EMBER_MODEL_FIRST_TOKEN_TIMEOUT"):
        ModelRouter(["offline/echo"], registry=registry)


def test_gateway_fallback_list_abandons_a_stalled_upstream(fake, serve, monkeypatch):
    """The official openai SDK streams from a fallback list whose first model only pings."""
    openai = pytest.importorskip("openai")
    from ember import Ember

    monkeypatch.setenv("EMBER_MODEL_FIRST_TOKEN_TIMEOUT", "1.5")
    fake.queue("anthropic", _stalled_anthropic())
    app = Ember()
    app.mount_openai({"smart": ["claude-3-5-haiku-latest", "offline/echo"]}, api_keys=["k"])
    client = openai.OpenAI(base_url=serve(app) + "/v1", api_key="k", max_retries=0,
                           timeout=30)
    stream = client.chat.completions.create(model="smart", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "[offline echo] You said: hi"
    assert fake.count("anthropic") == 1
    client.close()


# -- the sync driver: same option, same fallback (issue #22) ---------------------------------
def _silent_openai(seconds: float = 8.0) -> Reply:
    """The head and a role delta, then nothing at all (no keep-alives), then a late token."""
    frames = _wire.openai_sse(["late"])
    return Reply(body=[_wire.sse(_wire.openai_chunk({"role": "assistant", "content": ""})),
                       seconds, *frames[1:]], content_type="text/event-stream", chunked=True)


@pytest.mark.parametrize("per_call", [False, True])
def test_sync_first_token_timeout_falls_back_to_the_next_model(fake, registry, per_call):
    fake.queue("anthropic", _stalled_anthropic())
    kwargs = {} if per_call else {"first_token_timeout": 1.5}
    router = ModelRouter(["claude-3-5-haiku-latest", "offline/echo"], registry=registry,
                         max_retries=2, **kwargs)
    stream = router.stream("hi", **({"first_token_timeout": 1.5} if per_call else {}))
    assert "".join(c.text for c in stream) == "[offline echo] You said: hi"
    assert fake.count("anthropic") == 1
    assert router.stats()["claude-3-5-haiku-latest"]["cooling_down"]
    assert [k for k, _u, _e in stream.calls] == ["anthropic/claude-3-5-haiku-latest",
                                                 "offline/echo"]
    assert stream.calls[0][1].prompt_tokens > 0  # the abandoned attempt is billed


@pytest.mark.parametrize("upstream", [_stalled_openai, _silent_openai],
                         ids=["keepalives", "silent"])
def test_sync_stream_sync_iteration_abandons_a_stalled_model(fake, registry, upstream):
    fake.queue("openai", upstream())
    router = ModelRouter(["gpt-4o-mini", "offline/echo"], registry=registry,
                         first_token_timeout=1.0)
    assert "".join(c.text for c in router.stream_sync("yo")) == "[offline echo] You said: yo"
    assert fake.count("openai") == 1


def test_sync_every_model_stalled_raises_a_timeout_naming_the_limit(fake, registry):
    fake.queue("openai", _stalled_openai(), _silent_openai())
    router = ModelRouter(["gpt-4o-mini", "gpt-4o"], registry=registry, first_token_timeout=1.0)
    with pytest.raises(ProviderAPIError) as info:
        list(router.stream_sync("x"))
    assert info.value.error_type == "timeout"
    assert info.value.context["first_token_timeout"] == 1.0
    assert info.value.context["attempted_models"] == ["gpt-4o-mini", "gpt-4o"]


def test_sync_slow_but_live_stream_is_kept_and_garbage_refused(fake, registry):
    frames = _wire.openai_sse(["a", " b", " c"])
    fake.queue("openai", Reply(body=[frames[0], 0.1, *frames[1:2], 1.7, *frames[2:]],
                               content_type="text/event-stream", chunked=True))
    router = ModelRouter(["gpt-4o-mini", "offline/echo"], registry=registry,
                         first_token_timeout=1.5)
    stream = router.stream("x")
    assert "".join(c.text for c in stream) == "a b c"
    assert stream.usage.completion_tokens == 7
    with pytest.raises(ValueError, match="first_token_timeout"):
        list(router.stream_sync("x", first_token_timeout="soon"))
