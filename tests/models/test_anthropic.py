"""Anthropic Messages against the local fake server."""

from __future__ import annotations

import orjson
import pytest

from ember.models import ModelRegistry, ProviderAPIError
from tests.models import _wire
from tests.models._fake import FakeProvider, Reply


def test_request_shape(registry: ModelRegistry, fake: FakeProvider) -> None:
    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"}]
    r = registry.invoke_model("claude-3-opus", msgs, temperature=0.2, stop="END")
    seen = fake.last("anthropic")
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-test"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.body == {"model": "claude-3-opus", "system": "You are terse.",
                         "messages": [{"role": "user", "content": "Hi"}],
                         "max_tokens": 4096, "stop_sequences": ["END"], "temperature": 0.2}
    assert r.text == "Echo: Hi"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (10, 25)
    assert r.usage.cost == pytest.approx((10 * 15 + 25 * 75) / 1e6)
    assert r.finish_reason == "stop" and r.raw_finish_reason == "end_turn"


def test_max_tokens_override_and_tools_translation(registry: ModelRegistry,
                                                   fake: FakeProvider) -> None:
    tool_use = {"id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}}
    fake.queue("anthropic", Reply(body=orjson.dumps(_wire.anthropic_message(
        "Let me check.", tool_use=tool_use, stop_reason="tool_use"))))
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object"}}}]
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_00", "type":
            "function", "function": {"name": "get_weather", "arguments": '{"location": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_00", "content": "sunny"},
    ]
    r = registry.invoke_model("claude-sonnet-4-5", history, tools=tools, tool_choice="required",
                              max_tokens=100)
    body = fake.last().body
    assert body["max_tokens"] == 100
    assert body["tools"] == [{"name": "get_weather", "description": "Weather",
                              "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_00",
                                               "name": "get_weather",
                                               "input": {"location": "Rome"}}]
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_00", "content": "sunny"}]}
    assert r.text == "Let me check." and r.finish_reason == "tool_calls"
    assert r.tool_calls[0].args == {"location": "Paris"} and r.tool_calls[0].id == "toolu_01A"


def test_stream_with_ping_and_cumulative_usage(registry: ModelRegistry,
                                               fake: FakeProvider) -> None:
    frames = _wire.anthropic_sse(["Hello", "!"], output_tokens=15)
    # an extra message_delta earlier with a smaller cumulative count must not be added up
    frames.insert(-2, _wire.sse({"type": "message_delta", "delta": {},
                                 "usage": {"output_tokens": 7}}, "message_delta"))
    frames.insert(-2, b": comment\n\n")
    frames[-2], frames[-3] = frames[-3], frames[-2]
    fake.queue("anthropic", Reply(body=frames, content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("claude-3-5-haiku-20241022", "hi")
    assert "".join(c.text for c in stream) == "Hello!"
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (25, 15)
    assert stream.response.finish_reason == "stop"
    assert fake.last().body["stream"] is True


def test_stream_tool_use_input_json_delta(registry: ModelRegistry, fake: FakeProvider) -> None:
    frames = [
        _wire.sse({"type": "message_start", "message": {"id": "m", "type": "message",
                   "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
                   "usage": {"input_tokens": 472, "output_tokens": 2}}}, "message_start"),
        _wire.sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
            "input": {}}}, "content_block_start"),
        _wire.sse({"type": "ping"}, "ping"),
        *[_wire.sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": p}}, "content_block_delta")
          for p in ["", '{"location":', ' "San Fra', 'ncisco, CA"}']],
        _wire.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _wire.sse({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                   "stop_sequence": None}, "usage": {"output_tokens": 89}}, "message_delta"),
        _wire.sse({"type": "message_stop"}, "message_stop"),
    ]
    fake.queue("anthropic", Reply(body=frames, content_type="text/event-stream", chunked=True))
    stream = registry.stream_model("claude-sonnet-4-5", "weather in SF")
    list(stream)
    call = stream.response.tool_calls[0]
    assert call.name == "get_weather" and call.args == {"location": "San Francisco, CA"}
    assert stream.response.finish_reason == "tool_calls"
    assert stream.usage.total_tokens == 472 + 89


def test_error_event_mid_stream_keeps_chunks_and_partial_usage(registry: ModelRegistry,
                                                               fake: FakeProvider) -> None:
    frames = _wire.anthropic_sse(["one", " two"], stop=False)
    frames.append(b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
                  b'"message": "Overloaded"}}\n\n')
    fake.queue("anthropic", Reply(body=frames, content_type="text/event-stream", chunked=True))
    got: list[str] = []
    with pytest.raises(ProviderAPIError) as info:
        for chunk in registry.stream_model("claude-3-opus", "count"):
            got.append(chunk.text)
    assert got == ["one", " two"]
    err = info.value
    assert err.context["error_type"] == "server"
    assert err.context["provider_message"] == "Overloaded"
    partial = err.context["partial_usage"]
    assert partial.estimated and partial.prompt_tokens == 25 and partial.completion_tokens >= 2
    summary = registry.get_usage_summary("claude-3-opus")
    assert summary.request_count == 1 and summary.error_count == 1
    assert summary.total_usage.total_tokens == partial.total_tokens


@pytest.mark.parametrize(("kind", "expected"), [
    ("rate_limit_error", "rate_limit"), ("authentication_error", "authentication"),
    ("invalid_request_error", "bad_request"), ("api_error", "server")])
def test_error_event_types(registry: ModelRegistry, fake: FakeProvider, kind: str,
                           expected: str) -> None:
    frames = [_wire.sse({"type": "error", "error": {"type": kind, "message": "m"}}, "error")]
    fake.queue("anthropic", Reply(body=frames, content_type="text/event-stream", chunked=True))
    with pytest.raises(ProviderAPIError) as info:
        list(registry.stream_model("claude-3-opus", "x"))
    assert info.value.error_type == expected


def test_http_error_body(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("anthropic", Reply(status=400, body=b'{"type": "error", "error": {"type": '
                                  b'"invalid_request_error", "message": "max_tokens: too big"}}'))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model("claude-3-opus", "x")
    assert info.value.context["provider_message"] == "max_tokens: too big"
    assert info.value.status_code == 400 and info.value.error_type == "bad_request"
