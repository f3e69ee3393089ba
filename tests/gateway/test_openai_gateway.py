"""The OpenAI-compatible endpoints, driven by the official ``openai`` SDK."""

from __future__ import annotations

import httpx
import pytest

from ember import Ember

openai = pytest.importorskip("openai", reason="the official openai SDK is the client here")


@pytest.fixture
def url(serve):
    app = Ember()
    app.mount_openai(["offline/echo", "offline/other"], api_keys=["sk-test"])
    return serve(app)


def test_sdk_chat_completion(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test")
    r = client.chat.completions.create(
        model="offline/echo", messages=[{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "Hello there"}])
    assert r.object == "chat.completion" and r.model == "offline/echo"
    assert "Hello there" in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == (
        r.usage.prompt_tokens + r.usage.completion_tokens)
    client.close()


def test_sdk_streaming_with_usage(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test")
    stream = client.chat.completions.create(
        model="offline/echo", messages=[{"role": "user", "content": "Stream me please"}],
        stream=True, stream_options={"include_usage": True})
    text, usage, finishes = [], None, []
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finishes.append(chunk.choices[0].finish_reason)
        if chunk.usage:
            usage = chunk.usage
    assert "Stream me please" in "".join(text)
    assert finishes[-1] == "stop" and usage is not None and usage.completion_tokens > 0
    client.close()


def test_sdk_async_client(url):
    import asyncio

    async def main():
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-test")
        results = await asyncio.gather(*[client.chat.completions.create(
            model="offline/other", messages=[{"role": "user", "content": f"n{i}"}])
            for i in range(10)])
        await client.close()
        return [r.choices[0].message.content for r in results]

    answers = asyncio.run(main())
    assert all(f"n{i}" in a for i, a in enumerate(answers))


def test_models_listing_and_errors(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    assert [m.id for m in client.models.list()] == ["offline/echo", "offline/other"]
    assert client.models.retrieve("offline/echo").owned_by == "offline"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-unknown",
                                       messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    client.close()
    bad.close()


@pytest.mark.parametrize("body,param", [
    (b"{not json", None), (b"[]", None), (b'{"messages": [{"role": "user", "content": "x"}]}',
                                          "model"),
    (b'{"model": "offline/echo", "messages": []}', "messages"),
    (b'{"model": "offline/echo", "messages": [{"role": "wizard", "content": "x"}]}',
     "messages[0].role"),
    (b'{"model": "offline/echo", "messages": [{"role": "user", "content": "x"}], '
     b'"temperature": 9}', "temperature"),
    (b'{"model": "offline/echo", "messages": [{"role": "user", "content": "x"}], '
     b'"stream": "yes"}', "stream"),
])
def test_bad_requests_get_openai_shaped_400s(url, body, param):
    r = httpx.post(url + "/v1/chat/completions", content=body,
                   headers={"authorization": "Bearer sk-test", "content-type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_provider_errors_keep_their_meaning(serve, monkeypatch):
    app = Ember()
    app.mount_openai("gpt-4o")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = serve(app)
    r = httpx.post(url + "/v1/chat/completions", json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 500 and "OPENAI_API_KEY" in r.json()["error"]["message"]


def test_mount_validation():
    app = Ember()
    with pytest.raises(ValueError):
        app.mount_openai([])
    with pytest.raises(ValueError):
        app.mount_openai("offline/echo", prefix="v1")
    with pytest.raises(ValueError):
        app.mount_openai("offline/echo", api_keys="sk")


def test_a_large_image_body_is_not_refused_by_the_server_limit(serve):
    """A ~2 MB data-URI image (new-user finding: the 1 MiB server default answered 413)."""
    import base64

    import httpx

    from ember import Ember

    app = Ember()
    app.mount_openai(["offline/echo"], max_body_size=4 * 1024 * 1024)
    url = serve(app)
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 1_500_000).decode()
    body = {"model": "offline/echo", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": image}}]}]}
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/v1/chat/completions", json={**body, "pad": "x" * 5_000_000},
                   timeout=30)
    assert r.status_code == 413  # the configured limit still holds
    for bad in (0, -1, "big", 1.5, True):
        try:
            Ember().mount_openai(["offline/echo"], max_body_size=bad)
        except ValueError as exc:
            assert "max_body_size" in str(exc)
        else:
            raise AssertionError(f"max_body_size={bad!r} accepted")
