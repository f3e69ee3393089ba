"""The gateway's usage shows every billed class as OpenAI does (official openai SDK)."""

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
    app.mount_openai(["claude-3-5-haiku", "o3-mini"], api_keys=["sk-gateway-key"])
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
