"""The local fake provider server (real wire formats), ONE per test session.

Registered by tests/conftest.py (``pytest_plugins``) so the models, gateway and tracing
suites share it: a fixture re-imported into several conftests would start one server per
directory and point the provider environment at whichever started last.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ember.models import default_registry
from tests.models._fake import FakeProvider

ENV = {
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GOOGLE_API_KEY": "goog-test",
    "EMBER_MODEL_RETRY_BASE": "0.001",
    "EMBER_MODEL_MAX_RETRIES": "2",
    "EMBER_MODEL_TIMEOUT": "10",
}
CLEAR = ("GEMINI_API_KEY", "EMBER_MODEL_COSTS_JSON", "EMBER_OFFLINE_TOKEN_DELAY")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    server = FakeProvider()
    saved = {k: os.environ.get(k) for k in (*ENV, *CLEAR, "OPENAI_BASE_URL",
                                             "ANTHROPIC_BASE_URL", "GOOGLE_BASE_URL")}
    os.environ.update(ENV)
    for k in CLEAR:
        os.environ.pop(k, None)
    os.environ["OPENAI_BASE_URL"] = server.url + "/v1"
    os.environ["ANTHROPIC_BASE_URL"] = server.url
    os.environ["GOOGLE_BASE_URL"] = server.url
    yield server
    default_registry().close()
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def fake(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.reset()
    for k in [k for k in os.environ if k.startswith("EMBER_COST_")]:
        del os.environ[k]
    yield fake_server
    fake_server.reset()
    default_registry().close()
    default_registry().reset_usage()
