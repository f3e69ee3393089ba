"""The models suite's fake provider server (real wire formats) for traced model calls."""

from tests.models.conftest import fake, fake_server  # noqa: F401
