"""Run options, validated up front so a typo fails before any socket is bound."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from ember.exceptions import ConfigError
from ember.limits import ServerLimits

#: the most worker processes: 8 per CPU, at least 64, at most 512 (the supervisor's
#: select() watches one pipe per worker); beyond this a typo forks the machine into swap
MAX_WORKERS = 64
MAX_WORKERS_CAP = 512
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass
class ServerConfig:
    """Everything ``app.run`` / ``ember run`` accept besides the app itself."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    http2: bool = False
    #: HTTP/3 over QUIC on the same port number over UDP (ember.server.quic; needs TLS and
    #: the ``http3`` extra); ``http3_retry`` validates client addresses with Retry tokens
    http3: bool = False
    http3_retry: bool = False
    access_log: bool = False
    log_level: str = "info"
    limits: ServerLimits = field(default_factory=ServerLimits)
    backlog: int = 2048
    #: serve in a child process restarted on source changes (ember.server.reload)
    reload: bool = False
    #: called with the bound (host, port) once listening (tests, port 0)
    on_listen: object = None
    #: the event loop: "auto" | "uvloop" | "rloop" | "asyncio" (ember.server.loops);
    #: resolved here to the concrete loop, so a typo or a missing package fails early
    loop: str = "auto"
    #: the seed's io_uring buffer pool (count, bytes each): validated and kept, but no
    #: I/O layer of this build reads them (see docs/engine.md "Event loop"); None = unset
    io_uring_num_bufs: int | None = None
    io_uring_buf_size: int | None = None
    #: after startup, ``gc.collect()`` + ``gc.freeze()`` in a serving process (run_worker):
    #: the collector's full passes then skip the app's long-lived objects (docs/engine.md)
    gc_freeze: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"host must be a non-empty string, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not (
            0 <= self.port <= 65535
        ):
            raise ConfigError(f"port must be an integer 0-65535, got {self.port!r}")
        cpus = os.cpu_count() or 1
        most = min(max(MAX_WORKERS, 8 * cpus), MAX_WORKERS_CAP)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or not 0 <= self.workers <= most:
            # NOTE: an upper bound too: workers=100000 would fork until the machine swaps.
            raise ConfigError(f"workers must be an integer from 0 to {most} (0 = one per CPU; "
                              f"this machine has {cpus}), got {self.workers!r}")
        if self.workers == 0:
            self.workers = os.cpu_count() or 1
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ConfigError("TLS needs both ssl_certfile and ssl_keyfile")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"TLS file not found: {path!r}")
        if not isinstance(self.log_level, str) or self.log_level.lower() not in _LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, got "
                              f"{self.log_level!r}")
        self.log_level = self.log_level.lower()
        if not isinstance(self.reload, bool):
            raise ConfigError(f"reload must be True or False, got {self.reload!r}")
        if not isinstance(self.gc_freeze, bool):
            raise ConfigError(f"gc_freeze must be True or False, got {self.gc_freeze!r}")
        if not isinstance(self.limits, ServerLimits):
            raise ConfigError(f"limits must be a ServerLimits, got {self.limits!r}")
        for name in ("io_uring_num_bufs", "io_uring_buf_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ConfigError(f"{name} must be a positive integer (or None), got {value!r}")
        for name in ("http3", "http3_retry"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.http3:
            _check_http3(self)
        from ember.server.loops import resolve_loop

        self.loop = resolve_loop(self.loop, tls=self.ssl_certfile is not None)
        if self.http2 and os.environ.get("EMBER_HTTP2_CODEC", "").strip().lower() == "h2":
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigError("EMBER_HTTP2_CODEC=h2 needs the h2 package: pip install "
                                  "'ember-api[http2]'") from None

    @property
    def family(self) -> socket.AddressFamily:
        """IPv6 for addresses with a colon (``::``, ``::1``), IPv4 otherwise."""
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def scheme(self) -> str:
        """``https`` when TLS is configured."""
        return "https" if self.ssl_certfile else "http"

    def apply_log_level(self) -> None:
        """Configure the ``ember`` loggers (only when the app did not)."""
        level = logging.DEBUG if self.log_level == "trace" else getattr(
            logging, self.log_level.upper())
        root = logging.getLogger("ember")
        if not root.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
            root.addHandler(handler)
        root.setLevel(level)
        if self.access_log:
            logging.getLogger("ember.access").setLevel(logging.INFO)


def _check_http3(config: ServerConfig) -> None:
    """Raise :class:`ConfigError` saying what to fix when HTTP/3 cannot be served."""
    if not config.ssl_certfile or not config.ssl_keyfile:
        raise ConfigError("http3=True needs ssl_certfile and ssl_keyfile: QUIC is always "
                          "encrypted (TLS 1.3); pass both (ember run --http3 "
                          "--ssl-certfile cert.pem --ssl-keyfile key.pem)")
    if config.loop == "rloop":
        raise ConfigError("http3=True needs UDP endpoints, which rloop lacks; use "
                          "loop='uvloop' or 'asyncio'")
    try:
        import aioquic  # noqa: F401
    except ImportError:
        raise ConfigError("http3=True needs the aioquic package: pip install "
                          "'ember-api[http3]'") from None
