"""Garbage parameter values are refused where a call enters ``models()`` — for every
provider, the offline one included — with an error naming the parameter, before any
network call; NaN and infinity never become ``null`` on the wire (issue #22)."""

from __future__ import annotations

import asyncio
import math

import pytest

from ember.models.params import NUMBERS, InvalidParameterError

MODELS = ["offline/echo", "gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"]

GARBAGE = {
    "max_tokens": [-3, 0, "abc", "5", 10**30, 1e30, 5.5, math.nan, math.inf, True, [5]],
    "max_completion_tokens": [-1, "x", 2**63, math.nan],
    "n": [0, 129, "2", 1.5],
    "seed": [2**64, "1", math.inf],
    "top_logprobs": [-1, 21],
    "temperature": [-0.1, 2.5, "hot", math.nan, math.inf, False],
    "top_p": [1.5, -1, math.nan],
    "presence_penalty": [3, "x"],
    "frequency_penalty": [-2.5, math.nan],
}
CASES = [(name, value) for name, values in GARBAGE.items() for value in values]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_garbage_numbers_are_refused_naming_the_field(fake, registry, model, name, value):
    calls = [
        lambda: registry.invoke_model(model, "hi", **{name: value}),
        lambda: asyncio.run(registry.invoke_model_async(model, "hi", **{name: value})),
        lambda: registry.stream_model(model, "hi", **{name: value}),
        lambda: registry.stream_model_async(model, "hi", **{name: value}),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert info.value.context["param"] == name
        assert info.value.error_type == "bad_request"
        assert name in str(info.value)
    assert fake.count() == 0


def test_every_number_of_the_table_is_covered():
    assert set(GARBAGE) == set(NUMBERS)


@pytest.mark.parametrize("params", [
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "number", "maximum": math.inf}}}}}]},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"minimum": -math.inf}}}}}},
    {"logit_bias": {"50256": math.nan}},
    {"metadata": {"score": [1.0, math.nan]}},
    {"top_k": math.nan},
])
@pytest.mark.parametrize("model", ["gpt-4o-mini", "offline/echo"])
def test_nan_anywhere_is_refused_not_sent_as_null(fake, registry, model, params):
    with pytest.raises(InvalidParameterError) as info:
        registry.invoke_model(model, "hi", **params)
    assert info.value.context["param"].split(".")[0].split("[")[0] == next(iter(params))
    assert "NaN and infinity" in str(info.value)
    assert fake.count() == 0


def test_whole_floats_are_integers_and_good_values_pass(fake, registry):
    """OpenAI reads 5.0 as the integer 5 (the OpenAI SDK sends it so): sent as 5."""
    registry.invoke_model("gpt-4o-mini", "hi", max_tokens=5.0, n=1, temperature=0,
                          top_p=1, seed=-(2**63), presence_penalty=-2, frequency_penalty=2.0)
    sent = fake.last("openai").body
    assert sent["max_tokens"] == 5 and isinstance(sent["max_tokens"], int)
    assert sent["seed"] == -(2**63)
    text = registry.invoke_model("offline/echo", "hello there", max_tokens=2.0).text
    assert text and len(text) < len("[offline echo] You said: hello there")


@pytest.mark.parametrize("delay", [-1, "slow", math.nan, math.inf, True])
def test_offline_token_delay_garbage_is_refused(fake, registry, delay):
    with pytest.raises(InvalidParameterError) as info:
        list(registry.stream_model("offline/echo", "hi", token_delay=delay))
    assert info.value.context["param"] == "token_delay"
