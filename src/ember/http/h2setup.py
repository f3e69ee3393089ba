"""How an HTTP/2 connection starts besides prior knowledge and ALPN: the ``Upgrade: h2c``
request's settings, and the ``h2`` package's connection (``EMBER_HTTP2_CODEC=h2``)."""

from __future__ import annotations

import base64
import binascii
from typing import Any


def _h2_package_connection(limits: Any, window: int) -> tuple[Any, Any, type]:
    """The ``h2`` package's connection (``EMBER_HTTP2_CODEC=h2``): conn, events, error."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings

    class _ServerSettings(h2.settings.Settings):
        """Our local settings, as sent on the wire, without h2's own stream-count check.

        NOTE: h2 turns the (N+1)th concurrent stream into a connection error
        (``TooManyStreamsError``) that cancels every running stream.  RFC 9113 §5.1.2
        lets a server refuse just the extra stream with ``RST_STREAM(REFUSED_STREAM)``,
        which clients retry; :meth:`H2Protocol._request` does that.
        """

        @property
        def max_concurrent_streams(self) -> int:
            return 2**31 - 1

    config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                       validate_inbound_headers=True)
    conn = h2.connection.H2Connection(config=config)
    conn.local_settings = _ServerSettings(
        client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                limits.http2_max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
        })
    return conn, h2.events, h2.exceptions.ProtocolError


def h2c_settings(headers: Any, scheme: str) -> bytes | None:
    """The ``HTTP2-Settings`` payload of a valid ``Upgrade: h2c`` request, or None.

    None — serve the request as HTTP/1.1 and ignore the upgrade — when the request
    came over TLS (h2c is cleartext only: RFC 9113 §3.1; an upgrade honoured over TLS
    is how h2c smuggling gets past proxies), when there is not exactly one
    ``HTTP2-Settings`` field (RFC 7540 §3.2.1), or when its value is not base64url
    (token68, padding optional) of a whole number of 6-byte settings.
    """
    if scheme != "http":
        return None
    values = headers.getall("http2-settings", [])
    if len(values) != 1:
        return None
    value = values[0].strip()
    if not value or any(c not in _BASE64URL for c in value.rstrip("=")):
        return None
    try:
        payload = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:
        return None
    return value.encode("ascii")


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
