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


def _check_rate(rate: Any) -> None:
    if rate is None:
        return
    ok = isinstance(rate, tuple) and len(rate) == 2 and all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0 for v in rate)
    if not ok or not isinstance(rate[0], int):
        raise ConfigError("ServerLimits.min_body_rate must be None or (bytes_per_second: "
                          f"positive int, grace_seconds: positive number), got {rate!r}")


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits and timeouts (seconds, bytes).

    ``send_timeout``: how long a response may wait for an HTTP/2 peer to open its
    flow-control window, or for a WebSocket peer to drain what was sent, before the
    stream is reset / the WebSocket closed (1008). ``http2_max_concurrent_streams``:
    advertised as ``SETTINGS_MAX_CONCURRENT_STREAMS`` and enforced by refusing each
    extra stream with ``RST_STREAM(REFUSED_STREAM)`` (RFC 9113 §5.1.2).
    ``http2_reset_burst``/``http2_reset_rate``: a token bucket of streams a client may
    reset (or get refused) — a burst, then so many per second; past it the connection
    gets ``GOAWAY(ENHANCE_YOUR_CALM)`` (Rapid Reset, CVE-2023-44487).
    ``max_pending_control_frames``: control replies (PING/SETTINGS ACKs, RST_STREAM)
    queued while the peer does not read; past it the connection is closed.
    """

    keep_alive_timeout: float = 5
    header_timeout: float = 10
    body_timeout: float | None = 60
    max_header_size: int = 16384
    max_headers: int = 100
    max_url_size: int = 8192
    max_body_size: int | None = 1_048_576
    request_timeout: float | None = None
    max_connections: int | None = None
    graceful_timeout: float = 30
    # NOTE: HTTP/2 and WebSocket abuse bounds (docs/http2.md, docs/websocket.md); the
    # defaults follow nghttp2 1.57+ (CVE-2023-44487) and netty/Go (CVE-2019-9512/9514/9515).
    send_timeout: float | None = 60
    http2_max_concurrent_streams: int = 100
    http2_reset_burst: int = 1000
    http2_reset_rate: float = 33
    max_pending_control_frames: int = 1000
    # NOTE: (bytes per second, grace seconds): a request body slower than this on average
    # after the grace period gets 408 (Kestrel's MinRequestBodyDataRate; issue #23).
    min_body_rate: tuple[int, float] | None = (240, 5.0)

    def __post_init__(self) -> None:
        _check_positive(self, "keep_alive_timeout", "header_timeout", "max_header_size",
                        "max_headers", "max_url_size", "graceful_timeout",
                        "http2_max_concurrent_streams", "http2_reset_burst", "http2_reset_rate",
                        "max_pending_control_frames", allow_none=False)
        _check_positive(self, "send_timeout", "body_timeout")
        for name in ("http2_max_concurrent_streams", "http2_reset_burst",
                     "max_pending_control_frames"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"ServerLimits.{name} must be an integer, "
                                  f"got {getattr(self, name)!r}")
        _check_positive(self, "max_body_size", "request_timeout", "max_connections")
        _check_rate(self.min_body_rate)
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
