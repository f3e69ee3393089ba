"""Checks of :class:`ember.Ember`'s constructor arguments, so a wrong one fails at once.

A wrong type raises :class:`AppArgumentError` (a ``TypeError`` and a
:class:`~ember.exceptions.ConfigError`); the message names the argument and what it
accepts. Without these checks ``Ember(title=5)`` built an OpenAPI document that no
tool accepts, and ``Ember(debug="false")`` turned debug mode *on*.
"""

from __future__ import annotations

from typing import Any

from ember.exceptions import ConfigError


class AppArgumentError(ConfigError, TypeError):
    """An :class:`ember.Ember` argument of the wrong type."""


def _name(value: Any) -> str:
    return type(value).__name__


def _check_str(arg: str, value: Any) -> None:
    if not isinstance(value, str):
        raise AppArgumentError(f"Ember({arg}=...) must be a str, got {_name(value)} {value!r}")


def _check_url(arg: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise AppArgumentError(
            f"Ember({arg}=...) must be a path starting with '/' or None, "
            f"got {_name(value)} {value!r}"
        )
    if not value.startswith("/"):
        raise ConfigError(f"Ember({arg}={value!r}) must start with '/', e.g. '/{value}'")


def check_app_args(
    *,
    debug: Any,
    title: Any,
    version: Any,
    lifespan: Any,
    middleware: Any,
    openapi_url: Any,
    docs_url: Any,
) -> None:
    """Raise when one of these :class:`ember.Ember` arguments has the wrong type or form."""
    if not isinstance(debug, bool):
        raise AppArgumentError(
            f"Ember(debug=...) must be True or False, got {_name(debug)} {debug!r}"
        )
    _check_str("title", title)
    _check_str("version", version)
    if lifespan is not None and not callable(lifespan):
        raise AppArgumentError(
            "Ember(lifespan=...) must be a callable taking the app and returning an async "
            f"context manager (e.g. an @asynccontextmanager function), got {_name(lifespan)}"
        )
    if middleware is not None and not isinstance(middleware, (list, tuple)):
        raise AppArgumentError(
            f"Ember(middleware=...) must be a list of middleware, got {_name(middleware)}; "
            "wrap a single one in a list: middleware=[...]"
        )
    _check_url("openapi_url", openapi_url)
    _check_url("docs_url", docs_url)
