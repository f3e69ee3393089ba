"""Fixtures of the models suite; ``fake_server``/``fake`` live in tests/_fakes.py (one per
session for every directory that uses them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ember.models import ModelRegistry
from tests.models._fake import FakeProvider


@pytest.fixture
def registry(fake: FakeProvider) -> Iterator[ModelRegistry]:
    reg = ModelRegistry()
    yield reg
    reg.close()
