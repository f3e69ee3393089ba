"""Server, route and token limits, each with a safe default (SPEC §2, §5)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ember.exceptions import ConfigError


def _check_positive(owner: object, *names: str, allow_none: bool = True) -> None:
    for name in names:
        value: Any = getattr(owner, name)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(
                f"{type(owner).__name__}.{name} must be a positive number"
                f"{' or None' if allow_none else ''}, got {value!r}"
            )


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits and timeouts (seconds, bytes)."""

    keep_alive_timeout: float = 5
    header_timeout: float = 10
    max_header_size: int = 16384
    max_headers: int = 100
    max_url_size: int = 8192
    max_body_size: int | None = 1_048_576
    request_timeout: float | None = None
    body_timeout: float | None = 60
    max_connections: int | None = None
    graceful_timeout: float = 30

    def __post_init__(self) -> None:
        _check_positive(self, "keep_alive_timeout", "header_timeout", "max_header_size",
                        "max_headers", "max_url_size", "graceful_timeout", allow_none=False)
        _check_positive(self, "max_body_size", "request_timeout", "body_timeout",
                        "max_connections")
        for name in ("max_header_size", "max_headers", "max_url_size", "max_body_size",
                     "max_connections"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"ServerLimits.{name} must be an integer, got {value!r}")

    def replace(self, **changes: Any) -> ServerLimits:
        """A copy with some fields changed; unknown names are a ConfigError."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown ServerLimits field(s): {', '.join(sorted(unknown))}")
        return ServerLimits(**{**{f: getattr(self, f) for f in known}, **changes})


@dataclass(frozen=True)
class RouteLimits:
    """Per-route overrides: body size (bytes) and handler timeout (seconds)."""

    max_body_size: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "max_body_size", "timeout")


@dataclass(frozen=True)
class TokenLimits:
    """Model-token budgets for an AI route, per client key (SPEC §5)."""

    tokens_per_minute: int | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "tokens_per_minute", "max_prompt_tokens", "max_completion_tokens")
