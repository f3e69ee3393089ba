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
    """``min_body_rate``: None, or (bytes per second > 0, grace seconds >= 0)."""
    if rate is None:
        return
    ok = isinstance(rate, (tuple, list)) and len(rate) == 2
    if ok:
        per_second, grace = rate
        ok = (isinstance(per_second, int) and not isinstance(per_second, bool)
              and per_second > 0
              and isinstance(grace, (int, float)) and not isinstance(grace, bool)
              and grace >= 0 and grace == grace and grace != float("inf"))
    if not ok:
        raise ConfigError(
            "ServerLimits.min_body_rate must be None or (bytes_per_second, grace_seconds) "
            f"with a positive integer rate and a finite grace >= 0, got {rate!r}"
        )


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
    ``shutdown_delay``: after SIGTERM, readiness (``app.add_health``) answers 503 at once
    and the worker keeps accepting for this many seconds before it closes its listeners
    and drains (0: close at once; a second SIGTERM skips the rest of the delay).
    ``min_body_rate``: ``(bytes_per_second, grace_seconds)``: once a request body has
    been arriving for ``grace_seconds``, a client that sent fewer than
    ``bytes_per_second`` on average gets 408 and the connection closes (beside
    ``body_timeout``, the longest gap between two reads); None turns it off.
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
    # NOTE: the lame-duck period: seconds a worker keeps accepting after SIGTERM (readiness
    # answers 503 at once) before it closes its listeners and drains (docs/deployment.md)
    shutdown_delay: float = 0
    # NOTE (issue 23): Kestrel's MinRequestBodyDataRate: (bytes per second, grace seconds)
    min_body_rate: tuple[int, float] | None = (240, 5.0)

    def __post_init__(self) -> None:
        delay = self.shutdown_delay
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                or not 0 <= delay <= 3600:
            raise ConfigError(f"ServerLimits.shutdown_delay must be a number of seconds in "
                              f"[0, 3600], got {delay!r}")
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
    """Model-token budgets for an AI route, per client key (SPEC §5).

    ``store``: a ``redis://`` URL to share ``tokens_per_minute`` between workers and
    hosts (default: per worker process).
    """

    tokens_per_minute: int | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    store: str | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "tokens_per_minute", "max_prompt_tokens", "max_completion_tokens")
        if self.store is not None and (not isinstance(self.store, str) or not self.store.startswith(
                ("redis://", "rediss://", "unix://"))):
            from ember._redact import redact_url

            raise ConfigError(f"TokenLimits.store must be a redis:// URL or None, got "
                              f"{redact_url(str(self.store))!r}")
