"""Usage with every billed class (cached read, cache write, reasoning, audio), every
provider, streamed and not, priced per class — and shown by the gateway as OpenAI does."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ember.models import ModelRegistry
from ember.models.pricing import Pricing
from tests.models import _wire
from tests.models._fake import Reply

OPENAI_USAGE = {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 6},
                "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 8,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}
ANTHROPIC_START = {"input_tokens": 10, "cache_read_input_tokens": 2500,
                   "cache_creation_input_tokens": 0, "output_tokens": 1}
# NOTE: the final message_delta of today's API repeats input_tokens WITHOUT the cache
ANTHROPIC_DELTA = {"input_tokens": 10, "output_tokens": 15, "cache_read_input_tokens": 2500}
GEMINI_META = {"promptTokenCount": 1200, "candidatesTokenCount": 40, "thoughtsTokenCount": 100,
               "cachedContentTokenCount": 1024, "totalTokenCount": 1340,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1100},
                                       {"modality": "AUDIO", "tokenCount": 100}],
               "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 40}]}


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def _anthropic_stream(delta_usage):
    frames = _wire.anthropic_sse(["Hel", "lo"], "claude-3-5-haiku", stop=False)
    start = orjson.loads(frames[0].split(b"data: ", 1)[1])
    start["message"]["usage"] = ANTHROPIC_START
    frames[0] = _wire.sse(start, "message_start")
    frames += [_wire.sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                          "usage": delta_usage}, "message_delta"),
               _wire.sse({"type": "message_stop"}, "message_stop")]
    return _sse(frames)


def _openai(fake, stream):
    if stream:
        frames = _wire.openai_sse(["Hi"], usage=None)
        frames.insert(-1, _wire.sse(_wire.openai_chunk(None, usage=OPENAI_USAGE, choices=False)))
        fake.queue("openai", _sse(frames))
    else:
        body = _wire.openai_completion("Hi", "gpt-4o")
        body["usage"] = OPENAI_USAGE
        fake.queue("openai", Reply(body=orjson.dumps(body)))
    return "gpt-4o"


def _anthropic(fake, stream):
    if stream:
        fake.queue("anthropic", _anthropic_stream(ANTHROPIC_DELTA))
    else:
        body = _wire.anthropic_message("Hello", "claude-3-5-haiku")
        body["usage"] = {**ANTHROPIC_START, "output_tokens": 15}
        fake.queue("anthropic", Reply(body=orjson.dumps(body)))
    return "claude-3-5-haiku"


def _google(fake, stream):
    body = _wire.gemini_response("Hi", "STOP")
    body["usageMetadata"] = GEMINI_META
    if stream:
        fake.queue("google", _sse([b"data: " + orjson.dumps(body) + b"\r\n\r\n"]))
    else:
        fake.queue("google", Reply(body=orjson.dumps(body)))
    return "gemini-2.0-flash"


EXPECTED = {
    "gpt-4o": dict(prompt_tokens=2006, completion_tokens=300, cached_tokens=1920,
                   cache_creation_tokens=0, reasoning_tokens=192, audio_prompt_tokens=6,
                   audio_completion_tokens=8),
    "claude-3-5-haiku": dict(prompt_tokens=2510, completion_tokens=15, cached_tokens=2500,
                             cache_creation_tokens=0, reasoning_tokens=0),
    "gemini-2.0-flash": dict(prompt_tokens=1200, completion_tokens=140, cached_tokens=1024,
                             reasoning_tokens=100, audio_prompt_tokens=100,
                             audio_completion_tokens=0),
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("queue", [_openai, _anthropic, _google],
                         ids=["openai", "anthropic", "google"])
def test_every_class_is_reported(registry: ModelRegistry, fake, queue, stream):
    model = queue(fake, stream)
    if stream:
        s = registry.stream_model(model, "hi")
        s.collect()
        usage = s.usage
    else:
        usage = registry.invoke_model(model, "hi").usage
    for name, value in EXPECTED[model].items():
        assert getattr(usage, name) == value, name
    assert not usage.estimated
    binding = registry.get_model(model)
    price = registry.pricing.price(binding.provider_name, binding.model)
    read = price.cached_input if price.cached_input is not None else price.input
    expected = ((usage.prompt_tokens - usage.cached_tokens) * price.input
                + usage.cached_tokens * read + usage.completion_tokens * price.output) / 1e6
    assert usage.cost == pytest.approx(expected)
    assert read < price.input  # the table prices cached input lower for these models


def test_async_stream_keeps_the_cache_inclusive_input(registry: ModelRegistry, fake):
    fake.queue("anthropic", _anthropic_stream({"output_tokens": 15, "input_tokens": None}))

    async def main():
        s = registry.stream_model_async("claude-3-5-haiku", "hi")
        await s.collect()
        return s.usage

    usage = asyncio.run(main())
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (2510, 2500, 15)


def test_anthropic_cache_write_priced_as_write(registry: ModelRegistry, fake):
    body = _wire.anthropic_message("Hello", "claude-3-5-haiku")
    body["usage"] = {"input_tokens": 5, "cache_creation_input_tokens": 1000,
                     "cache_read_input_tokens": 0, "output_tokens": 3}
    fake.queue("anthropic", Reply(body=orjson.dumps(body)))
    usage = registry.invoke_model("claude-3-5-haiku", "hi").usage
    assert (usage.prompt_tokens, usage.cache_creation_tokens) == (1005, 1000)
    price = registry.pricing.price("anthropic", "claude-3-5-haiku")
    assert price.cache_write == pytest.approx(price.input * 1.25)
    assert usage.cost == pytest.approx((5 * price.input + 1000 * price.cache_write
                                        + 3 * price.output) / 1e6)


@pytest.mark.parametrize("garbage", [None, "12", -4, True, 1.5, [1], {"x": 1}])
def test_garbage_counts_in_replies_are_zero_not_a_crash(registry: ModelRegistry, fake, garbage):
    body = _wire.openai_completion("Hi", "gpt-4o")
    body["usage"] = {**OPENAI_USAGE, "prompt_tokens_details": {"cached_tokens": garbage},
                     "completion_tokens_details": garbage}
    fake.queue("openai", Reply(body=orjson.dumps(body)))
    usage = registry.invoke_model("gpt-4o", "hi").usage
    assert usage.prompt_tokens == 2006 and usage.cached_tokens == 0
    assert usage.reasoning_tokens == 0


def test_class_prices_from_the_environment():
    env = {"EMBER_COST_MY_MODEL_INPUT": "2", "EMBER_COST_MY_MODEL_OUTPUT": "8",
           "EMBER_COST_MY_MODEL_CACHED_INPUT": "0.5", "EMBER_COST_MY_MODEL_CACHE_WRITE": "2.5"}
    p = Pricing(env)
    assert p.cost("custom", "my-model", 1000, 100, cached=600, cache_write=200) == \
        pytest.approx((200 * 2 + 600 * 0.5 + 200 * 2.5 + 100 * 8) / 1e6)
    # counts beyond the prompt are clamped, never a negative plain part
    assert p.cost("custom", "my-model", 10, 0, cached=50, cache_write=50) == \
        pytest.approx(10 * 0.5 / 1e6)
    j = Pricing({"EMBER_MODEL_COSTS_JSON": '{"m": {"input": 1, "cached_input": 0.1}}'})
    assert j.price("x", "m").cached_input == 0.1 and j.price("x", "m").cache_write is None


@pytest.mark.parametrize("bad", ['{"m": {"cached_input": -1}}', '{"m": {"cache_write": "x"}}',
                                 '{"m": {"cache_read": 1}}'])
def test_class_price_garbage_is_refused(bad):
    from ember.models.exceptions import ModelProviderError

    with pytest.raises(ModelProviderError):
        Pricing({"EMBER_MODEL_COSTS_JSON": bad}).price("x", "m")
