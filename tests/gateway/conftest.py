"""The local fake provider servers (tests/models) serve the gateway's upstream calls."""

import asyncio

from ember import Ember
from tests.models.conftest import fake, fake_server  # noqa: F401


def gateway_app() -> Ember:
    """An app for gateway tests."""
    app = Ember()

    # TEMP until engine fix: handlers must run inside an asyncio Task (httpx/sniffio need
    # one); yielding once makes the engine move the request into a Task.
    async def in_task(request, call_next):
        await asyncio.sleep(0)
        return await call_next(request)

    app.add_middleware(in_task)
    return app
