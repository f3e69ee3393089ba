"""The process model: one in-process worker, or a supervisor forking N workers.

The names load on first use (PEP 562), so ``import ember.server.reload`` (the CLI) does
not import the sockets layer and OpenSSL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports

__all__ = ["ServerConfig", "no_serve", "serve"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ServerConfig": "ember.server.config",
    "no_serve": "ember.server.run",
    "serve": "ember.server.run",
}, globals())

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ember.server.config import ServerConfig
    from ember.server.run import no_serve, serve
