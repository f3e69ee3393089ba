"""A model the server has no key for: an OpenAI-shaped error naming the variable, streamed or not."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("stream", [False, True])
def test_missing_provider_key_is_an_openai_error_not_a_bare_500(monkeypatch, stream):
    from ember import Ember

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    app = Ember()
    app.mount_openai(["offline/echo", "claude-sonnet-4-5"], prefix="/v1", api_keys=["k"])
    with app.test_client() as client:
        r = client.post("/v1/chat/completions", headers={"authorization": "Bearer k"},
                        json={"model": "claude-sonnet-4-5", "stream": stream,
                              "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "model_configuration" and "ANTHROPIC_API_KEY" in error["message"]
