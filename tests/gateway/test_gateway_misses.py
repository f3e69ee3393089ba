"""404 and 405 under the gateway's prefix answer in OpenAI's error shape (#20).

The official SDK reads ``error.message`` from the body and raises ``NotFoundError``
(404) or ``APIStatusError`` (405); a body in another shape leaves users with a bare
status.  Outside the prefix the app's own 404/405 stay as they were.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.gateway.conftest import gateway_app

KEY = "sk-miss-key-00001"


@pytest.fixture
def url(serve):
    app = gateway_app()

    @app.get("/elsewhere")
    async def elsewhere():
        return {"ok": True}

    app.mount_openai("offline/echo", prefix="/v1", api_keys=[KEY])
    return serve(app)


def _shape(r: httpx.Response) -> dict:
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"]
    return error


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/nope"), ("POST", "/v1/chat/complete"), ("POST", "/v1/"),
    ("DELETE", "/v1/chat/completions/extra"), ("GET", "/v1/%00%ff"), ("POST", "/v1"),
    ("PUT", "/v1/" + "a/" * 300),
])
def test_unknown_paths_under_the_prefix_are_openai_404s(url, method, path):
    r = httpx.request(method, url + path, headers={"authorization": f"Bearer {KEY}"},
                      content=b"{not json")
    assert r.status_code == 404
    error = _shape(r)
    assert error["message"].startswith(f"Invalid URL ({method} ")


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/chat/completions", "POST"), ("DELETE", "/v1/models", "GET"),
    ("PUT", "/v1/embeddings", "POST"), ("PATCH", "/v1/messages", "POST"),
])
def test_wrong_methods_under_the_prefix_are_openai_405s(url, method, path, allow):
    r = httpx.request(method, url + path)
    assert r.status_code == 405
    error = _shape(r)
    assert error["code"] == "method_not_allowed"
    assert f"use {allow}" in error["message"]
    assert allow in r.headers["allow"]


def test_the_openai_sdk_raises_not_found_with_the_message(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.get("/nothing/here", cast_to=object)
    assert "Invalid URL (GET /v1/nothing/here)" in info.value.message
    assert info.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.APIStatusError) as info:
        client.get("/chat/completions", cast_to=object)
    assert info.value.status_code == 405
    assert "use POST" in info.value.message
    # the model routes still answer
    assert client.models.list().data[0].id == "offline/echo"


def test_outside_the_prefix_the_app_answers_as_before(url):
    r = httpx.get(url + "/v2/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = httpx.post(url + "/elsewhere")
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    r = httpx.get(url + "/v1x/models")  # a prefix of the path, not of a segment
    assert r.status_code == 404 and "error" not in r.json()
    # OPTIONS on a gateway route still answers its methods
    r = httpx.options(url + "/v1/chat/completions")
    assert r.status_code == 204 and "POST" in r.headers["allow"]
