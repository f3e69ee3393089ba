"""Listening sockets: IPv4/IPv6, SO_REUSEPORT per worker, TLS contexts."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from ember.server.config import ServerConfig

if TYPE_CHECKING:  # pragma: no cover
    import ssl


class BindError(OSError):
    """The address cannot be listened on; ``str()`` is one line saying how to fix it."""


def has_reuseport() -> bool:
    """Whether the kernel balances connections over sockets sharing a port."""
    return hasattr(socket, "SO_REUSEPORT")


def _where(config: ServerConfig, port: int) -> str:
    return f"[{config.host}]:{port}" if ":" in config.host else f"{config.host}:{port}"


def _bind_error(config: ServerConfig, port: int, exc: OSError) -> BindError:
    where = _where(config, port)
    if exc.errno == errno.EADDRINUSE:
        text = (f"cannot listen on {where}: address already in use (another server holds "
                f"it); pick another port with --port N (ember run) or app.run(port=N)")
    elif exc.errno == errno.EACCES:
        text = (f"cannot listen on {where}: permission denied (ports below 1024 need "
                f"privileges); pick another port with --port N or app.run(port=N)")
    else:
        text = (f"cannot listen on {where}: {exc.strerror or exc}; check --host/--port "
                f"(app.run(host=..., port=...))")
    return BindError(exc.errno, text)


def bind(config: ServerConfig, port: int | None = None, reuse_port: bool = False,
         listen: bool = True) -> socket.socket:
    """A bound, listening, non-blocking socket for ``config.host``.

    Raises :class:`BindError` (an ``OSError``) naming host:port and how to pick another.
    """
    port = config.port if port is None else port
    sock = socket.socket(config.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if config.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((config.host, port))
        if listen:
            sock.listen(config.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(config, port, exc) from None
    return sock


def reserve_port(config: ServerConfig) -> int:
    """Check that the port is free for the workers' ``SO_REUSEPORT`` sockets; return it.

    NOTE: the probe binds *without* SO_REUSEPORT (and listens, so Linux's SO_REUSEADDR
    cannot share it), so a port held by anything, another Ember's SO_REUSEPORT workers
    included, fails here with a :class:`BindError` instead of silently splitting traffic.
    ``port=0`` resolves to one free port that all workers then share.
    """
    probe = bind(config)
    try:
        return probe.getsockname()[1]
    finally:
        probe.close()


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from the cert/key files (ALPN: http/1.1)."""
    if not config.ssl_certfile:
        return None
    import ssl  # NOTE: lazy: `ember --help` and `ember routes` need no OpenSSL

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return ctx
