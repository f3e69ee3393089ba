"""HTTP/3's listener: one UDP socket per worker, with aioquic's QUIC server on it.

``app.run(http3=True, ssl_certfile=..., ssl_keyfile=...)`` (``ember run --http3``)
serves HTTP/3 on the same port *number* as HTTP/1.1 and HTTP/2, over UDP.  The TCP
side advertises it with ``Alt-Svc: h3=":PORT"; ma=86400`` (:func:`alt_svc`).

What is aioquic's and what is ours (docs/http3.md):

* aioquic: QUIC (RFC 9000/9001/9002), the anti-amplification limit before an
  address is validated (3x what was received), Retry tokens (``http3_retry=True``),
  version negotiation, connection ids, QPACK (RFC 9204) with its table limits.
* ours (:mod:`ember.http.h3`): the stream limit (``http2_max_concurrent_streams``
  serves both multiplexed transports), idle and handshake timeouts, request limits,
  and each request stream as a sink of the one exchange core.

With ``workers=N`` each worker binds its own UDP socket with ``SO_REUSEPORT``: Linux
hashes a datagram's 4-tuple (source and destination address and port) to one socket,
so a connection stays on one worker while the client's address and port stay the
same.  A client that migrates (new port after a NAT rebinding, Wi-Fi to mobile)
lands on another worker, which does not know the connection and drops its packets:
the client then opens a new connection.  Keeping migrated connections on their
worker needs routing by connection id (an eBPF ``SO_ATTACH_REUSEPORT_EBPF`` program,
or a QUIC-aware load balancer); this build does not ship one.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from functools import partial
from typing import Any

from ember.exceptions import ConfigError
from ember.server.config import ServerConfig
from ember.server.sockets import BindError

#: QUIC's transport idle timeout (seconds): a connection with no packet for this long
#: is gone.  While requests run the server pings (ember.http.h3), so this never cuts
#: a request in progress; between requests ``keep_alive_timeout`` closes it first.
IDLE_TIMEOUT = 30.0
#: initial receive windows (aioquic raises them as data arrives): per connection and
#: per stream
MAX_DATA = 1024 * 1024
MAX_STREAM_DATA = 256 * 1024
#: a peer needs 3 unidirectional streams (control, QPACK encoder and decoder)
MAX_UNI_STREAMS = 8


def alt_svc(port: int) -> bytes:
    """The ``Alt-Svc`` value advertising HTTP/3 on ``port`` (RFC 7838, one day)."""
    return b'h3=":%d"; ma=86400' % port


def bind_udp(config: ServerConfig, port: int, reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking UDP socket on ``config.host``:``port``.

    NOTE: no SO_REUSEADDR: on UDP it lets a second process bind the same port and
    silently take part of the traffic.  ``reuse_port`` (workers > 1) shares it with
    the other workers, which the kernel balances by 4-tuple.
    """
    sock = socket.socket(config.family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if config.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((config.host, port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"[{config.host}]:{port}" if ":" in config.host else f"{config.host}:{port}"
        reason = ("address already in use (another server holds the UDP port)"
                  if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
        raise BindError(exc.errno, f"cannot listen for HTTP/3 on UDP {where}: {reason}; "
                                   f"pick another port with --port N or app.run(port=N)"
                        ) from None
    return sock


def quic_configuration(config: ServerConfig) -> Any:
    """aioquic's server configuration from ours (certificate, ALPN h3, windows)."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    quic = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False,
                             idle_timeout=IDLE_TIMEOUT, max_data=MAX_DATA,
                             max_stream_data=MAX_STREAM_DATA)
    try:
        quic.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)  # type: ignore[arg-type]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"HTTP/3 cannot load ssl_certfile/ssl_keyfile: {exc}") from None
    return quic


class QuicListener:
    """The UDP endpoint of one worker; :meth:`close` stops it."""

    def __init__(self, transport: Any, server: Any) -> None:
        self.transport = transport
        self.server = server

    def close(self) -> None:
        """Close what is left (after the worker drained its connections) and the socket."""
        self.server.close()


async def start_quic(app: Any, state: Any, config: ServerConfig,
                     sock: socket.socket) -> QuicListener:
    """Serve HTTP/3 on the UDP socket ``sock`` (:func:`bind_udp`) with aioquic."""
    from aioquic.asyncio.server import QuicServer

    from ember.http.h3 import H3Protocol

    try:
        quic = quic_configuration(config)
    except BaseException:
        sock.close()
        raise
    create = partial(H3Protocol, app=app, state=state, limits=config.limits,
                     scheme="https")
    loop = asyncio.get_running_loop()
    try:
        transport, server = await loop.create_datagram_endpoint(
            lambda: QuicServer(configuration=quic, create_protocol=create,
                               retry=config.http3_retry), sock=sock)
    except BaseException:
        sock.close()
        raise
    return QuicListener(transport, server)
