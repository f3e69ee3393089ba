"""``ConversationContext`` refuses message content that no chat API accepts."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ember import ConversationContext, Ember, Request, sse_stream
from ember.ai import MessageContentError
from ember.testing import LiveServer


@pytest.mark.parametrize("content", [5, 1.5, True, b"bytes", {"text": "hi"}, ("a",), [],
                                     ["plain strings are not parts"], [{"text": "no type"}],
                                     [{"type": 5}], object()])
def test_non_string_content_is_a_type_error_saying_what_is_accepted(content):
    context = ConversationContext()
    with pytest.raises(TypeError, match="must be a str or a non-empty list of content parts"):
        context.add_message("user", content)
    assert context.messages == []


@pytest.mark.parametrize("role", ["user", "system", "tool"])
def test_none_content_is_refused_except_on_assistant_tool_calls(role):
    with pytest.raises(MessageContentError, match=f"a {role} message needs content"):
        ConversationContext().add_message(role, None)
    context = ConversationContext()
    context.add_message("assistant", None, tool_calls=[{"id": "c1"}])
    assert context.messages[0]["content"] is None


def test_strings_and_content_parts_are_kept_as_given():
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]
    context = ConversationContext(messages=[{"role": "system", "content": "be brief"}])
    context.add_message("user", parts)
    context.add_message("assistant", "a cat")
    assert [m["content"] for m in context.messages] == ["be brief", parts, "a cat"]


def test_constructor_messages_are_checked_too():
    with pytest.raises(MessageContentError):
        ConversationContext(messages=[{"role": "user", "content": 42}])


def _seed_app() -> Ember:
    # the seed's AI route, as written there
    app = Ember()

    async def token_stream(prompt: str):
        for word in f"You asked: {prompt}".split():
            await asyncio.sleep(0)
            yield word + " "

    @app.ai_route("/v1/chat", methods=["POST"], streaming=True)
    async def chat(request: Request, context: ConversationContext):
        body = await request.json()
        prompt = body.get("message", "")
        context.add_message("user", prompt)
        return sse_stream(token_stream(prompt))

    return app


def test_the_seed_route_answers_422_with_the_reason_for_bad_content():
    with LiveServer(_seed_app()) as server, httpx.Client(base_url=server.url) as client:
        for message in (5, {"nested": "object"}, ["a", "b"], None):
            r = client.post("/v1/chat", json={"message": message})
            assert r.status_code == 422, (message, r.text)
            assert r.headers["content-type"] == "application/json"
            assert "message" in r.json()["detail"]
        ok = client.post("/v1/chat", json={"message": "hi"})  # and the server goes on
        assert ok.status_code == 200
        assert ok.text == "data: You \n\ndata: asked: \n\ndata: hi \n\n"
