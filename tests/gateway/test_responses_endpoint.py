"""``POST /v1/responses`` (and GET/DELETE of stored ones): the official ``openai`` SDK's
``client.responses`` against the gateway, fake upstreams behind it."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")

MODELS = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"]
KEY = "sk-gateway-key"
TOOL = {"type": "function", "name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _mount(serve, **kwargs):
    app = gateway_app()
    app.mount_openai([*MODELS, "offline/echo"], api_keys={"a": KEY, "b": "sk-other-key"},
                     **kwargs)
    return serve(app)


@pytest.fixture
def url(fake, serve):
    return _mount(serve)


@pytest.fixture
def client(url):
    c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    yield c
    c.close()


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


def _api(model):
    return {"gpt-4o": "openai", "claude-sonnet-4-5": "anthropic",
            "gemini-2.0-flash": "google"}[model]


@pytest.mark.parametrize("model", MODELS)
def test_text_response(client, fake, model):
    r = client.responses.create(model=model, input="hi there", instructions="be brief",
                                max_output_tokens=50)
    assert r.object == "response" and r.status == "completed" and r.model == model
    assert r.output_text == "Echo: hi there"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    sent = fake.last(_api(model)).body
    if model == "gpt-4o":
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["max_completion_tokens"] == 50


@pytest.mark.parametrize("model", MODELS)
def test_streamed_response_events(client, fake, model):
    with client.responses.stream(model=model, input="hi there") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.content_part.added",
                 "response.output_text.delta", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):
        assert kind in kinds, kind
    assert final.output_text == "Echo: hi there" and final.usage.total_tokens > 0


def test_function_call_and_output_round_trip(client, fake):
    call = {"id": "call_9", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    fake.queue("openai", Reply(body=orjson.dumps(_wire.openai_completion(
        None, "gpt-4o", tool_calls=[call], finish="tool_calls"))))
    r = client.responses.create(model="gpt-4o", input="weather?", tools=[TOOL],
                                tool_choice={"type": "function", "name": "get_weather"})
    item = r.output[0]
    assert item.type == "function_call" and item.call_id == "call_9"
    assert item.name == "get_weather" and orjson.loads(item.arguments) == {"city": "Oslo"}
    sent = fake.last("openai").body
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    client.responses.create(model="gpt-4o", tools=[TOOL], input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather",
         "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "18C"}])
    messages = fake.last("openai").body["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_9"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_9", "content": "18C"}


def test_streamed_function_call(client, fake):
    frames = [_wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 0, "id": "call_1", "type": "function",
                  "function": {"name": "get_weather", "arguments": '{"ci'}}]})),
              _wire.sse(_wire.openai_chunk({"tool_calls": [{
                  "index": 0, "function": {"arguments": 'ty": "Rome"}'}}]})),
              _wire.sse(_wire.openai_chunk({}, finish="tool_calls")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    with client.responses.stream(model="gpt-4o", input="weather?", tools=[TOOL]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert orjson.loads(final.output[0].arguments) == {"city": "Rome"}


def test_json_schema_text_format(client, fake):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
              "additionalProperties": False}
    client.responses.create(model="gpt-4o", input="x", text={"format": {
        "type": "json_schema", "name": "thing", "schema": schema, "strict": True}})
    fmt = fake.last("openai").body["response_format"]
    assert fmt == {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema,
                                                          "strict": True}}


def test_store_and_previous_response_id(client, fake):
    first = client.responses.create(model="gpt-4o", input="my name is Ada")
    second = client.responses.create(model="gpt-4o", input="what is my name?",
                                     previous_response_id=first.id, instructions="short")
    messages = fake.last("openai").body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Echo: my name is Ada"
    assert client.responses.retrieve(second.id).output_text == second.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="x", previous_response_id=first.id)


def test_stored_responses_belong_to_their_key(client, url, fake):
    first = client.responses.create(model="gpt-4o", input="secret")
    other = openai.OpenAI(base_url=url + "/v1", api_key="sk-other-key", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o", input="x", previous_response_id=first.id)
    other.close()


def test_store_false_is_not_kept(client, fake):
    r = client.responses.create(model="gpt-4o", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_streamed_response_is_stored(client, fake):
    with client.responses.stream(model="gpt-4o", input="remember me") as stream:
        final = stream.get_final_response()
    client.responses.create(model="gpt-4o", input="and now?", previous_response_id=final.id)
    assert fake.last("openai").body["messages"][1]["content"] == "Echo: remember me"


@pytest.mark.parametrize("extra,param", [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"background": True}, "background"), ({"include": ["file_search_call.results"]},
                                           "include"),
    ({"conversation": "conv_1"}, "conversation"), ({"max_tool_calls": 3}, "max_tool_calls"),
    ({"truncation": "auto"}, "truncation"), ({"reasoning": {"summary": "detailed"}},
                                             "reasoning.summary"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
])
def test_what_cannot_be_faithful_is_a_400_naming_it(client, fake, extra, param):
    args = {"model": "gpt-4o", "input": "x", **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**args)
    assert info.value.body["param"] == param
    assert not fake.requests


def test_new_fields_follow_the_chat_rules(client, fake):
    client.responses.create(model="gpt-4o", input="x", text={"verbosity": "low"},
                            extra_body={"prompt_cache_key": "k"})
    sent = fake.last("openai").body
    assert sent["verbosity"] == "low" and sent["prompt_cache_key"] == "k"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="claude-sonnet-4-5", input="x",
                                text={"verbosity": "high"})
    assert info.value.body["param"] == "verbosity"


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"model": "gpt-4o"}',
                                 b'{"model": "gpt-4o", "input": 5}',
                                 b'{"model": "gpt-4o", "input": [5]}',
                                 b'{"model": "gpt-4o", "input": [{"role": "robot"}]}',
                                 b'{"model": "gpt-4o", "input": "x", "max_output_tokens": 0}',
                                 b'{"model": "gpt-4o", "input": [{"type": "function_call"}]}'])
def test_garbage_is_a_400(url, fake, raw):
    r = httpx.post(url + "/v1/responses", content=raw, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_unauthenticated_get_is_401(url, fake):
    assert httpx.get(url + "/v1/responses/resp_x").status_code == 401
    assert httpx.delete(url + "/v1/responses/resp_x",
                        headers={"authorization": "Bearer nope"}).status_code == 401


def test_redis_store_is_shared_by_two_servers(fake, serve, redis_server):
    first_url = _mount(serve, response_store=redis_server.url + "/5")
    second_url = _mount(serve, response_store=redis_server.url + "/5")
    one = openai.OpenAI(base_url=first_url + "/v1", api_key=KEY, max_retries=0)
    two = openai.OpenAI(base_url=second_url + "/v1", api_key=KEY, max_retries=0)
    # NOTE: offline models: two servers calling one upstream leave a pooled connection
    # of the shared default registry open at teardown (a models/ issue, not this one)
    first = one.responses.create(model="offline/echo", input="my name is Ada")
    assert two.responses.retrieve(first.id).output_text == first.output_text
    second = two.responses.create(model="offline/echo", input="name?",
                                  previous_response_id=first.id)
    assert second.previous_response_id == first.id
    two.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(first.id)
    one.close()
    two.close()


def test_redis_down_policy(fake, serve):
    url = _mount(serve, response_store="redis://127.0.0.1:1/0")
    c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    r = c.responses.create(model="gpt-4o", input="x")  # fails open: served, not stored
    assert r.output_text == "Echo: x" and r.store is False
    with pytest.raises(openai.InternalServerError) as info:
        c.responses.create(model="gpt-4o", input="y", previous_response_id=r.id)
    assert info.value.status_code == 503 and info.value.response.headers["retry-after"]
    c.close()


@pytest.mark.parametrize("bad", ["http://x", 5, object()])
def test_bad_store_config_is_refused_at_mount(bad):
    with pytest.raises(ValueError):
        gateway_app().mount_openai(["gpt-4o"], response_store=bad)


def test_codex_style_history_with_reasoning_and_text_then_calls(client, fake):
    """Codex sends reasoning items between turns and text + calls in one turn
    (CLIProxyAPI #4138): one assistant message with content and tool_calls."""
    client.responses.create(model="gpt-4o", tools=[TOOL], input=[
        {"role": "user", "content": "weather in two cities?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking both."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city": "A"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather",
         "arguments": '{"city": "B"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "1C"},
        {"type": "function_call_output", "call_id": "c2", "output": "2C"}])
    messages = fake.last("openai").body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["content"] == "Checking both."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c1", "c2"]


@pytest.mark.parametrize("field,value", [("n", 2), ("seed", 1), ("logprobs", True),
                                         ("stop", ["x"]), ("messages", []),
                                         ("top_k", 3), ("a_field_from_next_year", 1)])
def test_fields_that_are_not_the_responses_apis_are_a_400(client, fake, field, value):
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4o", input="x", extra_body={field: value})
    assert info.value.body["param"] == field
    assert not fake.requests


def test_memory_store_bounds():
    import asyncio

    from ember.gateway.response_store import MemoryResponseStore, StoreUnavailable

    async def go():
        store = MemoryResponseStore(max_items=2, max_bytes=10)
        await store.put("a", b"1234")
        await store.put("b", b"1234")
        await store.put("c", b"1234")  # over max_items: "a" goes
        assert await store.get("a") is None and await store.get("c") == b"1234"
        await store.put("d", b"123456")  # over max_bytes: "b" goes, 10 bytes left
        assert await store.get("b") is None and await store.get("c") == b"1234"
        with pytest.raises(StoreUnavailable):
            await store.put("e", b"x" * 11)
        assert await store.delete("d") and not await store.delete("d")
        short = MemoryResponseStore(ttl=0.001)
        await short.put("a", b"1")
        await asyncio.sleep(0.01)
        assert await short.get("a") is None

    asyncio.run(go())


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"ttl": -1}, {"ttl": True}, {"max_items": 0},
                                    {"max_bytes": "1"}, {"max_items": 1.5}])
def test_memory_store_config_garbage(kwargs):
    from ember.gateway.response_store import MemoryResponseStore

    with pytest.raises(ValueError):
        MemoryResponseStore(**kwargs)
