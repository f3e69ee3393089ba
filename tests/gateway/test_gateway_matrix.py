"""The matrix of issue #22: client vocabulary (chat, messages, responses) x provider
(OpenAI, Anthropic, Gemini, an OpenAI-compatible server by base URL) for text, images,
tools, tool results, structured output, errors and streaming (text and tool calls) —
the official SDKs as clients, the fake upstreams speaking each provider's wire format,
what the upstream received checked in its own vocabulary. The offline provider's cells
are at the end."""

from __future__ import annotations

import base64
import re

import orjson
import pytest

from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

KEY = "sk-gateway-key"
PROVIDERS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.0-flash",
             "compatible": "vllm/llama-3.1-8b"}
#: the fake upstream's API each provider speaks (an OpenAI-compatible server: OpenAI's)
API = {"openai": "openai", "anthropic": "anthropic", "google": "google",
       "compatible": "openai"}
OPENAI_WIRE = ("openai", "compatible")
VOCABULARIES = ["chat", "messages", "responses"]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\1" * 24).decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def clients(fake, serve, monkeypatch):
    monkeypatch.setenv("VLLM_BASE_URL", fake.url + "/v1")
    # NOTE: a self-hosted model has no list price; without one a PricingWarning is raised
    monkeypatch.setenv("EMBER_MODEL_COSTS_JSON",
                       '{"vllm/llama-3.1-8b": {"input": 0.1, "output": 0.2}}')
    app = gateway_app()
    app.mount_openai([*PROVIDERS.values(), "offline/echo"], api_keys=[KEY])
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
    if provider in OPENAI_WIRE:
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


def _overflow(provider):
    """Each provider's own context-window overflow, as it sends it."""
    if provider == "anthropic":
        body = {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": "prompt is too long: 250123 tokens > "
                                                      "200000 maximum"}}
    elif provider == "google":
        body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                          "The input token count (1200000) exceeds the maximum number of "
                          "tokens allowed (1048576)."}}
    elif provider == "compatible":  # vLLM
        body = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                "message": "This model's maximum context length is 4096 tokens. However, "
                           "you requested 5000 tokens. Please reduce the length."}
    else:
        body = {"error": {"message": "This model's maximum context length is 128000 tokens.",
                          "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}}
    return Reply(status=400, body=orjson.dumps(body))


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
    sent = fake.last(API[provider]).body
    if provider in OPENAI_WIRE:
        part = sent["messages"][-1]["content"][0]
        assert part == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    else:  # NOTE: the provider's image shape is the model side's translation (B1)
        assert PNG in orjson.dumps(sent).decode()


@matrix
@vocabularies
def test_tool_calls(clients, fake, vocab, provider):
    fake.queue(API[provider], _tool_reply(provider))
    _text, calls = _ask(clients, vocab, PROVIDERS[provider], tool=True)
    assert calls == [("get_weather", {"city": "Oslo"})]
    sent = fake.last(API[provider]).body
    if provider in OPENAI_WIRE:
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
    sent = fake.last(API[provider]).body
    if provider in OPENAI_WIRE:
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
    _ask(clients, vocab, PROVIDERS[provider], schema=True)
    sent = fake.last(API[provider]).body
    if provider in OPENAI_WIRE:
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    elif provider == "google":
        assert sent["generationConfig"]["responseJsonSchema"] == SCHEMA
    else:  # a forced tool whose input schema is the requested one
        forced = sent["tool_choice"]["name"]
        tool = next(t for t in sent["tools"] if t["name"] == forced)
        assert tool["input_schema"]["properties"] == SCHEMA["properties"]


@matrix
@vocabularies
def test_rate_limit_errors(clients, fake, vocab, provider):
    fake.queue(API[provider], _rate_limited(provider))
    expected = anthropic.RateLimitError if vocab == "messages" else openai.RateLimitError
    with pytest.raises(expected) as info:
        _ask(clients, vocab, PROVIDERS[provider])
    assert info.value.response.headers["retry-after"] == "100"
    body = info.value.body
    if vocab == "messages":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["type"] == "rate_limit_error" and "slow" not in body["message"]


@matrix
@vocabularies
def test_context_overflow_errors(clients, fake, vocab, provider):
    """Every provider's overflow reaches each client as that client's overflow error:
    OpenAI's ``context_length_exceeded`` code (clients trim and retry on it), Anthropic's
    ``invalid_request_error``; the upstream's text never reaches the client."""
    fake.queue(API[provider], _overflow(provider))
    expected = anthropic.BadRequestError if vocab == "messages" else openai.BadRequestError
    with pytest.raises(expected) as info:
        _ask(clients, vocab, PROVIDERS[provider])
    body = info.value.body
    if vocab == "messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["code"] == "context_length_exceeded"
        assert body["type"] == "invalid_request_error"
    # NOTE: the gateway's random request id (req_<hex>) may contain the digits by chance
    text = re.sub(r"req_[0-9a-f]+", "req_", str(body))
    assert "250123" not in text and "1200000" not in text


# -- streaming ------------------------------------------------------------------------------------
def _stream(clients, vocab, model, *, tool=False):
    """Stream one request with the vocabulary's SDK: ``(text, tool calls, event types)``."""
    oa, an = clients
    if vocab == "chat":
        kwargs = {"tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": SCHEMA}}]} if tool else {}
        text, calls, kinds = "", {}, set()
        for chunk in oa.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi there"}], stream=True,
                stream_options={"include_usage": True}, **kwargs):
            kinds.add(chunk.object)
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or ():
                    entry = calls.setdefault(call.index, ["", ""])
                    entry[0] = call.function.name or entry[0]
                    entry[1] += call.function.arguments or ""
        return text, [(n, orjson.loads(a)) for n, a in calls.values()], kinds
    if vocab == "messages":
        kwargs = {"tools": [{"name": "get_weather", "input_schema": SCHEMA}]} if tool else {}
        with an.messages.stream(model=model, max_tokens=100, messages=[
                {"role": "user", "content": "hi there"}], **kwargs) as s:
            kinds = {e.type for e in s}
            m = s.get_final_message()
        return ("".join(b.text for b in m.content if b.type == "text"),
                [(b.name, b.input) for b in m.content if b.type == "tool_use"], kinds)
    kwargs = {"tools": [{"type": "function", "name": "get_weather", "parameters": SCHEMA,
                         "strict": False}]} if tool else {}
    events = list(oa.responses.create(model=model, input="hi there", store=False, stream=True,
                                      **kwargs))
    done = [e for e in events if e.type == "response.completed"]
    assert len(done) == 1
    return ("".join(e.delta for e in events if e.type == "response.output_text.delta"),
            [(o.name, orjson.loads(o.arguments)) for o in done[0].response.output
             if o.type == "function_call"], {e.type for e in events})


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def _tool_stream(provider):
    """A streamed tool call in each provider's wire format, arguments in two fragments."""
    if provider in OPENAI_WIRE:
        start = {"tool_calls": [{"index": 0, "id": "call_7", "type": "function", "function": {
            "name": "get_weather", "arguments": ""}}]}
        frames = [_wire.sse(_wire.openai_chunk({"role": "assistant", "content": None})),
                  _wire.sse(_wire.openai_chunk(start))]
        frames += [_wire.sse(_wire.openai_chunk({"tool_calls": [{"index": 0, "function": {
            "arguments": part}}]})) for part in ('{"city":', ' "Oslo"}')]
        frames += [_wire.sse(_wire.openai_chunk({}, finish="tool_calls")), b"data: [DONE]\n\n"]
        return _sse(frames)
    if provider == "anthropic":
        frames = [_wire.anthropic_sse([], "claude-sonnet-4-5", stop=False)[0],
                  _wire.sse({"type": "content_block_start", "index": 0, "content_block": {
                      "type": "tool_use", "id": "toolu_7", "name": "get_weather",
                      "input": {}}}, "content_block_start")]
        frames += [_wire.sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": part}}, "content_block_delta")
            for part in ('{"city":', ' "Oslo"}')]
        frames += [_wire.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                   _wire.sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                              "usage": {"output_tokens": 12}}, "message_delta"),
                   _wire.sse({"type": "message_stop"}, "message_stop")]
        return _sse(frames)
    return _sse([b"data: " + orjson.dumps(_wire.gemini_response(None, function_call={
        "name": "get_weather", "args": {"city": "Oslo"}})) + b"\r\n\r\n"])


#: the event vocabulary each client must see
STREAM_EVENTS = {"chat": {"chat.completion.chunk"},
                 "messages": {"message_start", "content_block_start", "content_block_delta",
                              "content_block_stop", "message_delta", "message_stop"},
                 "responses": {"response.created", "response.completed"}}


@matrix
@vocabularies
def test_streaming_text(clients, fake, vocab, provider):
    text, calls, kinds = _stream(clients, vocab, PROVIDERS[provider])
    assert text == "Echo: hi there" and calls == []
    assert STREAM_EVENTS[vocab] <= kinds
    sent = fake.last(API[provider])
    assert sent.body.get("stream") is True or ":streamGenerateContent" in sent.path


@matrix
@vocabularies
def test_streaming_tool_calls(clients, fake, vocab, provider):
    fake.queue(API[provider], _tool_stream(provider))
    _text, calls, kinds = _stream(clients, vocab, PROVIDERS[provider], tool=True)
    assert calls == [("get_weather", {"city": "Oslo"})]
    assert STREAM_EVENTS[vocab] <= kinds


@matrix
@vocabularies
def test_streaming_errors_before_the_first_token(clients, fake, vocab, provider):
    """An upstream 429 on a streamed request: the client's own rate-limit error, with the
    provider's Retry-After, not a stream that ends silently."""
    fake.queue(API[provider], _rate_limited(provider))
    expected = anthropic.RateLimitError if vocab == "messages" else openai.RateLimitError
    with pytest.raises(expected) as info:
        _stream(clients, vocab, PROVIDERS[provider])
    assert info.value.response.headers["retry-after"] == "100"


# -- the offline provider: text and streaming in every vocabulary ----------------------------------
@vocabularies
def test_offline_text_and_streaming(clients, fake, vocab):
    text, calls = _ask(clients, vocab, "offline/echo")
    assert text == "[offline echo] You said: hi there" and calls == []
    text, calls, kinds = _stream(clients, vocab, "offline/echo")
    assert text == "[offline echo] You said: hi there" and calls == []
    assert STREAM_EVENTS[vocab] <= kinds
    assert not fake.requests  # no network
