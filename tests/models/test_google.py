"""Google Gemini against the local fake server."""

from __future__ import annotations

import orjson
import pytest

from ember.models import ModelProviderError, ModelRegistry, ProviderAPIError
from tests.models import _wire
from tests.models._fake import FakeProvider, Reply


def test_request_shape(registry: ModelRegistry, fake: FakeProvider) -> None:
    msgs = [{"role": "system", "content": "Be kind"}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    r = registry.invoke_model("gemini-2.0-flash", msgs, temperature=0.5, max_tokens=64,
                              stop="X", top_p=0.9)
    seen = fake.last("google")
    assert seen.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == "goog-test"
    assert seen.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                     {"role": "model", "parts": [{"text": "Hello"}]},
                     {"role": "user", "parts": [{"text": "Bye"}]}],
        "systemInstruction": {"parts": [{"text": "Be kind"}]},
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64,
                             "stopSequences": ["X"], "topP": 0.9},
    }
    assert r.text == "Echo: Bye" and r.finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (8, 13)
    assert r.usage.cost == pytest.approx((8 * 0.1 + 13 * 0.4) / 1e6)


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"), ("SOMETHING_NEW", "content_filter")])
def test_finish_reasons(registry: ModelRegistry, fake: FakeProvider, reason: str,
                        expected: str) -> None:
    fake.queue("google", Reply(body=orjson.dumps(_wire.gemini_response("t", reason))))
    r = registry.invoke_model("gemini-2.5-flash", "x")
    assert r.finish_reason == expected and r.raw_finish_reason == reason


def test_blocked_prompt(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("google", Reply(body=b'{"promptFeedback": {"blockReason": "SAFETY"}, '
                               b'"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}'))
    r = registry.invoke_model("gemini-2.5-flash", "x")
    assert r.text == "" and r.finish_reason == "content_filter"


def test_function_call_and_tools(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("google", Reply(body=orjson.dumps(_wire.gemini_response(
        None, function_call={"name": "find_movies", "args": {"location": "Mountain View"}}))))
    tools = [{"type": "function", "function": {"name": "find_movies", "description": "d",
                                               "parameters": {"type": "object"}}}]
    r = registry.invoke_model("gemini-2.5-pro", "movies?", tools=tools)
    assert fake.last().body["tools"] == [{"functionDeclarations": [
        {"name": "find_movies", "description": "d", "parameters": {"type": "object"}}]}]
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls[0].name == "find_movies"
    assert r.tool_calls[0].args == {"location": "Mountain View"}


def test_stream_sse_crlf(registry: ModelRegistry, fake: FakeProvider) -> None:
    stream = registry.stream_model("gemini-2.0-flash", "count to three")
    assert "".join(c.text for c in stream) == "Echo: count to three"
    seen = fake.last()
    assert seen.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert stream.usage.prompt_tokens == 8 and stream.usage.completion_tokens == 4
    assert stream.response.finish_reason == "stop"


def test_stream_without_finish_reason_is_truncated(registry: ModelRegistry,
                                                   fake: FakeProvider) -> None:
    frames = _wire.gemini_sse(["a", "b"])[:1]  # first frame only: no finishReason
    fake.queue("google", Reply(body=frames, content_type="text/event-stream", chunked=True))
    got = []
    with pytest.raises(ProviderAPIError) as info:
        for chunk in registry.stream_model("gemini-2.0-flash", "x"):
            got.append(chunk.text)
    assert got == ["a"] and info.value.error_type == "connection"
    # provider-reported usage so far (prompt 8) is kept, completion estimated
    assert info.value.context["partial_usage"].prompt_tokens == 8


def test_error_json(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("google", Reply(status=429, body=b'{"error": {"code": 429, "message": '
                               b'"Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}'))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model("gemini-2.0-flash", "x", max_retries=0)
    assert info.value.error_type == "rate_limit"
    assert info.value.context["provider_message"] == "Resource has been exhausted"


def test_gemini_api_key_fallback(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY")
    with ModelRegistry() as reg, pytest.raises(ModelProviderError,
                                               match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        reg.invoke_model("gemini-2.0-flash", "x")
    monkeypatch.setenv("GEMINI_API_KEY", "gem-key")
    with ModelRegistry() as reg:
        reg.invoke_model("gemini-2.0-flash", "x")
    assert fake.last().headers["x-goog-api-key"] == "gem-key"
