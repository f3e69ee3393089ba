"""Issue #22, gateway side: what OpenAI accepts, refusals, errors clients act on.

The official ``openai`` SDK is the client; the fake upstreams of tests/models speak
OpenAI's, Anthropic's and Gemini's wire formats.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from ember.gateway.errors import classify
from ember.models.exceptions import ProviderAPIError
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")

MODELS = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash", "offline/echo"]
USER = [{"role": "user", "content": "hi there"}]
AUTH = {"authorization": "Bearer sk-gateway-key"}
NEW_FIELDS = {"prompt_cache_key": "user-42", "service_tier": "auto",
              "safety_identifier": "hash-1", "verbosity": "low", "store": False,
              "metadata": {"team": "a"}, "modalities": ["text"],
              "prediction": {"type": "content", "content": "x"},
              "web_search_options": {}, "a_field_from_next_year": {"x": 1}}


def _client(serve, **mount):
    app = gateway_app()
    app.mount_openai(MODELS, api_keys=["sk-gateway-key"], **mount)
    url = serve(app)
    return url, openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)


@pytest.fixture
def client(fake, serve):
    _url, c = _client(serve)
    yield c
    c.close()


@pytest.fixture
def dropping(fake, serve):
    url, c = _client(serve, drop_params=True)
    yield url, c
    c.close()


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


# -- 1. what OpenAI accepts ----------------------------------------------------------------------
@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh"])
def test_every_reasoning_effort_reaches_openai_unchanged(client, fake, effort):
    client.chat.completions.create(model="gpt-4o", messages=USER, reasoning_effort=effort)
    assert fake.last("openai").body["reasoning_effort"] == effort


@pytest.mark.parametrize("model,effort,check", [
    ("claude-sonnet-4-5", "none", lambda b: "thinking" not in b),
    ("claude-sonnet-4-5", "xhigh", lambda b: b["thinking"]["budget_tokens"] == 8192),
    ("claude-sonnet-4-5", "minimal", lambda b: b["thinking"]["budget_tokens"] == 1024),
    ("gemini-2.0-flash", "none",
     lambda b: b["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}),
])
def test_reasoning_effort_is_translated(client, fake, model, effort, check):
    client.chat.completions.create(model=model, messages=USER, reasoning_effort=effort)
    api = "anthropic" if model.startswith("claude") else "google"
    assert check(fake.last(api).body)


def test_current_and_unknown_fields_pass_through_to_openai(client, fake):
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER, stream_options=None, extra_body=NEW_FIELDS)
    sent = fake.last("openai").body
    for name, value in NEW_FIELDS.items():
        assert sent[name] == value, name
    assert "x-ember-dropped-params" not in r.headers


def test_stream_options_include_obfuscation_is_accepted(client, fake):
    stream = client.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False})
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


@pytest.mark.parametrize("model,api", [("claude-sonnet-4-5", "anthropic"),
                                       ("gemini-2.0-flash", "google")])
def test_fields_without_effect_on_the_answer_are_not_sent_to_translated_providers(
        client, fake, model, api):
    client.chat.completions.create(model=model, messages=USER, store=False, extra_body={
        "prompt_cache_key": "k", "metadata": {"a": "b"}, "modalities": ["text"],
        "prediction": {"type": "content", "content": "x"}, "service_tier": "auto"})
    sent = fake.last(api).body
    for name in ("prompt_cache_key", "prediction", "modalities", "store"):
        assert name not in sent, name
    if api == "anthropic":
        assert sent["service_tier"] == "auto" and "metadata" not in sent


def test_safety_identifier_becomes_claudes_user_id(client, fake):
    client.chat.completions.create(model="claude-sonnet-4-5", messages=USER,
                                   extra_body={"safety_identifier": "hash-7"})
    assert fake.last("anthropic").body["metadata"] == {"user_id": "hash-7"}


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.0-flash", "offline/echo"])
@pytest.mark.parametrize("field,value", [
    ("verbosity", "high"), ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]), ("web_search_options", {}), ("store", True),
    ("service_tier", "flex"), ("a_field_from_next_year", 1)])
def test_fields_a_translated_provider_cannot_honour_are_a_400_naming_them(
        client, fake, model, field, value):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=USER, extra_body={field: value})
    error = info.value.body
    assert error["param"] == field and field in error["message"]
    assert info.value.response.headers["x-request-id"] in error["message"]


def test_drop_params_drops_with_a_warning_header(dropping, fake):
    _url, client = dropping
    r = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=USER, seed=3, presence_penalty=0.5,
        extra_body={"verbosity": "high", "a_field_from_next_year": 1})
    assert r.parse().choices[0].message.content.startswith("Echo")
    dropped = r.headers["x-ember-dropped-params"].split(",")
    assert sorted(dropped) == ["a_field_from_next_year", "presence_penalty", "seed",
                               "verbosity"]
    sent = fake.last("anthropic").body
    assert not {"seed", "presence_penalty", "verbosity", "a_field_from_next_year"} & set(sent)


def test_drop_params_streams_carry_the_header_too(dropping, fake):
    url, _client = dropping
    with httpx.stream("POST", url + "/v1/chat/completions", headers=AUTH, json={
            "model": "gemini-2.0-flash", "messages": USER, "stream": True,
            "logit_bias": {"1": 2}}) as r:
        assert r.status_code == 200 and r.headers["x-ember-dropped-params"] == "logit_bias"
        assert b"[DONE]" in r.read()


def test_drop_params_never_drops_for_openai(dropping, fake):
    _url, client = dropping
    r = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER, seed=3, extra_body={"verbosity": "high"})
    assert "x-ember-dropped-params" not in r.headers
    assert fake.last("openai").body["verbosity"] == "high"


@pytest.mark.parametrize("body,param", [
    ({"reasoning_effort": "maximum"}, "reasoning_effort"),
    ({"verbosity": "loud"}, "verbosity"), ({"service_tier": 3}, "service_tier"),
    ({"prompt_cache_key": ["x"]}, "prompt_cache_key"),
    ({"stream_options": {"include_obfuscation": "no"}}, "stream_options.include_obfuscation"),
    ({"modalities": ["smell"]}, "modalities[0]"), ({"metadata": {"a": 1}}, "metadata"),
])
def test_known_fields_with_garbage_are_a_400_naming_them(client, fake, body, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=USER, extra_body=body)
    assert info.value.body["param"] == param
    assert not fake.requests


# -- 2. refusals reach the client ------------------------------------------------------------------
def test_openai_refusal_reaches_the_client(client, fake):
    body = _wire.openai_completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    fake.queue("openai", Reply(body=orjson.dumps(body)))
    message = client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message
    assert message.refusal == "I can't help with that." and message.content is None


def test_openai_streamed_refusal_reaches_the_client(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "refusal": ""})),
              _wire.sse(_wire.openai_chunk({"refusal": "I can't "})),
              _wire.sse(_wire.openai_chunk({"refusal": "help."})),
              _wire.sse(_wire.openai_chunk({}, finish="stop")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    parts = [c.choices[0].delta.refusal or "" for c in client.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True) if c.choices]
    assert "".join(parts) == "I can't help."


def test_claude_refusal_stop_reason_becomes_a_refusal(client, fake):
    fake.queue("anthropic", Reply(body=orjson.dumps(_wire.anthropic_message(
        "", "claude-sonnet-4-5", stop_reason="refusal"))))
    choice = client.chat.completions.create(model="claude-sonnet-4-5", messages=USER).choices[0]
    assert choice.message.refusal and choice.message.content is None
    assert choice.finish_reason == "content_filter"


def test_claude_streamed_refusal_becomes_a_refusal(client, fake):
    frames = _wire.anthropic_sse([], "claude-sonnet-4-5")
    frames[-2] = _wire.sse({"type": "message_delta", "delta": {"stop_reason": "refusal"},
                            "usage": {"output_tokens": 1}}, "message_delta")
    fake.queue("anthropic", _sse(frames))
    refusal, finish = "", None
    for chunk in client.chat.completions.create(model="claude-sonnet-4-5", messages=USER,
                                                stream=True):
        for choice in chunk.choices:
            refusal += choice.delta.refusal or ""
            finish = choice.finish_reason or finish
    assert refusal and finish == "content_filter"


# -- 3. errors clients act on ------------------------------------------------------------------------
def _upstream(code=None, kind="bad_request", status=400, retry_after=None, **context):
    return ProviderAPIError("upstream said sk-secret-123", error_type=kind, status_code=status,
                            provider="anthropic", model="m", retry_after=retry_after,
                            context={"code": code, **context} if code else context)


@pytest.mark.parametrize("exc,status,type_,code", [
    (_upstream("context_length_exceeded"), 400, "invalid_request_error",
     "context_length_exceeded"),
    (_upstream("content_filter"), 400, "invalid_request_error", "content_filter"),
    (_upstream("rate_limit_exceeded", "rate_limit", 429, 7.2), 429, "rate_limit_error",
     "rate_limit_exceeded"),
    (_upstream("insufficient_quota", "rate_limit", 429), 429, "insufficient_quota",
     "insufficient_quota"),
    (_upstream("server_error", "server", 500), 502, "upstream_error", "server_error"),
    (_upstream(None, "server", 529, 30.0), 503, "server_error", "overloaded"),
    (_upstream(None, "server", 503), 503, "server_error", "overloaded"),
    (_upstream(None, "server", 500, provider_error_type="overloaded_error"), 503,
     "server_error", "overloaded"),
    (_upstream(None, "bad_request", 400), 400, "invalid_request_error", "bad_request"),
    (_upstream("a_code_from_next_year", "server", 500), 502, "upstream_error", "server"),
])
def test_upstream_error_codes_map_to_openais(exc, status, type_, code):
    got_status, body, headers = classify(exc, "req_1", ["sk-secret-123"])
    assert (got_status, body["error"]["type"], body["error"]["code"]) == (status, type_, code)
    assert "sk-secret" not in str(body)
    if status in (429, 503):
        after = exc.context.get("retry_after")
        assert float(headers["retry-after"]) >= (after or 1)


@pytest.mark.parametrize("after,header", [(7.2, "8"), (0.2, "1"), (120.5, "121"),
                                          (float("nan"), "1"), (-3, "1"), ("x", "1")])
def test_retry_after_is_never_shortened(after, header):
    _status, _body, headers = classify(_upstream("rate_limit_exceeded", "rate_limit", 429,
                                                 after), "req_1", [])
    assert headers["retry-after"] == header


def test_upstream_429_retry_after_reaches_the_client_unshortened(client, fake):
    fake.queue("anthropic", Reply(status=429, headers={"retry-after": "120.5"}, body=orjson.dumps(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=USER)
    assert info.value.response.headers["retry-after"] == "121"
    assert int(info.value.response.headers["retry-after-ms"]) >= 120500


def test_claude_overloaded_529_is_a_503_with_retry_after(client, fake):
    overloaded = Reply(status=529, headers={"retry-after": "90"}, body=orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    fake.queue("anthropic", overloaded)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=USER)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "90"


def test_refusals_reach_messages_and_responses_clients(fake, serve):
    anthropic = pytest.importorskip("anthropic")
    url, client = _client(serve)
    body = _wire.openai_completion(None)
    body["choices"][0]["message"]["refusal"] = "No."
    fake.queue("openai", Reply(body=orjson.dumps(body)), Reply(body=orjson.dumps(body)))
    r = client.responses.create(model="gpt-4o", input="x", store=False)
    assert r.output[0].content[0].type == "refusal" and r.output[0].content[0].refusal == "No."
    an = anthropic.Anthropic(base_url=url, api_key="sk-gateway-key", max_retries=0)
    m = an.messages.create(model="gpt-4o", max_tokens=5, messages=USER)
    assert m.stop_reason == "refusal" and m.content[0].text == "No."
    frames = [_wire.sse(_wire.openai_chunk({"refusal": "No"})),
              _wire.sse(_wire.openai_chunk({"refusal": "pe."})),
              _wire.sse(_wire.openai_chunk({}, finish="stop")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames), _sse(frames))
    with client.responses.stream(model="gpt-4o", input="x", store=False) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.refusal.delta" in kinds and final.output[0].content[0].refusal == "Nope."
    with an.messages.stream(model="gpt-4o", max_tokens=5, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal" and final.content[0].text == "Nope."
    an.close()
    client.close()


@pytest.mark.filterwarnings("ignore:no price known")
def test_unknown_fields_pass_through_to_openai_compatible_upstreams(fake, serve, monkeypatch):
    monkeypatch.setenv("LOCALLLM_BASE_URL", fake.url + "/v1")
    app = gateway_app()
    app.mount_openai(["localllm/qwen3"], api_keys=["sk-gateway-key"], drop_params=True)
    url = serve(app)
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    r = client.chat.completions.with_raw_response.create(
        model="localllm/qwen3", messages=USER, reasoning_effort="xhigh",
        extra_body={"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20,
                    "verbosity": "low"})
    sent = fake.last("openai").body
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent["top_k"] == 20 and sent["verbosity"] == "low"
    assert sent["reasoning_effort"] == "xhigh" and sent["model"] == "qwen3"
    assert "x-ember-dropped-params" not in r.headers
    client.close()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_drop_params_must_be_a_bool(value):
    with pytest.raises(ValueError, match="drop_params"):
        gateway_app().mount_openai(["gpt-4o"], drop_params=value)


@pytest.mark.parametrize("stream", [False, True])
def test_claude_refusal_after_some_text_keeps_the_text_and_adds_the_refusal(client, fake, stream):
    if stream:
        frames = _wire.anthropic_sse(["I was", " about"], "claude-sonnet-4-5")
        frames[-2] = _wire.sse({"type": "message_delta", "delta": {"stop_reason": "refusal"},
                                "usage": {"output_tokens": 3}}, "message_delta")
        fake.queue("anthropic", _sse(frames))
        content, refusal = "", ""
        for chunk in client.chat.completions.create(model="claude-sonnet-4-5", messages=USER,
                                                    stream=True):
            for choice in chunk.choices:
                content += choice.delta.content or ""
                refusal += choice.delta.refusal or ""
    else:
        fake.queue("anthropic", Reply(body=orjson.dumps(_wire.anthropic_message(
            "I was about", "claude-sonnet-4-5", stop_reason="refusal"))))
        message = client.chat.completions.create(model="claude-sonnet-4-5",
                                                 messages=USER).choices[0].message
        content, refusal = message.content, message.refusal
    assert content == "I was about" and refusal
