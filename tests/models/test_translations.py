"""Requests translated from OpenAI's vocabulary that Claude and Gemini accept.

Each case is a request that went out wrongly before (the strict fake, tests/models/_strict.py,
answers 400 to it as the real provider does); sent through the registry, as ``models(...)``
and the gateway send it.
"""

from __future__ import annotations

import base64
import itertools

import orjson
import pytest

from ember.models import ModelRegistry
from ember.models.params import UnsupportedParameterError
from tests.models import _wire
from tests.models._fake import Reply

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
CLAUDE = "claude-sonnet-4-5"
GEMINI = "gemini-2.0-flash"


def _image_message(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


# -- images ----------------------------------------------------------------------------------
def test_bytes_prompt_becomes_a_claude_base64_image(registry: ModelRegistry, fake):
    assert registry.invoke_model(CLAUDE, ["What is this?", PNG]).text.startswith("Echo")
    content = fake.last("anthropic").body["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}}


def test_image_url_becomes_a_claude_url_image(registry: ModelRegistry, fake):
    registry.invoke_model(CLAUDE, _image_message("https://example.com/cat.webp?x=1"))
    block = fake.last("anthropic").body["messages"][0]["content"][1]
    assert block == {"type": "image", "source": {"type": "url",
                                                 "url": "https://example.com/cat.webp?x=1"}}


def test_images_become_gemini_inline_and_file_data(registry: ModelRegistry, fake):
    registry.invoke_model(GEMINI, _image_message(PNG_URI))
    parts = fake.last("google").body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png",
                                       "data": base64.b64encode(PNG).decode()}}
    registry.invoke_model(GEMINI, _image_message("https://example.com/a.png"))
    parts = fake.last("google").body["contents"][0]["parts"]
    assert parts[1] == {"fileData": {"mimeType": "image/png",
                                     "fileUri": "https://example.com/a.png"}}


def test_streamed_image_request_is_translated_too(registry: ModelRegistry, fake):
    s = registry.stream_model(CLAUDE, _image_message(PNG_URI))
    assert s.collect().text
    assert fake.last("anthropic").body["messages"][0]["content"][1]["type"] == "image"


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
@pytest.mark.parametrize("url", ["data:image/png,notbase64", "data:image/png;base64,@@@",
                                 "ftp://example.com/a.png", "", "javascript:alert(1)"])
def test_garbage_image_urls_are_refused_before_sending(registry: ModelRegistry, fake, model,
                                                       url):
    with pytest.raises(UnsupportedParameterError) as info:
        registry.invoke_model(model, _image_message(url))
    assert info.value.context["param"] == "messages" and fake.count() == 0


def test_claude_refuses_image_types_it_cannot_read(registry: ModelRegistry, fake):
    with pytest.raises(UnsupportedParameterError, match="JPEG, PNG, GIF or WebP"):
        registry.invoke_model(CLAUDE, _image_message("data:image/bmp;base64,AAAA"))
    assert fake.count() == 0


# -- structured output to Claude -------------------------------------------------------------
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}


def _forced_reply(stream: bool) -> Reply:
    if not stream:
        body = _wire.anthropic_message("", CLAUDE, tool_use={
            "id": "toolu_1", "name": "ember_structured_output", "input": {"city": "Paris"}},
            stop_reason="tool_use")
        return Reply(body=orjson.dumps(body))
    frames = _wire.anthropic_sse([], CLAUDE, stop=False)[:1]
    frames += [
        _wire.sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "ember_structured_output",
            "input": {}}}, "content_block_start"),
        *[_wire.sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": p}}, "content_block_delta")
          for p in ('{"city"', ': "Paris"}')],
        _wire.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _wire.sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                   "usage": {"output_tokens": 9}}, "message_delta"),
        _wire.sse({"type": "message_stop"}, "message_stop"),
    ]
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_to_claude_is_a_forced_tool_answered_as_text(registry, fake, stream):
    fake.queue("anthropic", _forced_reply(stream))
    if stream:
        response = registry.stream_model(CLAUDE, "Where is the Louvre?",
                                         response_format=FORMAT).collect()
    else:
        response = registry.invoke_model(CLAUDE, "Where is the Louvre?", response_format=FORMAT)
    assert orjson.loads(response.text) == {"city": "Paris"}
    assert response.tool_calls == [] and response.finish_reason == "stop"
    sent = fake.last("anthropic").body
    assert sent["tool_choice"] == {"type": "tool", "name": "ember_structured_output"}
    assert sent["tools"][0]["input_schema"]["properties"] == SCHEMA["properties"]


@pytest.mark.parametrize("extra", [
    {"tools": [{"type": "function", "function": {"name": "f"}}]},
    {"reasoning_effort": "low"},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}},
    {"response_format": {"type": "json_schema", "json_schema": "x"}},
    {"response_format": {"type": "yaml"}},
])
def test_json_formats_claude_cannot_take_are_refused(registry, fake, extra):
    params = {"response_format": FORMAT, **extra}
    with pytest.raises(UnsupportedParameterError) as info:
        registry.invoke_model(CLAUDE, "hi", **params)
    assert info.value.context["param"] == "response_format" and fake.count() == 0


# -- JSON Schema for Gemini ------------------------------------------------------------------
def test_tool_schemas_are_sanitised_for_gemini(registry: ModelRegistry, fake):
    params = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "default": "c"}},
        "properties": {
            "city": {"type": "string", "title": "City", "examples": ["Paris"]},
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"type": ["integer", "null"], "exclusiveMinimum": 0},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                          {"type": "null"}]}},
            "level": {"type": "integer", "enum": [1, 2, 3]},
        }, "required": ["city", "ghost"],
    }
    tools = [{"type": "function", "function": {"name": "weather", "parameters": params}}]
    assert registry.invoke_model(GEMINI, "weather?", tools=tools).text  # the fake took it
    sent = fake.last("google").body["tools"][0]["functionDeclarations"][0]["parameters"]
    props = sent["properties"]
    assert props["unit"] == {"type": "string", "enum": ["c", "f"]}
    assert props["days"] == {"type": "integer", "nullable": True}
    assert props["mode"] == {"enum": ["fast"], "type": "string"}
    assert props["tags"]["items"] == {"type": "string", "nullable": True}
    assert "enum" not in props["level"] and "1, 2, 3" in props["level"]["description"]
    assert sent["required"] == ["city"]
    assert "additionalProperties" not in sent and "$schema" not in sent


def test_a_recursive_schema_is_refused_for_gemini(registry: ModelRegistry, fake):
    params = {"type": "object", "$defs": {"Node": {"type": "object", "properties": {
        "child": {"$ref": "#/$defs/Node"}}}}, "properties": {"root": {"$ref": "#/$defs/Node"}}}
    with pytest.raises(UnsupportedParameterError, match="recursive"):
        registry.invoke_model(GEMINI, "x", tools=[{"type": "function", "function": {
            "name": "t", "parameters": params}}])
    assert fake.count() == 0


# -- conversations: roles, tool-call ids, tool results ---------------------------------------
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "first"},
    {"role": "user", "content": [{"type": "text", "text": "second"}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call:1/a b", "type": "function",
         "function": {"name": "lookup", "arguments": '{"q": 1}'}},
        {"id": "call_1", "type": "function", "function": {"name": "lookup",
                                                          "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call:1/a b", "content": [{"type": "text", "text": "42"}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
    {"role": "user", "content": "and again"},
    # another turn reusing an id (some clients number calls per turn)
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup",
                                                          "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "7"},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "thanks"},
]


def test_conversation_is_valid_for_claude(registry: ModelRegistry, fake):
    assert registry.invoke_model(CLAUDE, CONVERSATION).text  # the strict fake took it
    sent = fake.last("anthropic").body
    assert sent["system"] == "Be brief."
    roles = [m["role"] for m in sent["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # turns alternate
    uses = [b["id"] for m in sent["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_use"]
    assert len(set(uses)) == 3
    results = [b["tool_use_id"] for m in sent["messages"] if isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"]
    assert results == uses  # each result answers its own call
    first_result = sent["messages"][2]["content"][0]
    assert first_result["content"] == [{"type": "text", "text": "42"}]


def test_conversation_is_valid_for_gemini(registry: ModelRegistry, fake):
    assert registry.invoke_model(GEMINI, CONVERSATION).text
    sent = fake.last("google").body
    roles = [c["role"] for c in sent["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    responses = [p["functionResponse"]["name"] for c in sent["contents"] for p in c["parts"]
                 if "functionResponse" in p]
    assert responses == ["lookup", "lookup", "lookup"]


def test_the_strict_fake_does_refuse_what_claude_refuses(registry: ModelRegistry, fake):
    """The guard rails are real: a raw Claude block with a bad id is a 400 upstream."""
    from ember.api.exceptions import ProviderAPIError

    bad = [{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "bad id!", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "bad id!",
                                      "content": "1"}]}]
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model(CLAUDE, bad)
    assert info.value.status_code == 400 and "pattern" in str(info.value)


def test_a_tool_result_whose_call_was_trimmed_goes_as_text(registry: ModelRegistry, fake):
    """Clients trim old turns; a result without its call is a 400 at Claude."""
    history = [{"role": "tool", "tool_call_id": "call_old", "content": "42"},
               {"role": "user", "content": "and now?"}]
    assert registry.invoke_model(CLAUDE, history).text
    sent = fake.last("anthropic").body["messages"]
    assert sent == [{"role": "user", "content": [
        {"type": "text", "text": "[result of tool call call_old]: 42"},
        {"type": "text", "text": "and now?"}]}]


def test_a_tool_call_never_answered_goes_as_text(registry: ModelRegistry, fake):
    """A client that continues without sending the tool's result (or trims it)."""
    history = [{"role": "user", "content": "time?"},
               {"role": "assistant", "content": "Let me check.", "tool_calls": [
                   {"id": "call_9", "type": "function",
                    "function": {"name": "clock", "arguments": '{"tz": "UTC"}'}}]},
               {"role": "user", "content": "never mind, hello"}]
    assert registry.invoke_model(CLAUDE, history).text  # the strict fake took it
    assistant = fake.last("anthropic").body["messages"][1]["content"]
    assert assistant == [{"type": "text", "text": "Let me check."}, {
        "type": "text", "text": '[called tool clock with {"tz":"UTC"}; no result was given]'}]
