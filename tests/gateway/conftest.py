"""The local fake provider servers (tests/models) serve the gateway's upstream calls."""

from ember import Ember
from tests.db.conftest import db  # noqa: F401  (a fresh PostgreSQL database)


def gateway_app() -> Ember:
    """An app for gateway tests."""
    # NOTE: no middleware that yields first: the upstream call (httpx/aiohttp, which need
    # a current Task) is the handler's first await, as in users' apps.
    return Ember()
