"""The process model: one in-process worker, or a supervisor forking N workers."""

from ember.server.config import ServerConfig
from ember.server.run import no_serve, serve

__all__ = ["ServerConfig", "no_serve", "serve"]
