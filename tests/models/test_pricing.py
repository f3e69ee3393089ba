"""Pricing table, environment overrides, unknown models."""

from __future__ import annotations

import pytest

from ember.models import ModelProviderError, ModelRegistry, Pricing, PricingWarning
from ember.models.pricing import default_prices, env_names
from tests.models._fake import FakeProvider


def test_table_covers_current_models() -> None:
    table = default_prices()
    for key in ("openai/gpt-4o", "openai/gpt-4.1", "openai/o3", "openai/o4-mini",
                "anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-1",
                "google/gemini-2.5-pro", "google/gemini-2.5-flash"):
        assert table[key].input > 0 and table[key].output > 0 and table[key].context_window
    with pytest.raises(TypeError):
        table["openai/gpt-4"] = None  # type: ignore[index]


def test_dated_snapshots_and_other_hosts() -> None:
    p = Pricing({})
    assert p.price("anthropic", "claude-3-5-sonnet-20241022") == p.price("anthropic",
                                                                        "claude-3-5-sonnet")
    assert p.price("openai", "gpt-4o-2024-08-06") == p.price("openai", "gpt-4o")
    assert p.price("azure", "gpt-4") == p.price("openai", "gpt-4")
    assert p.cost("openai", "gpt-4", 1000, 1000) == pytest.approx(0.09)


def test_env_overrides_both_spellings_never_mutate_defaults() -> None:
    assert env_names("gpt-4o-mini") == ("EMBER_COST_GPT_4O_MINI", "EMBER_COST_GPT4OMINI")
    before = default_prices()["openai/gpt-4"]
    p = Pricing({"EMBER_COST_GPT4_INPUT": "1.0", "EMBER_COST_GPT_4_OUTPUT": "2.0"})
    assert p.price("openai", "gpt-4")[:2] == (1.0, 2.0)
    assert Pricing({}).price("openai", "gpt-4") == before == default_prices()["openai/gpt-4"]


def test_json_overrides() -> None:
    env = {"EMBER_MODEL_COSTS_JSON": '{"gpt-4-turbo": {"input": 10.0, "output": 30.0}, '
                                     '"custom/model": {"input": 5, "output": 15}, '
                                     '"openai/gpt-4o": {"output": 1}}'}
    p = Pricing(env)
    assert p.price("openai", "gpt-4-turbo")[:2] == (10.0, 30.0)
    assert p.price("custom", "model")[:2] == (5.0, 15.0)
    assert p.price("openai", "gpt-4o")[:2] == (2.5, 1.0)
    # per-model variables beat the JSON
    env["EMBER_COST_GPT_4O_INPUT"] = "0"
    assert Pricing(env).price("openai", "gpt-4o")[:2] == (0.0, 1.0)


@pytest.mark.parametrize(("env", "var"), [
    ({"EMBER_MODEL_COSTS_JSON": "{not json"}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_MODEL_COSTS_JSON": "[1]"}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": 3}'}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": {"input": "x"}}'}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": {"input": -1}}'}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": {"inptu": 1}}'}, "EMBER_MODEL_COSTS_JSON"),
    ({"EMBER_COST_GPT4_INPUT": "thirty"}, "EMBER_COST_GPT4_INPUT"),
    ({"EMBER_COST_GPT_4_OUTPUT": "-3"}, "EMBER_COST_GPT_4_OUTPUT"),
    ({"EMBER_COST_GPT_4_OUTPUT": "nan"}, "EMBER_COST_GPT_4_OUTPUT"),
])
def test_malformed_overrides_name_the_variable(env: dict[str, str], var: str) -> None:
    with pytest.raises(ModelProviderError, match=var) as info:
        Pricing(env).cost("openai", "gpt-4", 1, 1)
    assert info.value.context["variable"] == var


def test_malformed_override_surfaces_on_call(fake: FakeProvider,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_MODEL_COSTS_JSON", "{oops")
    with ModelRegistry() as reg, pytest.raises(ModelProviderError,
                                               match="EMBER_MODEL_COSTS_JSON"):
        reg.invoke_model("gpt-4", "x")


def test_override_applies_to_calls(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_COST_GPT4_INPUT", "1000000")
    monkeypatch.setenv("EMBER_COST_GPT4_OUTPUT", "0")
    with ModelRegistry() as reg:
        assert reg.invoke_model("gpt-4", "x").usage.cost == pytest.approx(12.0)


def test_unknown_model_costs_zero_with_one_warning(fake: FakeProvider) -> None:
    with ModelRegistry() as reg:
        with pytest.warns(PricingWarning, match="gpt-99"):
            assert reg.invoke_model("gpt-99", "x").usage.cost == 0
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reg.invoke_model("gpt-99", "x").usage.cost == 0  # no second warning
