"""Errors of the OpenAI-compatible gateway, always in OpenAI's shape.

``{"error": {"message", "type", "param", "code"}}`` with the request id in the message
and in ``x-request-id`` (the OpenAI SDK exposes it as ``exc.request_id``).  What an
upstream provider said — its body may echo the operator's key or internal host
names — never reaches the client: the client gets a generic message per error kind,
the log gets the details, redacted with :func:`ember._redact.redact`.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from typing import Any

import orjson

from ember._redact import redact
from ember.exceptions import ClientDisconnect
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.gateway")

#: error_type of a ProviderAPIError -> (HTTP status, OpenAI error type, generic message)
UPSTREAM: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "The upstream model provider is rate limiting "
                   "requests; retry after the delay in Retry-After."),
    "authentication": (502, "upstream_error", "The gateway could not authenticate with the "
                       "upstream model provider."),
    "timeout": (504, "timeout_error", "The upstream model provider did not answer in time."),
    "server": (502, "upstream_error", "The upstream model provider failed to answer."),
    "bad_request": (400, "invalid_request_error", "The upstream model provider rejected the "
                    "request."),
    "connection": (502, "upstream_error", "The gateway could not reach the upstream model "
                   "provider."),
}


#: ``context["code"]`` of a ProviderAPIError (OpenAI's error codes) -> (status, type, message)
CODES: dict[str, tuple[int, str, str]] = {
    "context_length_exceeded": (400, "invalid_request_error", "The request is longer than the "
                                "model's context window; shorten the messages or max_tokens."),
    "content_filter": (400, "invalid_request_error", "The upstream model provider refused the "
                       "request under its content policy."),
    "content_policy_violation": (400, "invalid_request_error", "The upstream model provider "
                                 "refused the request under its content policy."),
    "rate_limit_exceeded": (429, "rate_limit_error", "The upstream model provider is rate "
                            "limiting requests; retry after the delay in Retry-After."),
    "insufficient_quota": (429, "insufficient_quota", "The upstream model provider's quota for "
                           "this gateway is exhausted."),
    "server_error": (502, "upstream_error", "The upstream model provider failed to answer."),
    "overloaded": (503, "server_error", "The upstream model provider is overloaded; retry "
                   "after the delay in Retry-After."),
    "invalid_api_key": (502, "upstream_error", "The gateway could not authenticate with the "
                        "upstream model provider."),
    "model_not_found": (502, "upstream_error", "The upstream model provider does not serve the "
                        "configured model."),
    # NOTE: the provider's own kinds of failure, as the gateway answers them (each client
    # sees OpenAI's status and type, and the provider's kind as code; docs/openai.md)
    "permission_denied": (502, "upstream_error", "The upstream model provider refused the "
                          "gateway access to the configured model."),
    "unsupported_country_region": (502, "upstream_error", "The upstream model provider does "
                                   "not serve the gateway's region."),
    "request_too_large": (413, "invalid_request_error", "The request is larger than the "
                          "upstream model provider accepts."),
    "timeout": (504, "timeout_error", "The upstream model provider did not answer in time."),
}
OVERLOADED = CODES["overloaded"]


def _overloaded(context: dict[str, Any]) -> bool:
    return context.get("status_code") in (503, 529) or context.get(
        "provider_error_type") == "overloaded_error"


def retry_headers(after: Any) -> dict[str, str]:
    """``Retry-After`` (whole seconds, rounded up: never shorter than the upstream's) and
    ``retry-after-ms`` (the OpenAI SDK prefers it) for a delay in seconds."""
    try:
        seconds = float(after)
    except (TypeError, ValueError):
        seconds = 1.0
    if not math.isfinite(seconds) or seconds <= 0:
        seconds = 1.0
    seconds = min(seconds, 86400.0)
    return {"retry-after": str(max(1, math.ceil(seconds))),
            "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


_UNSET = object()
_ids = itertools.count()
_prefix: list[str] = [os.urandom(6).hex()]


def _new_prefix() -> None:
    _prefix[0] = os.urandom(6).hex()


os.register_at_fork(after_in_child=_new_prefix)  # NOTE: a fresh prefix in each forked worker


def new_id() -> str:
    """A process-unique 24-hex-digit id: a random per-process prefix and a counter.

    PERF: uuid4() per id (two per request) cost ~10% of the gateway's CPU here; a getpid()
    per id to notice a fork cost ~2% (the prefix is renewed at fork instead).
    """
    return f"{_prefix[0]}{next(_ids) & 0xFFFFFFFFFFFF:012x}"


def request_id(request: Any) -> str:
    """The request's id: RequestIDMiddleware's, else a new ``req_...``."""
    # PERF: ``request.state`` makes a State per request; ``_state`` is None until a
    # middleware (RequestIDMiddleware) wrote to it
    state = getattr(request, "_state", _UNSET)
    if state is None:
        return f"req_{new_id()}"
    if state is _UNSET:
        state = getattr(request, "state", None)
    rid = getattr(state, "request_id", None) if state is not None else None
    return str(rid) if rid else f"req_{new_id()}"


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error(status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None, rid: str | None = None) -> Response:
    """An error response in OpenAI's shape (with ``x-request-id`` when ``rid`` is given)."""
    if rid:
        message = f"{message} (request id: {rid})"
        headers = {**(headers or {}), "x-request-id": rid}
    return JSONResponse(error_body(message, type_, code, param), status, headers=headers)


def classify(exc: BaseException, rid: str, secrets: list[str]) -> tuple[
        int, dict[str, Any], dict[str, str]]:
    """``(status, OpenAI error body, headers)`` for an exception from a model call.

    Logs the details (redacted).  Messages of our own making (a parameter a provider
    cannot take, a missing provider key) are safe to show; upstream ones are not.
    """
    from ember.models.exceptions import ModelProviderError, ProviderAPIError

    context = getattr(exc, "context", None) or {}
    headers = {"x-request-id": rid}
    suffix = f" (request id: {rid})"
    if isinstance(exc, ProviderAPIError) and context.get("local"):
        return 400, error_body(exc.message + suffix, "invalid_request_error",
                               context.get("code") or "unsupported_parameter",
                               context.get("param")), headers
    if isinstance(exc, ProviderAPIError):
        kind = context.get("error_type", "server")
        status, type_, message = UPSTREAM.get(kind, UPSTREAM["server"])
        code: str = kind
        known = CODES.get(str(context.get("code") or ""))
        if known is not None:
            status, type_, message = known
            code = str(context["code"])
        elif _overloaded(context):
            status, type_, message = OVERLOADED
            code = "overloaded"
        logger.warning("gateway %s: upstream %s error from %s (model %s, status %s): %s", rid,
                       code, context.get("provider"), context.get("model"),
                       context.get("status_code"), redact(str(exc), secrets=secrets))
        if status in (429, 503):
            headers.update(retry_headers(context.get("retry_after")))
        if code == "insufficient_quota":
            headers["x-should-retry"] = "false"
        return status, error_body(message + suffix, type_, code), headers
    if isinstance(exc, ModelProviderError):
        env = context.get("env_vars")
        logger.error("gateway %s: model configuration: %s", rid,
                     redact(str(exc), secrets=secrets))
        if context.get("reason") == "missing_api_key" and env:
            message = f"The server's model configuration is incomplete: set {' or '.join(env)}."
        else:
            message = "The server's model configuration is incomplete; see the server log."
        headers["x-should-retry"] = "false"  # NOTE: permanent until the operator fixes it
        return 500, error_body(message + suffix, "server_error", "model_configuration"), headers
    logger.error("gateway %s: unexpected error: %s", rid,
                 redact(f"{type(exc).__name__}: {exc}", secrets=secrets))
    return 500, error_body("The server had an error while processing your request." + suffix,
                           "server_error", "internal_error"), headers


def error_response(exc: BaseException, rid: str, secrets: list[str]) -> Response:
    """:func:`classify` as a response (a client that left is re-raised: nobody to answer)."""
    if isinstance(exc, ClientDisconnect):
        raise exc
    status, body, headers = classify(exc, rid, secrets)
    return JSONResponse(body, status, headers=headers)


def error_frame(exc: BaseException, rid: str, secrets: list[str]) -> bytes:
    """:func:`classify` as an SSE ``data:`` frame (the OpenAI SDK raises APIError on it)."""
    _status, body, _headers = classify(exc, rid, secrets)
    return b"data: " + orjson.dumps(body) + b"\n\n"
