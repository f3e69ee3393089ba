"""Issue 22, model side, through the gateway with the official openai SDK: usage with every
billed class, translations Claude and Gemini accept."""

from __future__ import annotations

import orjson
import pytest

from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply
from tests.models.test_usage_classes import ANTHROPIC_DELTA, _anthropic_stream

openai = pytest.importorskip("openai")


@pytest.fixture
def client(fake, serve):
    app = gateway_app()
    app.mount_openai(["claude-3-5-haiku", "o3-mini", "gemini-2.0-flash"],
                     api_keys=["sk-gateway-key"])
    c = openai.OpenAI(base_url=serve(app) + "/v1", api_key="sk-gateway-key", max_retries=0)
    yield c
    c.close()


def test_streamed_anthropic_cached_input_reaches_the_client(client, fake):
    fake.queue("anthropic", _anthropic_stream(ANTHROPIC_DELTA))
    stream = client.chat.completions.create(
        model="claude-3-5-haiku", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage is not None][-1]
    assert usage.prompt_tokens == 2510  # was 10: the final delta overwrote the cached count
    assert usage.prompt_tokens_details.cached_tokens == 2500
    assert usage.completion_tokens == 15 and usage.total_tokens == 2525


def test_reasoning_tokens_reach_the_client(client, fake):
    body = _wire.openai_completion("Hi", "o3-mini")
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 40
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 8
    fake.queue("openai", Reply(body=orjson.dumps(body)))
    usage = client.chat.completions.create(
        model="o3-mini", messages=[{"role": "user", "content": "hi"}]).usage
    assert usage.completion_tokens_details.reasoning_tokens == 40
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert usage.model_extra["cost"] > 0


@pytest.mark.parametrize("model", ["claude-3-5-haiku", "gemini-2.0-flash"])
@pytest.mark.parametrize("stream", [False, True])
def test_image_parts_reach_claude_and_gemini_translated(client, fake, model, stream):
    from tests.models.test_translations import PNG_URI, _image_message

    r = client.chat.completions.create(model=model, messages=_image_message(PNG_URI),
                                       stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in r if c.choices) if stream \
        else r.choices[0].message.content
    assert text.startswith("Echo")  # the strict fake answered: the request was valid
    if model.startswith("claude"):
        block = fake.last("anthropic").body["messages"][0]["content"][1]
        assert block["type"] == "image" and block["source"]["type"] == "base64"
    else:
        part = fake.last("google").body["contents"][0]["parts"][1]
        assert part["inlineData"]["mimeType"] == "image/png"


def test_json_schema_to_claude_through_the_gateway(client, fake):
    from tests.models.test_translations import FORMAT, _forced_reply

    fake.queue("anthropic", _forced_reply(False))
    r = client.chat.completions.create(model="claude-3-5-haiku", response_format=FORMAT,
                                       messages=[{"role": "user", "content": "Louvre?"}])
    assert orjson.loads(r.choices[0].message.content) == {"city": "Paris"}
    assert r.choices[0].finish_reason == "stop" and not r.choices[0].message.tool_calls


def test_an_untranslatable_image_is_a_400_naming_messages(client, fake):
    from tests.models.test_translations import _image_message

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude-3-5-haiku",
                                       messages=_image_message("data:image/png;base64,@@"))
    assert info.value.param == "messages" and fake.count() == 0
