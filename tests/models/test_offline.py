"""The offline provider and local token counting."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from ember.models import ModelRegistry, tokens


@pytest.fixture
def reg() -> ModelRegistry:
    with ModelRegistry() as r:
        yield r


def test_deterministic_labelled_answer(reg: ModelRegistry) -> None:
    a = reg.invoke_model("offline/echo", "What is 2+2?")
    b = reg.invoke_model("offline/echo", [{"role": "system", "content": "s"},
                                          {"role": "user", "content": "What is 2+2?"}])
    assert a.text == b.text == "[offline echo] You said: What is 2+2?"
    assert reg.invoke_model("offline/reverse", "abc").text == "[offline reverse] cba"
    assert reg.invoke_model("offline/upper", "abc").text == "[offline upper] ABC"
    assert reg.invoke_model("offline/anything", "x").text.startswith("[offline anything]")
    assert a.usage.cost == 0 and a.usage.completion_tokens == tokens.count_tokens(a.text)
    assert a.usage.prompt_tokens == tokens.count_tokens("What is 2+2?") + 7


def test_needs_no_key(reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("OPENAI_API_KEY", "OFFLINE_API_KEY"):
        monkeypatch.delenv(k, raising=False)
    assert reg.invoke_model("offline/echo", "hi").text


def test_streams_token_by_token(reg: ModelRegistry) -> None:
    stream = reg.stream_model("offline/echo", "hello world")
    chunks = [c.text for c in stream]
    assert "".join(chunks) == "[offline echo] You said: hello world"
    assert len(chunks) == stream.usage.completion_tokens == tokens.count_tokens("".join(chunks))
    assert stream.response.finish_reason == "stop"


def test_pacing_param_and_env(reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    n = len(list(reg.stream_model("offline/echo", "a b c", token_delay=0.02)))
    assert time.perf_counter() - started >= 0.02 * (n - 1)
    monkeypatch.setenv("EMBER_OFFLINE_TOKEN_DELAY", "0.02")
    with ModelRegistry() as r2:
        async def main() -> float:
            t = time.perf_counter()
            async for _ in r2.stream_model_async("offline/echo", "a b c"):
                pass
            return time.perf_counter() - t
        assert asyncio.run(main()) >= 0.02 * (n - 1)


def test_max_tokens_truncates(reg: ModelRegistry) -> None:
    r = reg.invoke_model("offline/echo", "one two three four", max_tokens=3)
    assert r.finish_reason == "length" and r.usage.completion_tokens == 3
    assert r.text == "[offline echo"


def test_token_counts_are_real() -> None:
    assert tokens.count_tokens("hello world", "gpt-4") == 2  # cl100k [15339, 1917]
    assert tokens.count_tokens("hello world", "gpt-4o") == 2
    assert tokens.is_exact("gpt-4o")
    assert "".join(tokens.get_encoder().pieces("héllo wörld ✓")) == "héllo wörld ✓"


def test_heuristic_fallback() -> None:
    h = tokens._Heuristic()
    assert h.count("") == 0 and h.count("one two three four") >= 4
    assert "".join(h.pieces("a  b c")) == "a  b c"


def test_import_ember_loads_no_httpx() -> None:
    code = ("import sys, ember, ember.api, ember.models\n"
            "from ember.api import models\n"
            "r = models('offline/echo', 'hi')\n"
            "assert 'httpx' not in sys.modules, 'httpx imported'\n"
            "print(r.text)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[offline echo] You said: hi"
