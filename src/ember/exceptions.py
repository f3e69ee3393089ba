"""Web-side errors.

    Exception
     └── EmberError
          ├── HTTPException           answer with ``status_code`` and ``detail``
          │    └── RequestValidationError   422 with a list of field errors
          ├── ClientDisconnect        the peer went away while we were reading
          ├── ConfigError (ValueError)      a bad setting; the message says what to fix
          └── MissingDependency (ImportError) an optional extra is not installed

The model side has its own root, :class:`ember.models.exceptions.ModelError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember.status import reason_phrase


class EmberError(Exception):
    """Root of Ember's web-side errors."""


class HTTPException(EmberError):
    """Raise in a handler or middleware to answer ``status_code`` with ``detail``."""

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(status_code, bool) or not isinstance(status_code, int) or \
                not 100 <= status_code <= 599:
            raise ValueError(f"HTTPException: invalid HTTP status code {status_code!r} "
                             "(must be an int in 100-599)")
        if detail is None:
            detail = reason_phrase(status_code)
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class RequestValidationError(HTTPException):
    """Path, query or body data that does not fit the handler's signature (422)."""

    #: FastAPI's attribute (the body that failed); the input is in each error's ``input``
    body: Any = None

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(422, errors)
        self.errors = _Errors(errors)


class _Errors(list):  # type: ignore[type-arg]
    """The error list, also callable as in FastAPI: ``exc.errors()`` and ``exc.errors``."""

    def __call__(self) -> list[dict[str, Any]]:
        return list(self)


class ClientDisconnect(EmberError):
    """The client closed the connection before the request body was read."""


class ConfigError(EmberError, ValueError):
    """An invalid configuration value; the message names the setting and the fix."""


class MissingDependency(EmberError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package: pip install \"ember-api[{extra}]\""
        )
        self.package = package
        self.extra = extra


def require(module: str, extra: str, feature: str) -> Any:
    """Import an optional module or raise :class:`MissingDependency` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module.split(".")[0], extra, feature) from exc
