"""``@app.websocket`` routes: the opening handshake's checks and the route call.

:func:`handshake_error` (RFC 6455 §4.2.1) and :func:`origin_allowed` (§10.2) decide
before the upgrade; :func:`websocket_call` is the route wrapper registered through
:mod:`ember.features` (``route.websocket``): it runs the handler with its
:class:`~ember.websockets.WebSocket`, turns its errors into close codes, and hands the
connection the explicit upgrade result.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from ember.websockets._errors import InvalidMessage, WebSocketDisconnect
from ember.websockets._socket import WebSocket

logger = logging.getLogger("ember.websocket")


def handshake_error(request: Any) -> str | None:
    """Why an upgrade request is not a valid WebSocket opening handshake, or None."""
    headers = request.headers
    if request.http_minor == 0:  # RFC 9110 §7.8: Upgrade is ignored in HTTP/1.0
        return "WebSocket needs HTTP/1.1 (an HTTP/1.0 request cannot upgrade)"
    if request.method != "GET":
        return "WebSocket upgrades must use GET"
    if "websocket" not in headers.get("upgrade", "").lower():
        return "missing 'Upgrade: websocket'"
    if headers.get("sec-websocket-version", "") != "13":
        return "Sec-WebSocket-Version must be 13"
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes, base64-encoded"
    except ValueError:
        return "Sec-WebSocket-Key is not valid base64"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(authority: str, scheme: str) -> tuple[str, int] | None:
    """``("example.com", 443)`` for ``example.com`` under https; None when malformed."""
    authority = authority.strip().lower()
    if not authority or "@" in authority or "/" in authority:
        return None
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if port_text:
        if not port_text.isdigit():
            return None
        return host, int(port_text)
    default = _DEFAULT_PORTS.get(scheme)
    return (host, default) if default is not None else None


def origin_allowed(request: Any, allowed: Any) -> bool:
    """Whether the handshake's ``Origin`` may open this WebSocket (RFC 6455 §10.2).

    ``allowed`` is the route's ``allowed_origins``: ``["*"]`` allows any origin, a list
    allows those origins (``scheme://host[:port]``) and the app's own; ``None`` (the
    default) allows the app's own origin (Origin's host and port equal ``Host``), the
    origins a ``CORSMiddleware`` on the app allows, and clients that send no Origin
    (non-browser clients; browsers always send one). Anything else — another site's
    page using the victim's cookies (cross-site WebSocket hijacking), ``Origin: null``
    — is refused with 403 before the upgrade.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().lower()
    if allowed is not None and "*" in allowed:
        return True
    if allowed is not None and origin in allowed:
        return True
    scheme, sep, authority = origin.partition("://")
    if sep and scheme in _DEFAULT_PORTS:
        own = _host_port(request.headers.get("host", ""), request.scheme)
        theirs = _host_port(authority, scheme)
        if own is not None and own == theirs:
            return True
    if allowed is None:
        # NOTE: a middleware says which origins it lets in (CORSMiddleware.allows_origin),
        # asked by name: the wire layer does not import the middleware layer
        app = getattr(request, "app", None)
        for mw in getattr(app, "middleware", ()):
            allows = getattr(mw, "allows_origin", None)
            if callable(allows) and allows(origin) is True:
                return True
    return False


def websocket_call(route: Any, invoke: Any) -> Any:
    """The route call of ``@app.websocket``: handshake checks, run, close, clean up."""
    from ember.responses import JSONResponse, Response

    options = dict(route.websocket_options or {})
    allowed = options.pop("allowed_origins", None)
    if allowed is not None:
        allowed = frozenset(o.lower().rstrip("/") for o in allowed)

    async def call(request: Any) -> Any:
        problem = handshake_error(request)
        if problem is not None:
            if "Upgrade" in problem:
                return JSONResponse({"detail": f"this is a WebSocket endpoint: {problem}"}, 426,
                                    headers={"upgrade": "websocket", "connection": "Upgrade"})
            if "Version" in problem:  # RFC 6455 §4.4: say which version we speak
                return JSONResponse({"detail": problem}, 426,
                                    headers={"sec-websocket-version": "13"})
            return JSONResponse({"detail": problem}, 400)
        if not origin_allowed(request, allowed):
            return JSONResponse({"detail": "origin not allowed for this WebSocket endpoint"},
                                403)
        ws = WebSocket(request, **options)
        try:
            await invoke(request, ws)
        except WebSocketDisconnect:
            pass
        except InvalidMessage as exc:
            if ws.state == "connecting":
                raise
            logger.info("WebSocket %s: closing with %d: %s", request.path, exc.code, exc.reason)
            if ws.state == "open":
                ws._fail(exc.code, exc.reason)
        except Exception:
            if ws.state == "connecting":
                raise  # an ordinary HTTP error response
            logger.exception("error in WebSocket handler %s", request.path)
            if ws.state == "open":
                ws._fail(1011, "internal error")
        if ws.state == "connecting":
            return Response(None, 403)  # the handler declined the connection
        if ws.state == "open":
            await ws.close()
        if ws.upgraded is None:
            return Response(None, 403)  # NOTE: closed before accept(): declined
        return ws.upgraded  # NOTE: the 101 is logged; nothing more is written

    return call


__all__ = ["handshake_error", "origin_allowed", "websocket_call"]
