"""ModelRegistry: caching, thread safety, usage summaries, metrics hook."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ember.models import ModelRegistry
from tests.models._fake import FakeProvider


def test_one_provider_per_name_and_lock_free_reads(registry: ModelRegistry,
                                                   fake: FakeProvider) -> None:
    a = registry.get_model("gpt-4")
    b = registry.get_model("gpt-4o")
    assert a.provider is b.provider and registry.get_model("gpt-4") is a
    assert registry.list_models() == ["gpt-4", "gpt-4o"]


def test_many_threads(registry: ModelRegistry, fake: FakeProvider) -> None:
    models = ["gpt-4", "claude-3-opus", "gemini-2.0-flash", "offline/echo"]
    barrier = threading.Barrier(32)

    def work(i: int) -> str:
        barrier.wait()
        model = models[i % 4]
        out = [registry.invoke_model(model, f"q{i}-{j}").text for j in range(10)]
        out.append("".join(c.text for c in registry.stream_model(model, f"s{i}")))
        return out[-1]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(work, range(32)))
    assert all(r.endswith(f"s{i}") for i, r in enumerate(results))
    providers = {id(registry.get_model(m).provider) for m in models}
    assert len(providers) == 4
    for m in models:
        s = registry.get_usage_summary(m)
        assert s.request_count == 8 * 11 and s.error_count == 0
    s = registry.get_usage_summary("gpt-4")
    assert s.total_usage.total_tokens == 80 * 59 + 8 * 16
    assert s.cost_usd == pytest.approx(s.total_usage.cost) and s.cost_usd > 0


def test_concurrent_async(registry: ModelRegistry, fake: FakeProvider) -> None:
    async def main() -> list[str]:
        calls = [registry.invoke_model_async("claude-3-opus", f"p{i}") for i in range(50)]
        return [r.text for r in await asyncio.gather(*calls)]

    assert asyncio.run(main()) == [f"Echo: p{i}" for i in range(50)]
    # a second event loop gets its own pool (the first closed with its loop)
    assert len(asyncio.run(main())) == 50
    assert registry.get_usage_summary("claude-3-opus").request_count == 100


def test_usage_summary_unknown_and_snapshot(registry: ModelRegistry, fake: FakeProvider) -> None:
    assert registry.get_usage_summary("gpt-4") is None
    assert registry.get_usage_summary("not a model") is None
    registry.invoke_model("gpt-4", "x")
    snap = registry.get_usage_summary("gpt-4")
    registry.invoke_model("gpt-4", "x")
    assert snap.request_count == 1
    assert registry.get_usage_summaries()["openai/gpt-4"].request_count == 2
    registry.reset_usage()
    assert registry.get_usage_summary("gpt-4") is None


class _Instrument:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def labels(self, *values: str) -> _Instrument:
        self.calls.append(("labels", *values))
        return self

    def inc(self, amount: float = 1) -> None:
        self.calls.append(("inc", amount))

    def observe(self, value: float) -> None:
        self.calls.append(("observe", value))


def test_metrics_hook_duck_typed(fake: FakeProvider) -> None:
    from ember.api.exceptions import ProviderAPIError
    from tests.models._fake import Reply

    m = {k: _Instrument() for k in ("model_invocations", "invocation_duration",
                                    "model_errors", "model_tokens", "model_cost")}
    with ModelRegistry(metrics=m) as reg:
        reg.invoke_model("gpt-4", "x")
        fake.queue("openai", Reply(status=400, body=b"{}"))
        with pytest.raises(ProviderAPIError):
            reg.invoke_model("gpt-4", "x")
    assert m["model_invocations"].calls == [("labels", "gpt-4"), ("inc", 1)] * 2
    assert m["invocation_duration"].calls[1][0] == "observe"
    assert m["model_errors"].calls == [("labels", "gpt-4", "bad_request"), ("inc", 1)]
    assert m["model_tokens"].calls == [("labels", "gpt-4"), ("inc", 59)]


def test_metrics_prometheus(fake: FakeProvider) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    reg_p = prometheus_client.CollectorRegistry()
    metrics = {
        "model_invocations": prometheus_client.Counter("llm_calls", "Total LLM calls", ["model"],
                                                       registry=reg_p),
        "invocation_duration": prometheus_client.Histogram("llm_duration", "Call duration",
                                                           ["model"], registry=reg_p),
    }
    with ModelRegistry(metrics=metrics) as reg:
        reg.invoke_model("gpt-4", "Hello")
        reg.invoke_model("gpt-4", "Hello")
    assert reg_p.get_sample_value("llm_calls_total", {"model": "gpt-4"}) == 2
    assert reg_p.get_sample_value("llm_duration_count", {"model": "gpt-4"}) == 2


def test_broken_metric_does_not_fail_call(fake: FakeProvider, caplog: Any) -> None:
    class Broken:
        def inc(self) -> None:
            raise RuntimeError("metrics down")

    with ModelRegistry(metrics={"model_invocations": Broken()}) as reg:
        assert reg.invoke_model("gpt-4", "x").text == "Echo: x"
    assert "metrics instrument" in caplog.text


def test_stream_early_break_records_usage(registry: ModelRegistry, fake: FakeProvider) -> None:
    stream = registry.stream_model("offline/echo", "one two three four five")
    for _chunk in stream:
        break
    stream.close()
    assert stream.usage is not None and stream.usage.completion_tokens == 1
    with pytest.raises(RuntimeError):
        iter(stream)


def test_missing_key_names_the_variable_a_custom_provider_reads(monkeypatch):
    """The seed's Azure provider reads AZURE_OPENAI_API_KEY: the error says so."""
    import os

    from ember.api.exceptions import ModelProviderError
    from ember.api.models.providers import BaseProvider, register_provider
    from ember.models import ModelRegistry

    class AzureOpenAIProvider(BaseProvider):
        def _get_api_key_from_env(self):
            return os.getenv("AZURE_OPENAI_API_KEY")

    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    register_provider("azure-test", AzureOpenAIProvider)
    with pytest.raises(ModelProviderError, match=r"set AZURE_OPENAI_API_KEY$") as info:
        ModelRegistry().invoke_model("azure-test/gpt-4", "hi")
    assert info.value.context["env_vars"] == ["AZURE_OPENAI_API_KEY"]
