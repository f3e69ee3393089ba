"""Fixtures for the AI primitives: a fake OpenAI-compatible upstream and a fresh registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ember.models import ModelRegistry
from tests.models._fake import FakeProvider


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeProvider]:
    """The models tests' programmable provider server (a real local HTTP server)."""
    server = FakeProvider()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_upstream: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    """The fake, reset, with OpenAI and Anthropic pointed at it."""
    fake_upstream.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_upstream.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_upstream.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("EMBER_MODEL_RETRY_BASE", "0.001")
    monkeypatch.setenv("EMBER_MODEL_TIMEOUT", "10")
    monkeypatch.delenv("EMBER_OFFLINE_TOKEN_DELAY", raising=False)
    yield fake_upstream
    fake_upstream.reset()


@pytest.fixture
def registry(fake: FakeProvider) -> Iterator[ModelRegistry]:
    """A registry of its own, so that providers read the environment set above."""
    reg = ModelRegistry()
    yield reg
    reg.close()
