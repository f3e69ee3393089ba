"""Model-side errors.

    Exception
     └── ModelError                  root of everything the model system raises
          ├── ModelProviderError     configuration: missing API key, unknown model or
          │    │                     provider, malformed cost override
          │    └── ProviderDependencyMissing   the HTTP client package is not installed
          │                          (also an ImportError / MissingDependency)
          └── ProviderAPIError       the provider call failed at run time;
                                     ``context["error_type"]`` is one of
                                     rate_limit | authentication | timeout |
                                     server | bad_request | connection

Both carry a ``context`` dict (``provider``, ``model``, ``status_code``,
``error_type``, ``provider_message``...). Layers above (registry, router,
gateway) re-raise these objects unchanged so the type is never lost.
"""

from __future__ import annotations

from typing import Any

from ember.exceptions import MissingDependency

ERROR_TYPES = frozenset(
    {"rate_limit", "authentication", "timeout", "server", "bad_request", "connection"}
)
#: Error types worth another attempt (with backoff).
RETRYABLE = frozenset({"rate_limit", "timeout", "server", "connection"})


class ModelError(Exception):
    """Root of the model system's errors; ``context`` holds structured details."""

    def __init__(self, message: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = dict(context or {})


class ModelProviderError(ModelError):
    """A configuration problem: the call cannot be made as configured."""


class ProviderDependencyMissing(ModelProviderError, MissingDependency):
    """A provider's HTTP client package is missing: configuration, so a ModelProviderError
    (``except ModelProviderError`` catches it, as the seed's error handling expects) and an
    ImportError naming the pip extra."""

    def __init__(self, package: str, extra: str) -> None:
        message = (f"the model providers need the '{package}' package: "
                   f"pip install \"ember-api[{extra}]\"")
        Exception.__init__(self, message)  # NOTE: past both parents' own __init__
        self.message = message
        self.context = {"reason": "missing_dependency", "package": package, "extra": extra}
        self.package = package
        self.extra = extra


class ProviderAPIError(ModelError):
    """A provider call failed; ``context["error_type"]`` says how."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        status_code: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        provider_message: str | None = None,
        retry_after: float | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        if error_type not in ERROR_TYPES:
            raise ValueError(f"unknown error_type {error_type!r}")
        ctx = dict(context or {})
        ctx.update(
            error_type=error_type,
            status_code=status_code,
            provider=provider,
            model=model,
            provider_message=provider_message,
            retry_after=retry_after,
        )
        super().__init__(message, context=ctx)

    @property
    def error_type(self) -> str:
        """One of ``rate_limit | authentication | timeout | server | bad_request | connection``."""
        return str(self.context["error_type"])

    @property
    def status_code(self) -> int | None:
        """The HTTP status the provider answered with, if any."""
        return self.context.get("status_code")

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (rate limits, timeouts, 5xx, network)."""
        return self.context["error_type"] in RETRYABLE


def error_type_for_status(status: int) -> str:
    """Map an HTTP status to an ``error_type``."""
    if status in (401, 403):
        return "authentication"
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "bad_request"
