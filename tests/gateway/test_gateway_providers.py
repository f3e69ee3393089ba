"""The gateway in front of local servers speaking each provider's wire format.

The official ``openai`` SDK is the client; tests/models/_fake.py is the upstream
(OpenAI, Anthropic and Gemini wire formats); what the upstream received is checked
in its own vocabulary.
"""

from __future__ import annotations

import orjson
import pytest

from ember import Ember  # noqa: F401
from ember.models import params as P
from tests.gateway.conftest import gateway_app
from tests.models import _wire
from tests.models._fake import Reply

openai = pytest.importorskip("openai")

MODELS = ["gpt-4o", "o3-mini", "claude-sonnet-4-5", "gemini-2.0-flash", "offline/echo"]
USER = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def client(fake, serve):
    app = gateway_app()
    app.mount_openai(MODELS, api_keys=["sk-gateway-key"])
    url = serve(app)
    c = openai.OpenAI(base_url=url + "/v1", api_key="sk-gateway-key", max_retries=0)
    yield c
    c.close()


def _sse(frames):
    return Reply(body=frames, content_type="text/event-stream", chunked=True)


# -- fault 1: Anthropic tool call with no arguments, streamed ---------------------------------
def _anthropic_tool_stream(partials):
    frames = [
        _wire.sse({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 1}}}, "message_start"),
        _wire.sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_01", "name": "get_time", "input": {}}},
            "content_block_start"),
    ]
    frames += [_wire.sse({"type": "content_block_delta", "index": 0, "delta": {
        "type": "input_json_delta", "partial_json": p}}, "content_block_delta")
        for p in partials]
    frames += [
        _wire.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _wire.sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                   "usage": {"output_tokens": 12}}, "message_delta"),
        _wire.sse({"type": "message_stop"}, "message_stop"),
    ]
    return frames


@pytest.mark.parametrize("partials", [[""], [], ['{"tz":', ' "UTC"}']])
def test_anthropic_streamed_tool_arguments_are_json(client, fake, partials):
    fake.queue("anthropic", _sse(_anthropic_tool_stream(partials)))
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=USER, stream=True,
        tools=[{"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {}}}}])
    args, names, finish = [], [], None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                args.append(call.function.arguments or "")
                if call.function.name:
                    names.append(call.function.name)
            finish = choice.finish_reason or finish
    text = "".join(args)
    assert names == ["get_time"] and finish == "tool_calls"
    assert orjson.loads(text) == ({} if "".join(partials) == "" else {"tz": "UTC"})


def test_anthropic_tool_call_without_arguments_not_streamed(client, fake):
    fake.queue("anthropic", Reply(body=orjson.dumps(_wire.anthropic_message(
        "", tool_use={"id": "toolu_1", "name": "get_time", "input": {}},
        stop_reason="tool_use"))))
    r = client.chat.completions.create(model="claude-sonnet-4-5", messages=USER)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.arguments == "{}" and r.choices[0].finish_reason == "tool_calls"


# -- fault 2: one parameter table per provider ----------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_every_table_decides_every_openai_parameter(provider):
    from ember.models.providers.base import get_provider_factory

    table = get_provider_factory(provider).PARAMS
    assert set(P.OPENAI_PARAMS) <= set(table), set(P.OPENAI_PARAMS) - set(table)


def test_openai_parameters_pass_through_unchanged(client, fake):
    client.chat.completions.create(
        model="o3-mini", messages=USER, max_completion_tokens=50, stop=["x"], seed=7,
        response_format={"type": "json_object"}, tool_choice="required",
        parallel_tool_calls=False, logprobs=True, top_logprobs=2, reasoning_effort="low",
        user="u-1", tools=[{"type": "function", "function": {"name": "f"}}])
    sent = fake.last("openai").body
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    for key, value in {"stop": ["x"], "seed": 7, "response_format": {"type": "json_object"},
                       "tool_choice": "required", "parallel_tool_calls": False,
                       "logprobs": True, "top_logprobs": 2, "reasoning_effort": "low",
                       "user": "u-1"}.items():
        assert sent[key] == value, key


def test_anthropic_parameters_are_translated(client, fake):
    client.chat.completions.create(
        model="claude-sonnet-4-5", messages=USER, max_completion_tokens=300, stop="END",
        tool_choice="required", parallel_tool_calls=False, reasoning_effort="low", user="u-9",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {}}}}])
    sent = fake.last("anthropic").body
    assert sent["stop_sequences"] == ["END"] and "stop" not in sent
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] > 1024  # the API wants max_tokens above the thinking budget
    assert sent["metadata"] == {"user_id": "u-9"}
    assert sent["tools"][0]["name"] == "f" and "input_schema" in sent["tools"][0]
    assert "max_completion_tokens" not in sent and "user" not in sent


def test_google_parameters_are_translated(client, fake):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    client.chat.completions.create(
        model="gemini-2.0-flash", messages=USER, max_tokens=40, stop="END", seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        tool_choice={"type": "function", "function": {"name": "f"}}, reasoning_effort="medium",
        user="dropped", tools=[{"type": "function", "function": {"name": "f"}}])
    sent = fake.last("google").body
    config = sent["generationConfig"]
    assert config["maxOutputTokens"] == 40 and config["stopSequences"] == ["END"]
    assert config["seed"] == 3 and config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    assert config["thinkingConfig"] == {"thinkingBudget": 8192}
    assert sent["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["f"]}}
    assert "user" not in sent and "seed" not in sent


@pytest.mark.parametrize("model,extra,param", [
    ("claude-sonnet-4-5", {"seed": 1}, "seed"),
    ("claude-sonnet-4-5", {"n": 2}, "n"),
    ("claude-sonnet-4-5", {"logprobs": True}, "logprobs"),
    ("claude-sonnet-4-5", {"response_format": {"type": "json_object"},
                           "reasoning_effort": "low"}, "response_format"),  # forcing + thinking
    ("claude-sonnet-4-5", {"presence_penalty": 0.5}, "presence_penalty"),
    ("claude-sonnet-4-5", {"temperature": 1.5}, "temperature"),
    ("gemini-2.0-flash", {"n": 3}, "n"),
    ("gemini-2.0-flash", {"logprobs": True}, "logprobs"),
    ("gemini-2.0-flash", {"parallel_tool_calls": False}, "parallel_tool_calls"),
    ("gemini-2.0-flash", {"logit_bias": {"50256": -100}}, "logit_bias"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_parameters_a_provider_cannot_honour_are_refused(client, fake, model, extra, param,
                                                         stream):
    with pytest.raises(openai.BadRequestError) as info:
        r = client.chat.completions.create(model=model, messages=USER, stream=stream, **extra)
        if stream:
            list(r)
    assert info.value.status_code == 400 and info.value.param == param
    assert param in info.value.message and fake.count() == 0  # never sent upstream


# -- fault 3: n > 1 ----------------------------------------------------------------------------
def test_n_choices_all_returned(client, fake):
    body = _wire.openai_completion("first", "gpt-4o")
    second = dict(body["choices"][0], index=1,
                  message={"role": "assistant", "content": "second"}, finish_reason="length")
    body["choices"].append(second)
    fake.queue("openai", Reply(body=orjson.dumps(body)))
    r = client.chat.completions.create(model="gpt-4o", messages=USER, n=2)
    assert fake.last("openai").body["n"] == 2
    assert [(c.index, c.message.content, c.finish_reason) for c in r.choices] == [
        (0, "first", "stop"), (1, "second", "length")]


def test_n_choices_streamed_with_their_index(client, fake):
    def chunk(index, delta, finish=None):
        return _wire.sse({"id": "c", "object": "chat.completion.chunk", "created": 1,
                          "model": "gpt-4o", "choices": [{"index": index, "delta": delta,
                                                          "finish_reason": finish}]})
    frames = [chunk(0, {"role": "assistant", "content": ""}),
              chunk(1, {"role": "assistant", "content": ""}),
              chunk(0, {"content": "a"}), chunk(1, {"content": "b"}),
              chunk(1, {"content": "b2"}), chunk(0, {}, "stop"), chunk(1, {}, "length"),
              b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for c in client.chat.completions.create(model="gpt-4o", messages=USER, n=2, stream=True):
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "a", 1: "bb2"} and finishes == {0: "stop", 1: "length"}


def test_offline_model_answers_n_choices(client):
    r = client.chat.completions.create(model="offline/echo", messages=USER, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.message.content for c in r.choices}) == 1


# -- fault 4: a stream that ends after its finish reason, without [DONE] ---------------------
def test_stream_without_done_after_finish_is_complete(client, fake):
    fake.queue("openai", Reply(body=_wire.openai_sse(["Hel", "lo"], usage=None, done=False),
                               content_type="text/event-stream", close=True))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello" and chunks[-1].choices[0].finish_reason == "stop"


def test_stream_without_finish_reason_is_truncated(client, fake):
    frames = [f for f in _wire.openai_sse(["Hel", "lo"], usage=None, done=False)
              if b'"finish_reason":"stop"' not in f]
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", close=True))
    with pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            pass
    assert "request id" in info.value.message


# -- fault 5: every error path in OpenAI's shape ---------------------------------------------
def test_missing_provider_key_while_streaming_names_the_variable(fake, serve, monkeypatch):
    app = gateway_app()
    app.mount_openai("claude-sonnet-4-5")
    url = serve(app)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    from ember.models import default_registry

    default_registry().close()  # forget the provider made with the key
    c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    for stream in (True, False):
        with pytest.raises(openai.InternalServerError) as info:
            r = c.chat.completions.create(model="claude-sonnet-4-5", messages=USER,
                                          stream=stream)
            list(r) if stream else None
        body = info.value.body
        assert "ANTHROPIC_API_KEY" in body["message"] and body["code"] == "model_configuration"
    c.close()


SECRET_ECHO = (b'{"error": {"message": "Incorrect API key provided: sk-test-openai. Upstream '
               b'host internal-llm.corp.example:8443 rejected it", "type": "invalid_request_error"}}')


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [401, 400, 500])
def test_upstream_error_bodies_never_reach_the_client(client, fake, caplog, stream, status):
    fake.queue("openai", *[Reply(status=status, body=SECRET_ECHO)] * 3)
    with caplog.at_level("WARNING", logger="ember.gateway"), \
            pytest.raises(openai.APIStatusError) as info:
        r = client.chat.completions.create(model="gpt-4o", messages=USER, stream=stream)
        list(r) if stream else None
    exc = info.value
    raw = exc.response.text
    assert "sk-test-openai" not in raw and "internal-llm" not in raw and "corp" not in raw
    assert exc.status_code == {401: 502, 400: 400, 500: 502}[status]
    rid = exc.response.headers["x-request-id"]
    assert rid in exc.message and set(exc.body) == {"message", "type", "param", "code"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert rid in logged and "internal-llm" in logged and "sk-test-openai" not in logged


def test_mid_stream_upstream_error_is_an_openai_error_frame(client, fake):
    frames = [*_wire.openai_sse(["a"], usage=None, done=False)[:2], b'data: {"error": {"message": "boom at 10.0.0.7 with sk-test-openai", ' b'"type": "server_error"}}\n\n']
    fake.queue("openai", _sse(frames))
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            got.append(c.choices[0].delta.content or "")
    assert "a" in got
    assert "10.0.0.7" not in info.value.message and "sk-" not in info.value.message


# -- streaming usage with cost, every provider ----------------------------------------------
@pytest.mark.parametrize("model,priced", [("gpt-4o", True), ("claude-sonnet-4-5", True),
                                          ("gemini-2.0-flash", True), ("offline/echo", False)])
def test_streaming_usage_with_cost_for_every_provider(client, fake, model, priced):
    usage = None
    for c in client.chat.completions.create(model=model, messages=USER, stream=True,
                                            stream_options={"include_usage": True}):
        if c.usage is not None:
            assert c.choices == []
            usage = c.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    cost = usage.model_extra["cost"]
    assert (cost > 0) if priced else cost == 0
    plain = client.chat.completions.create(model=model, messages=USER)
    assert (plain.usage.model_extra["cost"] > 0) == priced


def test_no_usage_chunk_unless_asked(client, fake):
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert all(c.usage is None for c in chunks)


# -- peers' bugs -------------------------------------------------------------------------------
def test_every_streamed_choice_carries_finish_reason_null_until_the_end(client, fake):
    # vLLM #19662, LocalAI #1194, liteLLM-proxy #19: finish_reason is required (nullable);
    # Ollama #4357 / sglang #3912: upstreams that send "" must not leak it to clients.
    frames = [_wire.sse(dict(_wire.openai_chunk({"content": p}), choices=[
        {"index": 0, "delta": {"content": p}, "finish_reason": ""}])) for p in ("a", "b")]
    frames += [_wire.sse(_wire.openai_chunk({}, finish="stop")), b"data: [DONE]\n\n"]
    fake.queue("openai", _sse(frames))
    import httpx

    with httpx.stream("POST", str(client.base_url) + "chat/completions",
                      headers={"authorization": "Bearer sk-gateway-key"},
                      json={"model": "gpt-4o", "messages": USER, "stream": True}) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    choices = [orjson.loads(line)["choices"][0] for line in lines[:-1]]
    assert all("finish_reason" in c for c in choices)
    assert [c["finish_reason"] for c in choices] == [None] * (len(choices) - 1) + ["stop"]


def test_streamed_no_argument_tool_call_round_trips_to_anthropic(client, fake):
    # liteLLM #5063: the "" arguments of a streamed call broke the next turn's JSON parse
    fake.queue("anthropic", _sse(_anthropic_tool_stream([""])))
    calls: dict[int, dict] = {}
    for chunk in client.chat.completions.create(
            model="claude-sonnet-4-5", messages=USER, stream=True,
            tools=[{"type": "function", "function": {"name": "get_time"}}]):
        for tc in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] += tc.function.name or ""
            entry["arguments"] += tc.function.arguments or ""
    call = calls[0]
    client.chat.completions.create(model="claude-sonnet-4-5", messages=[
        *USER, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "12:00"}],
        tools=[{"type": "function", "function": {"name": "get_time"}}])
    sent = fake.last("anthropic").body["messages"]
    assert sent[1]["content"][0] == {"type": "tool_use", "id": "toolu_01", "name": "get_time",
                                     "input": {}}
    assert sent[2]["content"][0]["type"] == "tool_result"


def test_o_series_max_completion_tokens_is_never_renamed(client, fake):
    # liteLLM #8213 / #10066: o3-mini answers 400 to max_tokens
    for stream in (False, True):
        r = client.chat.completions.create(model="o3-mini", messages=USER, stream=stream,
                                           max_completion_tokens=64)
        list(r) if stream else None
        sent = fake.last("openai").body
        assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent
