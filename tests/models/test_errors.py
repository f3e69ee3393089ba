"""Bad input at every entry point: statuses, retries, malformed bodies, timeouts, config."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ember.models import ModelProviderError, ModelRegistry, ProviderAPIError
from tests.models import _wire
from tests.models._fake import FakeProvider, Reply

OPENAI_ERR = b'{"error": {"message": "boom %d", "type": "x", "param": null, "code": null}}'
CASES = [
    (400, "bad_request", False), (401, "authentication", False),
    (403, "authentication", False), (404, "bad_request", False), (408, "timeout", True),
    (429, "rate_limit", True), (500, "server", True), (503, "server", True),
    (529, "server", True),
]


@pytest.mark.parametrize(("status", "kind", "retried"), CASES)
@pytest.mark.parametrize("retry_after", [None, "0"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
def test_status_codes(registry: ModelRegistry, fake: FakeProvider, status: int, kind: str,
                      retried: bool, retry_after: str | None, mode: str) -> None:
    headers = {"retry-after": retry_after} if retry_after else {}
    fake.queue("openai", *[Reply(status=status, body=OPENAI_ERR % status, headers=headers)
                           for _ in range(3)])

    async def consume_async() -> None:
        if mode == "async":
            await registry.invoke_model_async("gpt-4", "x")
        else:
            async for _ in registry.stream_model_async("gpt-4", "x"):
                pass

    with pytest.raises(ProviderAPIError) as info:
        if mode == "sync":
            registry.invoke_model("gpt-4", "x")
        elif mode == "stream":
            list(registry.stream_model("gpt-4", "x"))
        else:
            asyncio.run(consume_async())
    err = info.value
    assert err.context["error_type"] == kind
    assert err.context["status_code"] == status
    assert err.context["provider_message"] == f"boom {status}"
    assert err.context["provider"] == "openai"
    assert fake.count("openai") == (3 if retried else 1)
    assert err.context["attempts"] == fake.count("openai")
    summary = registry.get_usage_summary("gpt-4")
    assert summary.error_count == 1 and summary.total_usage.total_tokens == 0


def test_retry_then_success(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("openai", Reply(status=503, body=b"upstream down", content_type="text/plain"),
               Reply(status=429, body=OPENAI_ERR % 429))
    r = registry.invoke_model("gpt-4", "x")
    assert r.text == "Echo: x" and fake.count() == 3


def test_retry_after_is_honoured(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("openai", Reply(status=429, body=OPENAI_ERR % 429, headers={"retry-after": "0.3"}))
    started = time.perf_counter()
    registry.invoke_model("gpt-4", "x")
    assert time.perf_counter() - started >= 0.3


def test_retry_after_ms_and_date(registry: ModelRegistry, fake: FakeProvider) -> None:
    from email.utils import formatdate

    fake.queue("openai", Reply(status=429, body=OPENAI_ERR % 429, headers={"retry-after-ms": "50"}),
               Reply(status=503, body=b"", headers={"retry-after": formatdate(time.time() - 5,
                                                                             usegmt=True)}))
    assert registry.invoke_model("gpt-4", "x").text == "Echo: x"


def test_retry_after_beyond_max_wait_gives_up(fake: FakeProvider,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_MODEL_RETRY_MAX_WAIT", "1")
    fake.queue("openai", Reply(status=429, body=OPENAI_ERR % 429, headers={"retry-after": "120"}))
    with ModelRegistry() as reg, pytest.raises(ProviderAPIError) as info:
        reg.invoke_model("gpt-4", "x")
    assert info.value.context["retry_after"] == 120 and fake.count() == 1


def test_max_retries_per_call(registry: ModelRegistry, fake: FakeProvider) -> None:
    fake.queue("openai", *[Reply(status=500, body=b"{}") for _ in range(6)])
    with pytest.raises(ProviderAPIError):
        registry.invoke_model("gpt-4", "x", max_retries=4)
    assert fake.count() == 5


@pytest.mark.parametrize("body", [b"not json", b'{"choices": []}', b"[1, 2]", b""])
def test_malformed_json(registry: ModelRegistry, fake: FakeProvider, body: bytes) -> None:
    fake.queue("openai", Reply(body=body))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model("gpt-4", "x")
    assert info.value.error_type == "server" and "malformed" in str(info.value)
    assert fake.count() == 1  # never retried: the request may have been billed


@pytest.mark.parametrize("model", ["gpt-4", "claude-3-opus", "gemini-2.0-flash"])
def test_malformed_sse_after_chunks(registry: ModelRegistry, fake: FakeProvider,
                                    model: str) -> None:
    if model.startswith("gpt"):
        good = [_wire.sse(_wire.openai_chunk({"content": "ok"}))]
    elif model.startswith("claude"):
        good = _wire.anthropic_sse(["ok"], stop=False)
    else:
        good = _wire.gemini_sse(["ok", "x"])[:1]
    api = {"gpt": "openai", "cla": "anthropic", "gem": "google"}[model[:3]]
    bad = b"event: content_block_delta\n" if api == "anthropic" else b""
    fake.queue(api, Reply(body=[*good, bad + b"data: {\"broken\": \n\n"],
                          content_type="text/event-stream", chunked=True))
    got = []
    with pytest.raises(ProviderAPIError) as info:
        for chunk in registry.stream_model(model, "x"):
            got.append(chunk.text)
    assert got == ["ok"] and info.value.error_type == "server"
    assert info.value.context["partial_usage"].completion_tokens >= 1


@pytest.mark.parametrize("how", ["eof", "abort", "midframe"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_truncated_stream(registry: ModelRegistry, fake: FakeProvider, how: str,
                          asynchronous: bool) -> None:
    frames = _wire.openai_sse(["a", "b", "c"], usage=None, done=False)
    # NOTE: no finish_reason either: a body that ends after one is complete (see below)
    frames = [f for f in frames if b'"finish_reason":"stop"' not in f]
    if how == "midframe":
        frames.append(b'data: {"id": "chatcmpl-123", "obj')
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream",
                               chunked=how != "eof", close=how == "eof",
                               abort=how in ("abort", "midframe")))
    got: list[str] = []

    async def run() -> None:
        async for chunk in registry.stream_model_async("gpt-4", "x"):
            got.append(chunk.text)

    with pytest.raises(ProviderAPIError) as info:
        if asynchronous:
            asyncio.run(run())
        else:
            for chunk in registry.stream_model("gpt-4", "x"):
                got.append(chunk.text)
    assert "".join(got) == "abc"
    assert info.value.error_type == "connection"
    usage = info.value.context["partial_usage"]
    assert usage.estimated and usage.completion_tokens >= 1 and usage.prompt_tokens > 0
    assert registry.get_usage_summary("gpt-4").total_usage.completion_tokens >= 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_stream_ending_after_finish_reason_without_done_is_complete(
        registry: ModelRegistry, fake: FakeProvider, asynchronous: bool) -> None:
    # llama.cpp-style servers end the body after the finish_reason chunk, without [DONE]
    frames = _wire.openai_sse(["a", "b"], usage=(3, 2), done=False)
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", close=True))

    async def run() -> list[str]:
        stream = registry.stream_model_async("gpt-4", "x")
        out = [c.text async for c in stream]
        return [*out, stream.response.finish_reason]

    if asynchronous:
        got = asyncio.run(run())
    else:
        stream = registry.stream_model("gpt-4", "x")
        got = [c.text for c in stream] + [stream.response.finish_reason]
    assert "".join(got[:-1]) == "ab" and got[-1] == "stop"
    assert registry.get_usage_summary("gpt-4").total_usage.completion_tokens == 2


def test_hung_upstream_times_out(registry: ModelRegistry, fake: FakeProvider) -> None:
    # NOTE: hung for a minute: only the 0.2 s timeout ends it before pytest's hang guard
    fake.queue("openai", Reply(delay=60))
    with pytest.raises(ProviderAPIError) as info:
        registry.invoke_model("gpt-4", "x", timeout=0.2, max_retries=0)
    assert info.value.error_type == "timeout"


def test_slow_stream_times_out_between_chunks(registry: ModelRegistry, fake: FakeProvider
                                              ) -> None:
    frames = _wire.openai_sse(["a", "b"])
    frames.insert(2, 3.0)
    fake.queue("openai", Reply(body=frames, content_type="text/event-stream", chunked=True))
    got = []
    with pytest.raises(ProviderAPIError) as info:
        for chunk in registry.stream_model("gpt-4", "x", timeout=0.3):
            got.append(chunk.text)
    assert got == ["a"] and info.value.error_type == "timeout"


def test_hung_upstream_async_retries_then_fails(registry: ModelRegistry, fake: FakeProvider
                                               ) -> None:
    fake.queue("openai", Reply(delay=5), Reply(delay=5))

    async def main() -> None:
        await registry.invoke_model_async("gpt-4", "x", timeout=0.1, max_retries=1)

    with pytest.raises(ProviderAPIError) as info:
        asyncio.run(main())
    assert info.value.error_type == "timeout" and fake.count() == 2


def test_connection_refused(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    with ModelRegistry() as reg, pytest.raises(ProviderAPIError) as info:
        reg.invoke_model("gpt-4", "x")
    assert info.value.error_type == "connection"


@pytest.mark.parametrize(("model", "var"), [
    ("gpt-4", "OPENAI_API_KEY"), ("o3-mini", "OPENAI_API_KEY"),
    ("claude-3-opus", "ANTHROPIC_API_KEY"), ("gemini-pro", "GOOGLE_API_KEY")])
def test_missing_key_names_variable(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch,
                                    model: str, var: str) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with ModelRegistry() as reg:
        for call in (lambda: reg.invoke_model(model, "x"), lambda: reg.stream_model(model, "x"),
                     lambda: asyncio.run(reg.invoke_model_async(model, "x"))):
            with pytest.raises(ModelProviderError, match=var):
                call()
    assert fake.count() == 0


@pytest.mark.parametrize(("model", "suggestion"), [
    ("gpt4", "gpt-4"), ("claud-3-opus", "claude-3-opus"), ("gemni-pro", "gemini-pro")])
def test_unknown_model_lists_close_matches(registry: ModelRegistry, model: str,
                                           suggestion: str) -> None:
    with pytest.raises(ModelProviderError) as info:
        registry.invoke_model(model, "x")
    assert suggestion in info.value.context["suggestions"]
    assert suggestion in str(info.value)


@pytest.mark.parametrize("model", ["", "/gpt-4", "openai/", "nosuch/model"])
def test_bad_model_ids(registry: ModelRegistry, model: str) -> None:
    with pytest.raises(ModelProviderError):
        registry.invoke_model(model, "x")


def test_unknown_provider_suggests(registry: ModelRegistry) -> None:
    with pytest.raises(ModelProviderError, match="anthropic"):
        registry.invoke_model("antropic/claude-3-opus", "x")


def test_error_type_survives_layers(fake: FakeProvider) -> None:
    from ember.api import models

    fake.queue("openai", Reply(status=401, body=OPENAI_ERR % 401))
    with pytest.raises(ProviderAPIError) as info:
        models.instance("gpt-4")("x")
    assert info.value.context["error_type"] == "authentication"


def test_bad_prompt_type(registry: ModelRegistry) -> None:
    with pytest.raises(TypeError):
        registry.invoke_model("gpt-4", [42])


def test_a_missing_http_client_is_a_configuration_error(monkeypatch):
    """The seed's `except ModelProviderError` catches a missing httpx; it names the extra."""
    import sys

    from ember.exceptions import MissingDependency
    from ember.models.exceptions import ModelProviderError
    from ember.models.providers import _transport

    monkeypatch.setitem(sys.modules, "httpx", None)  # an import of httpx now fails
    monkeypatch.setattr(_transport, "_httpx", None)
    with pytest.raises(ModelProviderError) as info:
        _transport.httpx_module()
    err = info.value
    assert isinstance(err, ModelProviderError) and isinstance(err, MissingDependency)
    assert isinstance(err, ImportError)
    assert 'pip install "ember-api[models]"' in str(err)
    assert err.context["reason"] == "missing_dependency"
