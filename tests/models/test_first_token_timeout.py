"""``first_token_timeout`` on the model streams, sync and async alike, against the local
fake provider: an upstream that sends only keep-alives, one that goes silent after the
response head, and one that never answers at all (issue #22)."""

from __future__ import annotations

import asyncio
import math

import pytest

from ember.api.exceptions import ProviderAPIError
from tests.models import _wire
from tests.models._fake import Reply

GUARD = 30  # seconds: a hang guard, not a timing claim


def _role_then(*pieces: bytes | float) -> Reply:
    """A role delta with empty content (not a token), then ``pieces``."""
    first = _wire.sse(_wire.openai_chunk({"role": "assistant", "content": ""}))
    return Reply(body=[first, *pieces], content_type="text/event-stream", chunked=True)


def keepalives(n: int = 300) -> Reply:
    return _role_then(*[p for _ in range(n) for p in (b": keep-alive\n\n", 0.05)])


def silent_then_tokens(seconds: float = 8.0) -> Reply:
    """The head, a role delta, then nothing for ``seconds`` (under the read timeout of 10 s
    the fixtures set) and a normal answer: only the first-token timeout can cut it."""
    return _role_then(seconds, *_wire.openai_sse(["late"])[1:])


def no_head(seconds: float = 8.0) -> Reply:
    return Reply(delay=seconds, body=_wire.openai_sse(["late"]),
                 content_type="text/event-stream", chunked=True)


def _assert_stalled(exc: ProviderAPIError, limit: float) -> None:
    assert exc.error_type == "timeout"
    assert exc.context["first_token_timeout"] == limit
    assert "first_token_timeout" in str(exc)


@pytest.mark.parametrize("reply", [keepalives, silent_then_tokens, no_head],
                         ids=["keepalives", "silent-body", "no-head"])
def test_sync_stream_gives_up_without_a_first_token(fake, registry, reply):
    fake.queue("openai", reply())
    stream = registry.stream_model("gpt-4o-mini", "hi", first_token_timeout=1.0)
    with pytest.raises(ProviderAPIError) as info:
        for _ in stream:
            pass
    _assert_stalled(info.value, 1.0)
    assert fake.count("openai") == 1  # a stall is not retried on the same model
    assert stream.usage is not None  # recorded (a local estimate of the input at most)


@pytest.mark.parametrize("reply", [keepalives, silent_then_tokens, no_head],
                         ids=["keepalives", "silent-body", "no-head"])
def test_async_stream_gives_up_without_a_first_token(fake, registry, reply):
    fake.queue("openai", reply())

    async def main():
        return [c async for c in registry.stream_model_async("gpt-4o-mini", "hi",
                                                             first_token_timeout=1.0)]

    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(asyncio.wait_for(main(), GUARD))
    _assert_stalled(info.value, 1.0)


def test_a_slow_but_live_sync_stream_is_kept(fake, registry):
    """Gaps after the first token are not the first-token timeout (the head's shorter read
    timeout is not left on the body)."""
    frames = _wire.openai_sse(["a", " b", " c"])
    fake.queue("openai", Reply(body=[frames[0], 0.1, frames[1], 1.7, *frames[2:]],
                               content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("gpt-4o-mini", "x", first_token_timeout=1.5)
    assert "".join(c.text for c in stream) == "a b c"
    assert stream.usage.completion_tokens == 7 and not stream.usage.estimated


def test_anthropic_sync_stall_keeps_the_reported_input(fake, registry):
    """message_start reported the input, then only pings: the usage of the abandoned
    stream keeps what Anthropic reported."""
    frames: list[bytes | float] = [_wire.anthropic_sse([], stop=False)[0]]
    for _ in range(300):
        frames += [_wire.sse({"type": "ping"}, "ping"), b": keep-alive\n\n", 0.05]
    fake.queue("anthropic", Reply(body=frames, content_type="text/event-stream",
                                  chunked=True))
    stream = registry.stream_model("claude-3-5-haiku-latest", "hi", first_token_timeout=1.0)
    with pytest.raises(ProviderAPIError) as info:
        list(stream)
    _assert_stalled(info.value, 1.0)
    assert stream.usage.prompt_tokens == 25


@pytest.mark.parametrize("bad", [0, -1, "soon", math.nan, math.inf, True, [1]])
def test_garbage_first_token_timeout_is_refused(fake, registry, bad):
    with pytest.raises(ValueError, match="first_token_timeout"):
        registry.stream_model("gpt-4o-mini", "x", first_token_timeout=bad)
    with pytest.raises(ValueError, match="first_token_timeout"):
        registry.stream_model_async("gpt-4o-mini", "x", first_token_timeout=bad)
    with pytest.raises(ValueError, match="first_token_timeout"):
        registry.invoke_model("gpt-4o-mini", "x", first_token_timeout=bad)
    assert fake.count() == 0


def test_completed_calls_accept_and_leave_it_out(fake, registry):
    """A completed call has no first token: the option is checked, then not sent upstream."""
    assert registry.invoke_model("gpt-4o-mini", "hi", first_token_timeout=2).text
    assert "first_token_timeout" not in fake.last("openai").body
    assert asyncio.run(registry.invoke_model_async("offline/echo", "hi",
                                                   first_token_timeout=2)).text


def test_offline_provider_streams_accept_it(fake, registry):
    """A provider without an HTTP read to stop is checked between its chunks."""
    text = "".join(c.text for c in registry.stream_model("offline/echo", "hi",
                                                          first_token_timeout=5))
    assert text == "[offline echo] You said: hi"
