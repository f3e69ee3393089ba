"""Blueprints: route groups registered on an app under per-method prefixes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember.exceptions import ConfigError
from ember.routes import Handler, RouteDecorators


def check_prefixes(prefixes: Mapping[str, str] | str | None) -> dict[str, str]:
    """``{"*": "/admin", "POST": "/write"}`` checked; a plain string means ``{"*": s}``."""
    if prefixes is None:
        return {}
    if isinstance(prefixes, str):
        prefixes = {"*": prefixes}
    if not isinstance(prefixes, Mapping):
        raise ConfigError(f"prefixes must be a mapping such as {{'*': '/admin'}}, got {prefixes!r}")
    out: dict[str, str] = {}
    for method, prefix in prefixes.items():
        if not isinstance(method, str) or not isinstance(prefix, str):
            raise ConfigError(f"prefixes maps method names to path prefixes, got {method!r}: "
                              f"{prefix!r}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ConfigError(f"prefix {prefix!r} must start with '/' and not end with '/'")
        out[method.upper() if method != "*" else "*"] = prefix
    return out


def prefix_for(prefixes: dict[str, str], method: str) -> str:
    """The prefix that applies to ``method``."""
    return prefixes.get(method, prefixes.get("*", ""))


class Blueprint(RouteDecorators):
    """A group of routes (and middleware) added to an app with ``app.add_blueprint``."""

    def __init__(self, name: str | None = None, *, url_prefix: str = "") -> None:
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"Blueprint name must be a str or None, got {name!r}")
        if isinstance(name, str) and name.startswith("/"):
            raise ConfigError(f"Blueprint({name!r}): the first argument is a name; for a path "
                              f"prefix write Blueprint(url_prefix={name!r}) or "
                              f"app.add_blueprint(bp, prefixes={{'*': {name!r}}})")
        if url_prefix and (not url_prefix.startswith("/") or url_prefix.endswith("/")):
            raise ConfigError(f"url_prefix {url_prefix!r} must start with '/' and not end "
                              "with '/'")
        self.name = name
        self.url_prefix = url_prefix
        #: (path, methods, endpoint, options) in registration order
        self.registrations: list[tuple[str, tuple[str, ...], Handler, dict[str, Any]]] = []
        self.middleware: list[Any] = []

    def _register(self, path: str, methods: tuple[str, ...], endpoint: Handler,
                  **options: Any) -> None:
        self.registrations.append((self.url_prefix + path, methods, endpoint, options))

    def add_middleware(self, middleware: Any) -> None:
        """Middleware that runs for this blueprint's routes only (inside the app's)."""
        if not callable(middleware):
            raise ConfigError(f"middleware must be callable, got {middleware!r}")
        self.middleware.append(middleware)

    def add_blueprint(self, blueprint: Blueprint,
                      prefixes: Mapping[str, str] | str | None = None) -> None:
        """Nest ``blueprint`` under this one; its middleware runs inside ours."""
        table = check_prefixes(prefixes)
        for path, methods, endpoint, options in blueprint.expand():
            for method in methods:
                opts = dict(options)
                self.registrations.append((prefix_for(table, method) + path, (method,),
                                           endpoint, opts))

    def expand(self) -> list[tuple[str, tuple[str, ...], Handler, dict[str, Any]]]:
        """Registrations with this blueprint's middleware attached (outermost first)."""
        out = []
        for path, methods, endpoint, options in self.registrations:
            opts = dict(options)
            opts["middleware"] = tuple(self.middleware) + tuple(opts.get("middleware", ()))
            if self.name and opts.get("name") is None:
                opts["name"] = f"{self.name}.{endpoint.__name__}"
            out.append((path, methods, endpoint, opts))
        return out
