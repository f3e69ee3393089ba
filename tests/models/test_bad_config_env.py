"""Garbage in the model layer's environment variables: an error naming the variable."""

from __future__ import annotations

import pytest

from ember.models import models
from ember.models.exceptions import ModelProviderError
from ember.models.pricing import Pricing
from ember.models.providers.offline import OfflineProvider


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400", "-1", '"2"', "true"])
def test_costs_json_refuses_non_finite_and_non_numbers(raw: str) -> None:
    pricing = Pricing({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": {"input": ' + raw + ', "output": 1}}'})
    with pytest.raises(ModelProviderError, match="EMBER_MODEL_COSTS_JSON"):
        pricing.price("openai", "gpt-4")


def test_costs_json_accepts_a_finite_price() -> None:
    pricing = Pricing({"EMBER_MODEL_COSTS_JSON": '{"gpt-4": {"input": 1.5, "output": 3}}'})
    assert pricing.price("openai", "gpt-4").input == 1.5


@pytest.mark.parametrize("raw", ["abc", "-5", "nan", "inf", "61"])
def test_offline_token_delay_env_is_checked(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("EMBER_OFFLINE_TOKEN_DELAY", raw)
    with pytest.raises(ModelProviderError, match="EMBER_OFFLINE_TOKEN_DELAY"):
        models("offline/echo", "hi")


@pytest.mark.parametrize("value", [-1, float("nan"), "x", True])
def test_offline_token_delay_argument_is_checked(value: object) -> None:
    with pytest.raises(ModelProviderError, match="token_delay"):
        OfflineProvider(token_delay=value)  # type: ignore[arg-type]


def test_offline_token_delay_zero_and_small_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_OFFLINE_TOKEN_DELAY", "0.001")
    assert models("offline/echo", "hi")
    assert OfflineProvider(token_delay=0).token_delay == 0
