"""Every provider's errors carry OpenAI's code and the provider's retry delay (never
shortened), streamed and not; every finish/block reason maps into OpenAI's vocabulary.

Bodies are the providers' real error shapes (as their APIs and SDK issue threads show).
"""

from __future__ import annotations

import orjson
import pytest

from ember.models import ModelRegistry
from ember.models.exceptions import ProviderAPIError
from ember.models.vocab import FINISH_REASONS, OPENAI_FINISH, classify_error, finish_reason
from tests.models import _wire
from tests.models._fake import Reply

MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.0-flash"}


def _oa(status, message, code=None, type_="invalid_request_error", **headers):
    return Reply(status=status, headers=headers, body=orjson.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code}}))


def _an(status, kind, message, **headers):
    return Reply(status=status, headers=headers, body=orjson.dumps(
        {"type": "error", "error": {"type": kind, "message": message}}))


def _go(status, state, message, details=(), **headers):
    return Reply(status=status, headers=headers, body=orjson.dumps(
        {"error": {"code": status, "message": message, "status": state,
                   "details": list(details)}}))


CASES = [
    # (api, reply, error_type, code, retry_after)
    ("openai", _oa(400, "This model's maximum context length is 128000 tokens. However, your "
                   "messages resulted in 130512 tokens. Please reduce the length of the "
                   "messages.", "context_length_exceeded"),
     "bad_request", "context_length_exceeded", None),
    ("openai", _oa(429, "Rate limit reached for gpt-4o in organization org-x on tokens per min",
                   "rate_limit_exceeded", "tokens", **{"retry-after-ms": "2500"}),
     "rate_limit", "rate_limit_exceeded", 2.5),
    ("openai", _oa(429, "You exceeded your current quota, please check your plan and billing "
                   "details.", "insufficient_quota", "insufficient_quota"),
     "rate_limit", "insufficient_quota", None),
    ("openai", _oa(400, "The response was filtered due to the prompt triggering Azure OpenAI's "
                   "content management policy.", "content_filter"),
     "bad_request", "content_filter", None),
    ("openai", _oa(401, "Incorrect API key provided: sk-test-****enai.", "invalid_api_key"),
     "authentication", "invalid_api_key", None),
    ("openai", _oa(503, "The engine is currently overloaded, please try again later",
                   None, "server_error", **{"retry-after": "30"}),
     "server", "overloaded", 30.0),
    ("anthropic", _an(400, "invalid_request_error",
                      "prompt is too long: 208310 tokens > 200000 maximum"),
     "bad_request", "context_length_exceeded", None),
    ("anthropic", _an(400, "invalid_request_error", "input length and `max_tokens` exceed "
                      "context limit: 198000 + 8192 > 200000, decrease input length or "
                      "`max_tokens` and try again"),
     "bad_request", "context_length_exceeded", None),
    ("anthropic", _an(429, "rate_limit_error", "Number of request tokens has exceeded your "
                      "per-minute rate limit", **{"retry-after": "17"}),
     "rate_limit", "rate_limit_exceeded", 17.0),
    ("anthropic", _an(529, "overloaded_error", "Overloaded"), "server", "overloaded", None),
    ("anthropic", _an(401, "authentication_error", "invalid x-api-key"),
     "authentication", "invalid_api_key", None),
    ("anthropic", _an(400, "invalid_request_error", "Your credit balance is too low to access "
                      "the Anthropic API. Please go to Plans & Billing to upgrade."),
     "bad_request", "insufficient_quota", None),
    ("google", _go(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the "
                   "maximum number of tokens allowed (1048576)."),
     "bad_request", "context_length_exceeded", None),
    ("google", _go(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]),
     "rate_limit", "insufficient_quota", 37.0),
    ("google", _go(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                   [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                     "retryDelay": "3.5s"}], **{"retry-after": "1"}),
     "rate_limit", "rate_limit_exceeded", 3.5),  # the longer of the two delays
    ("google", _go(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                   [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
     "authentication", "invalid_api_key", None),
    ("google", _go(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
     "server", "overloaded", None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("api", "reply", "error_type", "code", "retry_after"), CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_error_code_and_retry_after(registry: ModelRegistry, fake, stream, api, reply,
                                    error_type, code, retry_after):
    fake.queue(api, reply)
    with pytest.raises(ProviderAPIError) as info:
        if stream:
            registry.stream_model(MODELS[api], "x", max_retries=0).collect()
        else:
            registry.invoke_model(MODELS[api], "x", max_retries=0)
    ctx = info.value.context
    assert (ctx["error_type"], ctx.get("code"), ctx["retry_after"]) == \
        (error_type, code, retry_after)
    assert "sk-test-openai" not in str(info.value)


def test_vllm_style_overflow_without_a_code(monkeypatch, fake):
    monkeypatch.setenv("LOCAL_BASE_URL", fake.url + "/v1")
    from ember.models.providers.compatible import OpenAICompatibleProvider

    fake.queue("openai", Reply(status=400, body=orjson.dumps({
        "object": "error", "message": "This model's maximum context length is 4096 tokens. "
        "However, you requested 5000 tokens (4000 in the messages, 1000 in the completion).",
        "type": "BadRequestError", "param": None, "code": 400})))
    provider = OpenAICompatibleProvider(name="local", base_url=fake.url + "/v1", max_retries=0)
    with pytest.raises(ProviderAPIError) as info:
        provider.complete("x", "llama")
    assert info.value.context["code"] == "context_length_exceeded"
    provider.close()


def _anthropic_stream_error(kind: str, message: str) -> Reply:
    frames = _wire.anthropic_sse(["partial"], stop=False)
    frames.append(_wire.sse({"type": "error", "error": {"type": kind, "message": message}},
                            "error"))
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def test_an_error_event_mid_stream_has_its_code(registry: ModelRegistry, fake):
    fake.queue("anthropic", _anthropic_stream_error("overloaded_error", "Overloaded"))
    with pytest.raises(ProviderAPIError) as info:
        registry.stream_model("claude-sonnet-4-5", "x").collect()
    assert info.value.context["code"] == "overloaded"


def test_an_openai_error_frame_mid_stream_has_its_code(registry: ModelRegistry, fake):
    frames = _wire.openai_sse(["a"], usage=None, done=False)[:2]
    frames.append(_wire.sse({"error": {"message": "This model's maximum context length is "
                                       "8192 tokens", "type": "invalid_request_error",
                                       "code": "context_length_exceeded"}}))
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True))
    with pytest.raises(ProviderAPIError) as info:
        registry.stream_model("gpt-4o", "x").collect()
    assert info.value.context["code"] == "context_length_exceeded"
    assert info.value.error_type == "bad_request"


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b"[1, 2]", b"null",
                                  b'{"error": "plain string"}', b'{"error": {"details": 5}}',
                                  b'{"error": {"details": ["x", {"@type": "RetryInfo", '
                                  b'"retryDelay": "soon"}]}}'])
@pytest.mark.parametrize("api", ["openai", "anthropic", "google"])
def test_garbage_error_bodies_still_give_a_code(registry: ModelRegistry, fake, api, body):
    fake.queue(api, Reply(status=502, body=body))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model(MODELS[api], "x", max_retries=0)
    assert info.value.context["code"] == "server_error"
    assert info.value.context["retry_after"] is None


def test_google_blocked_prompt_is_content_filter(registry: ModelRegistry, fake):
    fake.queue("google", Reply(body=orjson.dumps({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}})))
    r = registry.invoke_model("gemini-2.0-flash", "x")
    assert r.finish_reason == "content_filter" and r.raw_finish_reason == "PROHIBITED_CONTENT"


def test_anthropic_refusal_is_content_filter(registry: ModelRegistry, fake):
    fake.queue("anthropic", Reply(body=orjson.dumps(_wire.anthropic_message(
        "I can't help with that.", stop_reason="refusal"))))
    assert registry.invoke_model("claude-sonnet-4-5", "x").finish_reason == "content_filter"


def test_the_finish_table_speaks_only_openai_words():
    for provider, table in FINISH_REASONS.items():
        for raw, mapped in table.items():
            assert mapped is None or mapped in OPENAI_FINISH, (provider, raw, mapped)
    assert finish_reason("compatible", "eos") == "stop"
    assert finish_reason("compatible", "something-new") == "stop"
    assert finish_reason("google", "SOMETHING_NEW") == "content_filter"
    assert classify_error("google", 429, {"error": {"details": [
        {"@type": "x.RetryInfo", "retryDelay": {"seconds": 2, "nanos": 500000000}}]}},
        None)["retry_after"] == 2.5


@pytest.mark.parametrize("api", ["openai", "anthropic", "google"])
def test_a_malformed_200_reply_is_a_server_error_code(registry: ModelRegistry, fake, api):
    fake.queue(api, Reply(body=b"{not json"))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model(MODELS[api], "x")
    assert info.value.context["code"] == "server_error" and fake.count() == 1
