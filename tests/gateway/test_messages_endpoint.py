"""``POST /v1/messages``: the official ``anthropic`` SDK against the gateway, with the
fake OpenAI, Anthropic and Gemini upstreams of tests/models behind it."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

anthropic = pytest.importorskip("anthropic")

MODELS = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash", "offline/echo"]
KEY = "sk-gateway-key"
HI = [{"role": "user", "content": "hi there"}]
TOOL = {"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.fixture
def url(fake, serve):
    app = gateway_app()
    app.mount_openai(MODELS, api_keys=[KEY])
    return serve(app)


@pytest.fixture
def client(url):
    c = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
    yield c
    c.close()


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def _api(model):
    return {"gpt-4o": "openai", "claude-sonnet-4-5": "anthropic",
            "gemini-2.0-flash": "google"}[model]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"])
def test_text_message(client, fake, model):
    m = client.messages.create(model=model, max_tokens=100, messages=HI, system="be brief",
                               stop_sequences=["END"], extra_body={"temperature": 0.5})
    assert m.type == "message" and m.role == "assistant" and m.model == model
    assert m.content[0].type == "text" and m.content[0].text == "Echo: hi there"
    assert m.stop_reason == "end_turn" and m.usage.input_tokens > 0
    assert m.usage.output_tokens > 0
    sent = fake.last(_api(model)).body
    if model == "gpt-4o":
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["max_completion_tokens"] == 100 and sent["stop"] == ["END"]
    elif model == "claude-sonnet-4-5":
        assert sent["system"] == "be brief" and sent["max_tokens"] == 100
        assert sent["stop_sequences"] == ["END"]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"])
def test_streamed_text_follows_anthropics_event_sequence(client, fake, model):
    with client.messages.stream(model=model, max_tokens=50, messages=HI) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events[-2] == "message_delta"
    assert final.content[0].text == "Echo: hi there" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_raw_stream_has_ping_and_named_events(url, fake):
    with httpx.stream("POST", url + "/v1/messages", headers={
            "x-api-key": KEY, "anthropic-version": "2023-06-01"}, json={
            "model": "gpt-4o", "max_tokens": 5, "messages": HI, "stream": True}) as r:
        body = r.read().decode()
    names = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"] and names[-1] == "message_stop"


def test_tool_use_from_openai(client, fake):
    call = {"id": "call_abc", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    fake.queue("openai", Reply(body=orjson.dumps(_wire.openai_completion(
        None, "gpt-4o", tool_calls=[call], finish="tool_calls"))))
    m = client.messages.create(model="gpt-4o", max_tokens=100, messages=HI, tools=[TOOL],
                               tool_choice={"type": "tool", "name": "get_weather",
                                            "disable_parallel_tool_use": True})
    assert m.stop_reason == "tool_use"
    block = m.content[-1]
    assert block.type == "tool_use" and block.id == "call_abc"
    assert block.name == "get_weather" and block.input == {"city": "Paris"}
    sent = fake.last("openai").body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": TOOL["input_schema"],
        "description": "Weather in a city"}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_streamed_tool_use_from_openai(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "content": "Let me see."})),
              _wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 0, "id": "call_1", "type": "function",
                  "function": {"name": "get_weather", "arguments": ""}}]})),
              _wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 0, "function": {"arguments": '{"city": '}}]})),
              _wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 0, "function": {"arguments": '"Oslo"}'}}]})),
              _wire.sse(_wire.openai_chunk({}, finish="tool_calls")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    with client.messages.stream(model="gpt-4o", max_tokens=50, messages=HI,
                                tools=[TOOL]) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas and "text_delta" in deltas
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Oslo"} and final.stop_reason == "tool_use"


def test_tool_results_go_back_as_tool_messages(client, fake):
    history = [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "text", "text": "and tomorrow?"}]}]
    client.messages.create(model="gpt-4o", max_tokens=10, messages=history, tools=[TOOL])
    sent = fake.last("openai").body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "toolu_1"
    assert orjson.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert sent[3]["role"] == "user" and sent[3]["content"][0]["text"] == "and tomorrow?"


def test_image_blocks_become_image_parts(client, fake):
    client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "what is this?"}]}])
    parts = fake.last("openai").body["messages"][0]["content"]
    assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert parts[1]["image_url"]["url"] == "https://example.com/a.jpg"


def test_bearer_auth_and_count_tokens(url, fake):
    c = anthropic.Anthropic(base_url=url, auth_token=KEY, api_key=None, max_retries=0)
    counted = c.messages.count_tokens(model="gpt-4o", messages=HI, system="be brief",
                                      tools=[TOOL])
    bare = c.messages.count_tokens(model="gpt-4o", messages=HI)
    assert counted.input_tokens > bare.input_tokens > 0
    assert not fake.requests
    c.close()


@pytest.mark.parametrize("kwargs,param", [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "text", "media_type": "text/plain", "data": "x"}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                  "content": [{"type": "image", "source": {
                                                      "type": "base64", "media_type": "image/png",
                                                      "data": PNG}}]}]}]}, "content"),
    ({"messages": [{"role": "system", "content": "x"}]}, "role"),
    ({"extra_body": {"mcp_servers": []}}, "mcp_servers"),
    ({"extra_body": {"temperature": 1.5}}, "temperature"),
    ({"output_config": {"effort": "max"}}, "output_config.effort"),
    ({"inference_geo": "eu"}, "inference_geo"),
])
def test_what_cannot_be_translated_is_a_400_in_anthropics_shape(client, fake, kwargs, param):
    args = {"model": "gpt-4o", "max_tokens": 10, "messages": HI, **kwargs}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**args)
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert param in body["error"]["message"]
    assert not fake.requests


def test_top_k_goes_to_claude_and_is_refused_for_openai(client, fake):
    client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HI,
                           extra_body={"top_k": 5})
    assert fake.last("anthropic").body["top_k"] == 5
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=HI,
                               extra_body={"top_k": 5})
    assert "top_k" in info.value.body["error"]["message"]


@pytest.mark.parametrize("headers", [{"x-api-key": "wrong"}, {"authorization": "Bearer wrong"},
                                     {}, {"x-api-key": ""}, {"authorization": KEY}])
def test_bad_keys_are_401_in_anthropics_shape(url, fake, headers):
    r = httpx.post(url + "/v1/messages", headers=headers, json={
        "model": "gpt-4o", "max_tokens": 5, "messages": HI})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error" and r.json()["type"] == "error"
    assert not fake.requests


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b'{"model": "gpt-4o"}',
                                 b'{"model": "gpt-4o", "max_tokens": 0, "messages": []}',
                                 b'{"model": "gpt-4o", "max_tokens": 5, "messages": [1]}',
                                 b'{"model": "gpt-4o", "max_tokens": 5, "messages": '
                                 b'[{"role": "user", "content": [{"type": "image"}]}]}',
                                 b'{"model": "gpt-4o", "max_tokens": 5, "messages": '
                                 b'[{"role": "user", "content": 5}]}'])
def test_garbage_is_a_400(url, fake, raw):
    r = httpx.post(url + "/v1/messages", content=raw, headers={"x-api-key": KEY})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_structured_output_and_effort_are_translated(client, fake):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client.messages.create(model="gpt-4o", max_tokens=10, messages=HI, output_config={
        "format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        cache_control={"type": "ephemeral"})
    sent = fake.last("openai").body
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["reasoning_effort"] == "low" and "cache_control" not in sent


def test_unknown_model_is_404_not_found_error(client, fake):
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="nope", max_tokens=5, messages=HI)
    assert info.value.body["error"]["type"] == "not_found_error"


def test_upstream_rate_limit_is_a_rate_limit_error_with_retry_after(client, fake):
    fake.queue("openai", Reply(status=429, headers={"retry-after": "100"}, body=orjson.dumps(
        {"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}})))
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="gpt-4o", max_tokens=5, messages=HI)
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "100"


def test_error_mid_stream_is_an_error_event(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "content": "partial"})),
              _wire.sse({"error": {"message": "boom", "type": "server_error"}})]
    fake.queue("openai", _sse(frames))
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(
            model="gpt-4o", max_tokens=5, messages=HI) as stream:
        for _event in stream:
            pass


# -- peers' bugs (LiteLLM #29286, #25561) --------------------------------------------------------
def test_text_with_empty_tool_calls_list_is_text(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "content": "Hel",
                                            "tool_calls": []})),
              _wire.sse(_wire.openai_chunk({"content": "lo", "tool_calls": []})),
              _wire.sse(_wire.openai_chunk({}, finish="stop")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    with client.messages.stream(model="gpt-4o", max_tokens=5, messages=HI) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert set(deltas) == {"text_delta"} and final.content[0].text == "Hello"


def test_tool_arguments_in_the_first_chunk_are_not_dropped(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "tool_calls": [{
                  "index": 0, "id": "call_1", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}]})),
              _wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 1, "id": "call_2", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"city": "Quito"}'}}]})),
              _wire.sse(_wire.openai_chunk({}, finish="tool_calls")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    with client.messages.stream(model="gpt-4o", max_tokens=50, messages=HI,
                                tools=[TOOL]) as stream:
        final = stream.get_final_message()
    assert [b.input for b in final.content] == [{"city": "Lima"}, {"city": "Quito"}]


@pytest.mark.parametrize("version", ["2023-06-01", "garbage", "", "2099-01-01"])
def test_any_anthropic_version_header_is_accepted(url, fake, version):
    r = httpx.post(url + "/v1/messages", headers={
        "x-api-key": KEY, "anthropic-version": version, "anthropic-beta": "x,y"},
        json={"model": "gpt-4o", "max_tokens": 5, "messages": HI})
    assert r.status_code == 200 and r.json()["type"] == "message"


def test_drop_params_applies_to_messages(fake, serve):
    app = gateway_app()
    app.mount_openai(["gpt-4o"], api_keys=[KEY], drop_params=True)
    url = serve(app)
    r = httpx.post(url + "/v1/messages", headers={"x-api-key": KEY}, json={
        "model": "gpt-4o", "max_tokens": 5, "messages": HI, "top_k": 4})
    assert r.status_code == 200 and r.headers["x-ember-dropped-params"] == "top_k"
    assert "top_k" not in fake.last("openai").body
