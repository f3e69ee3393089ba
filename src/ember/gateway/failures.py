"""Typed refusals of the gateway's pipeline, turned into OpenAI-shaped errors once.

Each step of :class:`ember.gateway.service.Gateway` (authenticate, decode, resolve,
admit, reserve) raises a :class:`GatewayError` subclass instead of returning a
response; the route boundary (``Gateway._route``) catches it and answers with
:meth:`GatewayError.response`.  Anything else raised by a model call goes through
:func:`ember.gateway.errors.error_response` (upstream details never reach clients).
"""

from __future__ import annotations

from typing import Any

from ember.gateway.errors import openai_error
from ember.responses import Response


class GatewayError(Exception):
    """A refusal with its HTTP status and OpenAI error fields."""

    status = 400
    type_ = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def response(self, rid: str) -> Response:
        """The OpenAI error response (request id in the message and ``x-request-id``)."""
        return openai_error(self.status, self.message, self.type_, code=self.code,
                            param=self.param, headers=self.headers, rid=rid)


class BadRequest(GatewayError):
    """400: the body is not a valid request (``param`` names the field)."""


class Unauthorized(GatewayError):
    """401: no key, or a key the gateway does not know (or revoked, or expired)."""

    status = 401
    code = "invalid_api_key"

    def __init__(self, message: str = "Incorrect API key provided.") -> None:
        super().__init__(message, headers={"www-authenticate": 'Bearer realm="openai"'})


class Forbidden(GatewayError):
    """403: the key may not use this model (or the admin API)."""

    status = 403
    code = "model_not_allowed"


class ModelNotFound(GatewayError):
    """404: the public model name does not exist."""

    status = 404
    code = "model_not_found"


class QuotaExceeded(GatewayError):
    """429 ``insufficient_quota``: the request's worst-case cost does not fit the budget."""

    status = 429
    type_ = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, headers={"retry-after": _seconds(retry_after),
                                           "x-should-retry": "false"})


class RateLimited(GatewayError):
    """429 ``rate_limit_exceeded``: a per-key RPM/TPM/concurrency limit or a full queue."""

    status = 429
    type_ = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after: float,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={**(headers or {}),
                                           "retry-after": _seconds(retry_after)})


class Overloaded(GatewayError):
    """503: the gateway (or a store it needs) cannot take the request now."""

    status = 503
    type_ = "server_error"
    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"retry-after": _seconds(retry_after)})


def _seconds(value: Any) -> str:
    """``Retry-After`` in whole seconds, at least 1 (never shortened)."""
    seconds = float(value)
    whole = int(seconds)
    return str(max(1, whole + (1 if seconds > whole else 0)))
