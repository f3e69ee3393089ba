"""The async side runs on aiohttp or httpx (``EMBER_MODEL_HTTP_CLIENT``): same behaviour."""

from __future__ import annotations

import asyncio

import pytest

from ember.models import ModelRegistry, ProviderAPIError
from tests.models import _wire
from tests.models._fake import FakeProvider, Reply

pytest.importorskip("aiohttp")


@pytest.fixture(params=["aiohttp", "httpx"])
def client_kind(request, monkeypatch):
    monkeypatch.setenv("EMBER_MODEL_HTTP_CLIENT", request.param)
    return request.param


def _run(registry: ModelRegistry, coro_fn):
    async def main():
        try:
            return await coro_fn()
        finally:
            await registry.aclose()

    return asyncio.run(main())


def test_complete_and_stream(registry: ModelRegistry, fake: FakeProvider, client_kind: str):
    async def go():
        r = await registry.invoke_model_async("gpt-4", "hello")
        chunks = [c.text async for c in registry.stream_model_async("claude-3-opus", "hey")]
        provider = registry.get_model("gpt-4").provider
        return r, chunks, type(await provider.async_client()).__name__

    r, chunks, adapter = _run(registry, go)
    assert r.text == "Echo: hello" and r.usage.total_tokens == 59
    assert "".join(chunks) == "Echo: hey"
    assert adapter.lower().startswith(client_kind)


def test_retry_after_429_then_success(registry: ModelRegistry, fake: FakeProvider,
                                      client_kind: str):
    fake.queue("openai", Reply(status=429, headers={"retry-after-ms": "1"},
                               body=b'{"error": {"message": "slow down"}}'))
    r = _run(registry, lambda: registry.invoke_model_async("gpt-4", "x"))
    assert r.text == "Echo: x" and fake.count("openai") == 2


@pytest.mark.parametrize("how", ["abort", "close"])
def test_truncated_stream_is_a_connection_error(registry: ModelRegistry, fake: FakeProvider,
                                                client_kind: str, how: str):
    frames = [f for f in _wire.openai_sse(["a", "b"], usage=None, done=False)
              if b'"finish_reason":"stop"' not in f]
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream",
                               chunked=how == "abort", abort=how == "abort",
                               close=how == "close"))

    async def go():
        return [c.text async for c in registry.stream_model_async("gpt-4", "x")]

    with pytest.raises(ProviderAPIError) as info:
        _run(registry, go)
    assert info.value.error_type == "connection"


def test_hung_upstream_is_a_timeout(registry: ModelRegistry, fake: FakeProvider,
                                    client_kind: str):
    fake.queue("openai", Reply(delay=5))
    with pytest.raises(ProviderAPIError) as info:
        _run(registry, lambda: registry.invoke_model_async("gpt-4", "x", timeout=0.2,
                                                           max_retries=0))
    assert info.value.error_type == "timeout"


def test_unreachable_upstream_is_a_connection_error(monkeypatch, client_kind: str):
    from ember.models.providers.openai import OpenAIProvider

    provider = OpenAIProvider("sk-x", base_url="http://127.0.0.1:9/v1", max_retries=0)

    async def go():
        try:
            return await provider.complete_async("x", "gpt-4")
        finally:
            await provider.aclose()

    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(go())
    assert info.value.error_type == "connection"


def test_proxy_from_the_environment_is_used(fake: FakeProvider, monkeypatch, client_kind: str):
    from ember.models.providers.openai import OpenAIProvider

    monkeypatch.setenv("HTTP_PROXY", fake.url)
    monkeypatch.setenv("http_proxy", fake.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # NOTE: the upstream's name does not resolve: only the proxy can answer
    provider = OpenAIProvider("sk-x", base_url="http://upstream.invalid/v1", max_retries=0)

    async def go():
        try:
            return await provider.complete_async("via proxy", "gpt-4")
        finally:
            await provider.aclose()

    assert asyncio.run(go()).text == "Echo: via proxy"
    assert fake.last("openai").path.startswith("http://upstream.invalid/v1/chat/completions")
