"""OpenAI Chat Completions against the local fake server."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ember.models import ModelRegistry, ProviderAPIError
from tests.models import _wire
from tests.models._fake import FakeProvider, Reply


def test_call_sends_documented_request(registry: ModelRegistry, fake: FakeProvider) -> None:
    r = registry.invoke_model("gpt-4", "What is the capital of France?", temperature=0.2)
    assert r.text == "Echo: What is the capital of France?"
    assert r.data == r.text
    seen = fake.last("openai")
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test-openai"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {"model": "gpt-4", "temperature": 0.2,
                         "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 47, 59)
    assert r.usage["cost"] == pytest.approx((12 * 30 + 47 * 60) / 1e6)
    assert r.finish_reason == "stop" and not r.usage.estimated


def test_explicit_provider_gets_bare_name_and_same_price(registry: ModelRegistry,
                                                         fake: FakeProvider) -> None:
    a = registry.invoke_model("gpt-4", "x")
    b = registry.invoke_model("openai/gpt-4", "x")
    assert fake.last("openai").body["model"] == "gpt-4"
    assert a.usage.cost == b.usage.cost > 0
    assert registry.get_usage_summary("gpt-4").request_count == 2
    assert registry.get_usage_summary("openai/gpt-4").request_count == 2


def test_messages_system_and_tools(registry: ModelRegistry, fake: FakeProvider) -> None:
    call = {"id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    fake.queue("openai", Reply(body=orjson.dumps(_wire.openai_completion(
        None, tool_calls=[call], finish="tool_calls"))))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    msgs = [{"role": "user", "content": "Weather?"}]
    r = registry.invoke_model("gpt-4o", msgs, tools=tools, system="Be brief")
    body = fake.last().body
    assert body["messages"] == [{"role": "system", "content": "Be brief"}, *msgs]
    assert body["tools"] == tools
    assert r.text == "" and r.finish_reason == "tool_calls"
    assert r.tool_calls[0].name == "get_weather" and r.tool_calls[0].args == {"city": "Paris"}
    assert r.tool_calls[0].to_openai() == call


def test_stream_split_frames_and_usage_only_final_chunk(registry: ModelRegistry,
                                                        fake: FakeProvider) -> None:
    frames = _wire.openai_sse(["Hel", "lo", " wor", "ld"], usage=(5, 4))
    raw = b"".join(f for f in frames if isinstance(f, bytes))
    # split at awkward places: inside "data:", inside JSON, between \n\n
    pieces: list[bytes | float] = [raw[i:i + 7] for i in range(0, len(raw), 7)]
    fake.queue("openai", Reply(body=pieces, content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("gpt-4o-mini", "hi")
    texts = [c.text for c in stream]
    assert "".join(texts) == "Hello world"
    assert "" not in texts[:-1]
    assert stream.usage is not None and stream.usage.total_tokens == 9
    assert not stream.usage.estimated
    body = fake.last().body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert stream.response is not None and stream.response.finish_reason == "stop"


def test_stream_multiline_data_and_comments(registry: ModelRegistry, fake: FakeProvider) -> None:
    chunk = orjson.dumps(_wire.openai_chunk({"content": "A"}), option=orjson.OPT_INDENT_2)
    multiline = b"".join(b"data: " + line + b"\n" for line in chunk.split(b"\n")) + b"\n"
    body = [b": keep-alive\n\n", multiline, _wire.sse(_wire.openai_chunk({}, "stop")),
            b"data: [DONE]\n\n"]
    fake.queue("openai", Reply(body=body, content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("gpt-4o", "hi")
    assert [c.text for c in stream] == ["A", ""]
    assert stream.usage.estimated  # no usage frame: counted locally
    assert stream.usage.completion_tokens >= 1


def test_stream_tool_call_argument_fragments(registry: ModelRegistry, fake: FakeProvider) -> None:
    frames = [
        _wire.sse(_wire.openai_chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]})),
        *[_wire.sse(_wire.openai_chunk({"tool_calls": [{"index": 0, "function": {
            "arguments": frag}}]})) for frag in ['{"', 'city', '": "', 'Par', 'is"}']],
        _wire.sse(_wire.openai_chunk({}, "tool_calls")),
        _wire.sse(_wire.openai_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 2,
                                                  "total_tokens": 5}, choices=False)),
        b"data: [DONE]\n\n",
    ]
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("gpt-4o", "weather", tools=[])
    chunks = list(stream)
    assert all(c.text == "" for c in chunks)
    assert chunks[0].tool_calls[0].name == "get_weather"
    call = stream.response.tool_calls[0]
    assert (call.id, call.name, call.args) == ("call_1", "get_weather", {"city": "Paris"})
    assert stream.response.finish_reason == "tool_calls"


def test_async_call_and_stream(registry: ModelRegistry, fake: FakeProvider) -> None:
    async def main() -> tuple[str, list[str], int]:
        r = await registry.invoke_model_async("gpt-4", "async hello")
        stream = registry.stream_model_async("gpt-4", "stream hello")
        texts = [c.text async for c in stream]
        return r.text, texts, stream.usage.total_tokens

    text, texts, total = asyncio.run(main())
    assert text == "Echo: async hello"
    assert "".join(texts) == "Echo: stream hello"
    assert total == 16


def test_error_body_in_stream(registry: ModelRegistry, fake: FakeProvider) -> None:
    frames = [_wire.sse(_wire.openai_chunk({"content": "par"})),
              _wire.sse({"error": {"message": "The server had an error", "type": "server_error"}})]
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True))
    got: list[str] = []
    with pytest.raises(ProviderAPIError) as info:
        for chunk in registry.stream_model("gpt-4", "x"):
            got.append(chunk.text)
    assert got == ["par"]
    assert info.value.context["error_type"] == "server"
    assert info.value.context["partial_usage"].estimated


def test_compatible_server_by_base_url(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", fake.url + "/v1")
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with ModelRegistry() as reg, pytest.warns(UserWarning, match="no price"):
        r = reg.invoke_model("ollama/llama3.2", "hi")
    assert r.text == "Echo: hi"
    seen = fake.last()
    assert seen.body["model"] == "llama3.2" and "authorization" not in seen.headers


def test_compatible_provider_azure_style(fake: FakeProvider) -> None:
    from ember.api.models.providers import compatible_provider, register_provider
    from ember.models import unregister_provider

    register_provider("azure-test", compatible_provider(
        "azure-test", base_url=fake.url + "/openai/deployments/gpt4",
        api_key="az-key", api_key_header="api-key", query={"api-version": "2024-10-21"}))
    try:
        with ModelRegistry() as reg:
            r = reg.invoke_model("azure-test/gpt-4", "hello")
        seen = fake.last()
        assert seen.path == "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21"
        assert seen.headers["api-key"] == "az-key"
        assert r.text == "Echo: hello" and r.usage.cost > 0  # priced like gpt-4
    finally:
        unregister_provider("azure-test")
