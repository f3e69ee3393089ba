"""Import paths of SPEC §1 and the call surface."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.models._fake import FakeProvider


def test_import_paths() -> None:
    import ember.api.models as mod
    from ember.api import models
    from ember.api.exceptions import ModelProviderError, ProviderAPIError
    from ember.api.models import ModelRegistry
    from ember.api.models.providers import BaseProvider, register_provider
    from ember.api.models.schemas import ChatResponse, UsageStats
    from ember.models import ModelRegistry as MR2

    assert models is mod is sys.modules["ember.api.models"]
    assert callable(models) and ModelRegistry is MR2
    assert issubclass(ModelProviderError, Exception) and issubclass(ProviderAPIError, Exception)
    assert callable(register_provider) and BaseProvider and ChatResponse and UsageStats
    assert sorted(mod.__all__) == mod.__all__


def test_callable_module(fake: FakeProvider) -> None:
    from ember.api import models

    r = models("gpt-4", "What is the capital of France?")
    assert r.text == "Echo: What is the capital of France?"
    assert r.usage["prompt_tokens"] == 12 and r.usage["total_tokens"] == 59
    assert dict(r.usage)["completion_tokens"] == 47
    assert models.get_usage_summary("gpt-4").request_count == 1


def test_instance_needs_no_key_and_overrides(fake: FakeProvider,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ember.api import models
    from ember.api.exceptions import ModelProviderError

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    analyzer = models.instance("claude-3-opus", temperature=0.2, max_tokens=500)
    assert fake.count() == 0
    with pytest.raises(ModelProviderError, match="ANTHROPIC_API_KEY"):
        analyzer("x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k2")
    analyzer("Review")
    assert fake.last().body["max_tokens"] == 500 and fake.last().body["temperature"] == 0.2
    analyzer("Review", max_tokens=2000)
    assert fake.last().body["max_tokens"] == 2000
    analyzer("Review")
    assert fake.last().body["max_tokens"] == 500
    assert "".join(c.text for c in analyzer.stream("s")) == "Echo: s"

    async def main() -> tuple[str, str]:
        r = await analyzer.async_("a")
        parts = [c.text async for c in analyzer.astream("b")]
        return r.text, "".join(parts)

    assert asyncio.run(main()) == ("Echo: a", "Echo: b")
    with pytest.raises(ModelProviderError):
        models.instance("gtp-4")


def test_async_twins(fake: FakeProvider) -> None:
    from ember.api import models

    async def main() -> tuple[str, str, str]:
        a = await models.async_("gemini-2.0-flash", "one")
        b = await models.acall("offline/echo", "two")
        stream = models.astream("gpt-4", "three")
        async with stream:
            text = "".join([c.text async for c in stream])
        assert stream.usage.total_tokens == 16
        return a.text, b.text, text

    assert asyncio.run(main()) == ("Echo: one", "[offline echo] You said: two", "Echo: three")


def test_stream_context_manager_and_collect(fake: FakeProvider) -> None:
    from ember.api import models

    with models.stream("claude-3-haiku", "hi") as stream:
        response = stream.collect()
    assert response.text == "Echo: hi" and response.usage.total_tokens == 40
