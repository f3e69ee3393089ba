"""``POST /v1/completions`` (legacy): the official ``openai`` SDK's ``client.completions``
against the gateway, fake upstreams behind it."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import gateway_app

openai = pytest.importorskip("openai")

MODELS = ["gpt-4o", "claude-sonnet-4-5", "gemini-2.0-flash"]
KEY = "sk-gateway-key"


@pytest.fixture
def url(fake, serve):
    app = gateway_app()
    app.mount_openai(MODELS, api_keys=[KEY])
    return serve(app)


@pytest.fixture
def client(url):
    c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    yield c
    c.close()


def _api(model):
    return {"gpt-4o": "openai", "claude-sonnet-4-5": "anthropic",
            "gemini-2.0-flash": "google"}[model]


@pytest.mark.parametrize("model", MODELS)
def test_completion(client, fake, model):
    r = client.completions.create(model=model, prompt="Say this is a test", stop=["\n"])
    assert r.object == "text_completion" and r.model == model
    assert r.choices[0].text == "Echo: Say this is a test"
    assert r.choices[0].finish_reason == "stop" and r.usage.total_tokens > 0
    sent = fake.last(_api(model)).body
    if model == "gpt-4o":
        assert sent["messages"] == [{"role": "user", "content": "Say this is a test"}]
        assert sent["max_tokens"] == 16 and sent["stop"] == ["\n"]  # OpenAI's default


@pytest.mark.parametrize("model", MODELS)
def test_streamed_completion(client, fake, model):
    chunks = list(client.completions.create(model=model, prompt=["hello"], max_tokens=30,
                                            stream=True,
                                            stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "Echo: hello"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens > 0


def test_echo_prepends_the_prompt(client, fake):
    r = client.completions.create(model="gpt-4o", prompt="abc", echo=True)
    assert r.choices[0].text == "abcEcho: abc"
    chunks = list(client.completions.create(model="gpt-4o", prompt="abc", echo=True,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "abcEcho: abc"


@pytest.mark.parametrize("kwargs,param", [
    ({"prompt": ["a", "b"]}, "prompt"), ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": [[1, 2]]}, "prompt"), ({"suffix": "x"}, "suffix"), ({"logprobs": 2}, "logprobs"),
    ({"best_of": 3}, "best_of"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -1}, "max_tokens"), ({"n": 0}, "n"), ({"echo": "yes"}, "echo"),
])
def test_what_cannot_be_faithful_is_a_400_naming_it(client, fake, kwargs, param):
    args = {"model": "gpt-4o", "prompt": "x", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**args)
    assert info.value.body["param"] == param
    assert not fake.requests


def test_n_is_refused_for_claude_and_passed_to_openai(client, fake):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="claude-sonnet-4-5", prompt="x", n=2)
    assert info.value.body["param"] == "n"
    client.completions.create(model="gpt-4o", prompt="x", n=2)
    assert fake.last("openai").body["n"] == 2


@pytest.mark.parametrize("raw", [b"", b"{", b'{"model": "gpt-4o"}', b'{"prompt": "x"}',
                                 b'{"model": "gpt-4o", "prompt": {}}'])
def test_garbage_is_a_400(url, fake, raw):
    r = httpx.post(url + "/v1/completions", content=raw, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 400, r.text


def test_key_is_required(url, fake):
    r = httpx.post(url + "/v1/completions", json={"model": "gpt-4o", "prompt": "x"})
    assert r.status_code == 401 and not fake.requests
