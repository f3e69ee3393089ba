"""The matrix of issue #22: client vocabulary (chat, messages, responses) x provider
(OpenAI, Anthropic, Gemini) for text, images, tools, tool results, structured output
and errors — the official SDKs as clients, the fake upstreams speaking each provider's
wire format, what the upstream received checked in its own vocabulary."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

KEY = "sk-gateway-key"
PROVIDERS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.0-flash"}
VOCABULARIES = ["chat", "messages", "responses"]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\1" * 24).decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def clients(fake, serve):
    app = gateway_app()
    app.mount_openai(list(PROVIDERS.values()), api_keys=[KEY])
    url = serve(app)
    oa = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
    yield oa, an
    oa.close()
    an.close()


# -- requests in each vocabulary ----------------------------------------------------------------
def _ask(clients, vocab, model, *, text="hi there", image=False, tool=False, history=False,
         schema=False):
    oa, an = clients
    if vocab == "chat":
        content = [{"type": "text", "text": text}]
        if image:
            content.insert(0, {"type": "image_url",
                               "image_url": {"url": f"data:image/png;base64,{PNG}"}})
        messages = [{"role": "user", "content": content}]
        if history:
            messages = [{"role": "user", "content": "weather in Oslo?"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {
                                "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]
        kwargs = {}
        if tool or history:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": "get_weather", "parameters": SCHEMA}}]
        if schema:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "place", "schema": SCHEMA}}
        r = oa.chat.completions.create(model=model, messages=messages, **kwargs)
        m = r.choices[0].message
        calls = [(c.function.name, orjson.loads(c.function.arguments))
                 for c in m.tool_calls or ()]
        return m.content or "", calls
    if vocab == "messages":
        content = [{"type": "text", "text": text}]
        if image:
            content.insert(0, {"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": PNG}})
        messages = [{"role": "user", "content": content}]
        if history:
            messages = [{"role": "user", "content": "weather in Oslo?"},
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1",
                                                           "name": "get_weather",
                                                           "input": {"city": "Oslo"}}]},
                        {"role": "user", "content": [{"type": "tool_result",
                                                      "tool_use_id": "call_1",
                                                      "content": "18C"}]}]
        kwargs = {}
        if tool or history:
            kwargs["tools"] = [{"name": "get_weather", "input_schema": SCHEMA}]
        if schema:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": SCHEMA}}
        r = an.messages.create(model=model, max_tokens=100, messages=messages, **kwargs)
        return ("".join(b.text for b in r.content if b.type == "text"),
                [(b.name, b.input) for b in r.content if b.type == "tool_use"])
    content = [{"type": "input_text", "text": text}]
    if image:
        content.insert(0, {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"})
    items = [{"role": "user", "content": content}]
    if history:
        items = [{"role": "user", "content": "weather in Oslo?"},
                 {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                  "arguments": '{"city": "Oslo"}'},
                 {"type": "function_call_output", "call_id": "call_1", "output": "18C"}]
    kwargs = {}
    if tool or history:
        kwargs["tools"] = [{"type": "function", "name": "get_weather", "parameters": SCHEMA,
                            "strict": False}]
    if schema:
        kwargs["text"] = {"format": {"type": "json_schema", "name": "place", "schema": SCHEMA}}
    r = oa.responses.create(model=model, input=items, store=False, **kwargs)
    return r.output_text, [(o.name, orjson.loads(o.arguments)) for o in r.output
                           if o.type == "function_call"]


def _tool_reply(provider):
    if provider == "openai":
        return Reply(body=orjson.dumps(_wire.openai_completion(None, "gpt-4o", tool_calls=[
            {"id": "call_7", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Oslo"}'}}], finish="tool_calls")))
    if provider == "anthropic":
        return Reply(body=orjson.dumps(_wire.anthropic_message(
            "", "claude-sonnet-4-5", tool_use={"id": "toolu_7", "name": "get_weather",
                                               "input": {"city": "Oslo"}},
            stop_reason="tool_use")))
    return Reply(body=orjson.dumps(_wire.gemini_response(
        None, function_call={"name": "get_weather", "args": {"city": "Oslo"}})))


def _rate_limited(provider):
    headers = {"retry-after": "100"}
    if provider == "anthropic":
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    elif provider == "google":
        body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    else:
        body = {"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}}
    return Reply(status=429, headers=headers, body=orjson.dumps(body))


matrix = pytest.mark.parametrize("provider", list(PROVIDERS))
vocabularies = pytest.mark.parametrize("vocab", VOCABULARIES)


@matrix
@vocabularies
def test_text(clients, fake, vocab, provider):
    text, calls = _ask(clients, vocab, PROVIDERS[provider])
    assert text == "Echo: hi there" and calls == []


@matrix
@vocabularies
def test_images(clients, fake, vocab, provider):
    _ask(clients, vocab, PROVIDERS[provider], image=True)
    sent = fake.last(provider).body
    if provider == "openai":
        part = sent["messages"][-1]["content"][0]
        assert part == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    else:  # NOTE: the provider's image shape is the model side's translation (B1)
        assert PNG in orjson.dumps(sent).decode()


@matrix
@vocabularies
def test_tool_calls(clients, fake, vocab, provider):
    fake.queue(provider, _tool_reply(provider))
    _text, calls = _ask(clients, vocab, PROVIDERS[provider], tool=True)
    assert calls == [("get_weather", {"city": "Oslo"})]
    sent = fake.last(provider).body
    if provider == "openai":
        assert sent["tools"][0]["function"]["name"] == "get_weather"
    elif provider == "anthropic":
        assert sent["tools"][0]["name"] == "get_weather"
        assert sent["tools"][0]["input_schema"]["properties"] == SCHEMA["properties"]
    else:
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


@matrix
@vocabularies
def test_tool_results(clients, fake, vocab, provider):
    _ask(clients, vocab, PROVIDERS[provider], history=True)
    sent = fake.last(provider).body
    if provider == "openai":
        assert sent["messages"][1]["tool_calls"][0]["id"] == "call_1"
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1",
                                       "content": "18C"}
    elif provider == "anthropic":
        use = sent["messages"][1]["content"][0]
        assert use["type"] == "tool_use" and use["input"] == {"city": "Oslo"}
        result = sent["messages"][2]["content"][0]
        assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
    else:
        call = sent["contents"][1]["parts"][0]["functionCall"]
        assert call == {"name": "get_weather", "args": {"city": "Oslo"}}
        assert sent["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"


@matrix
@vocabularies
def test_structured_output(clients, fake, vocab, provider):
    try:
        _ask(clients, vocab, PROVIDERS[provider], schema=True)
    except (openai.BadRequestError, anthropic.BadRequestError) as exc:
        # NOTE: Claude's translation of JSON schemas is the model side's (B1); until then
        # it is refused by name — never sent unchanged, never silently dropped
        assert provider == "anthropic" and "response_format" in str(exc)
        assert not fake.requests
        return
    sent = fake.last(provider).body
    if provider == "openai":
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    elif provider == "google":
        assert sent["generationConfig"]["responseJsonSchema"] == SCHEMA
    else:
        assert orjson.dumps(SCHEMA["properties"]).decode() in orjson.dumps(sent).decode()


@matrix
@vocabularies
def test_rate_limit_errors(clients, fake, vocab, provider):
    fake.queue(provider, _rate_limited(provider))
    expected = anthropic.RateLimitError if vocab == "messages" else openai.RateLimitError
    with pytest.raises(expected) as info:
        _ask(clients, vocab, PROVIDERS[provider])
    assert info.value.response.headers["retry-after"] == "100"
    body = info.value.body
    if vocab == "messages":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["type"] == "rate_limit_error" and "slow" not in body["message"]
