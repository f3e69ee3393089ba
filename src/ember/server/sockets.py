"""Listening sockets: IPv4/IPv6, SO_REUSEPORT per worker, TLS contexts."""

from __future__ import annotations

import socket
import ssl

from ember.server.config import ServerConfig


def has_reuseport() -> bool:
    """Whether the kernel balances connections over sockets sharing a port."""
    return hasattr(socket, "SO_REUSEPORT")


def bind(config: ServerConfig, port: int | None = None, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking socket for ``config.host``."""
    sock = socket.socket(config.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if config.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((config.host, config.port if port is None else port))
        sock.listen(config.backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {config.host}:{config.port}: "
                      f"{exc.strerror}") from None
    return sock


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A server TLS context from the cert/key files (ALPN: http/1.1)."""
    if not config.ssl_certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    ctx.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return ctx
