"""How features hook into the application without the app layer importing them.

The app layer (``ember.app``, ``ember.routes``) sits below the features built on it
(the OpenAI gateway, MCP, AI routes, health probes, static files, ASGI mounts, the
server, the test client): it must not import them (docs/engine.md, "Layers";
``tests/app/test_layering.py`` checks it). Two ways in, both used when an app is
built, never per request:

* **Entry points** (:data:`ENTRY_POINTS`): the app's convenience methods
  (``app.mount_openai``, ``app.add_mcp``, ``app.run``, ...) and the route options a
  feature implements (``ai_route``, ``websocket``) name the feature's function here;
  :func:`entry_point` imports it on first use. This table is the one sanctioned way
  up the layers, and the layering test checks that each entry exists.
* **Registered features**: ``app.add_feature(name, feature)`` keeps a feature object
  (the MCP server, the database) under a name, found again with
  ``app.features[name]``; a feature with an ``attach(app)`` method is attached then
  (it adds its routes, lifecycle hooks and exception handlers through the app's
  public methods).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: ``name -> "module:attribute"``. Route wrappers take ``(route, call)`` and return the
#: call that answers for the route; app methods get the app as first argument.
ENTRY_POINTS: dict[str, str] = {
    # route wrappers, applied in ROUTE_WRAPPERS order when a route is built
    "route.websocket": "ember.websockets:websocket_call",
    "route.ai": "ember.ai.routes:wrap_ai_route",
    # app methods
    "app.add_mcp": "ember.mcp:add_mcp",
    "app.mount_openai": "ember.gateway.openai:mount_openai",
    "app.add_health": "ember.health:add_health",
    "app.mount": "ember.asgi:mount",
    "app.mount_static": "ember.staticfiles:mount_static",
    "app.asgi": "ember.asgi_app:ASGIApp",
    "app.run.config": "ember.server.config:ServerConfig",
    "app.run": "ember.server.run:serve",
    "app.test_client": "ember.testing:TestClient",
}

#: Route flags with a wrapper, innermost first (``Route.websocket``, ``Route.ai``).
ROUTE_WRAPPERS: tuple[str, ...] = ("websocket", "ai")

_loaded: dict[str, Any] = {}


def entry_point(name: str) -> Any:
    """The object :data:`ENTRY_POINTS` names, imported on first use."""
    found = _loaded.get(name)
    if found is None:
        spec = ENTRY_POINTS.get(name)
        if spec is None:
            raise LookupError(f"no feature entry point {name!r}; known: {sorted(ENTRY_POINTS)}")
        module, _, attr = spec.partition(":")
        found = _loaded[name] = getattr(importlib.import_module(module), attr)
    return found


def wrap_route(route: Any, call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``call`` wrapped by the feature of each flag set on ``route`` (``ai``, ``websocket``)."""
    for flag in ROUTE_WRAPPERS:
        if getattr(route, flag):
            call = entry_point(f"route.{flag}")(route, call)
    return call
