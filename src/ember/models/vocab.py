"""Every provider's words in OpenAI's vocabulary: finish reasons and error codes.

One table of finish/block reasons (:data:`FINISH_REASONS`, documented in
``docs/models.md``) and one classifier of provider errors (:func:`classify_error`) that
gives each :class:`~ember.models.exceptions.ProviderAPIError` the OpenAI ``code`` a
client acts on (``context_length_exceeded`` to trim and retry, ``rate_limit_exceeded``,
``insufficient_quota``, ``content_filter``, ``overloaded``, ``server_error``,
``invalid_api_key``, ...) and the provider's retry delay (``Retry-After``,
``retry-after-ms``, Google's ``RetryInfo``), never shortened.
"""

from __future__ import annotations

import re
from typing import Any

#: OpenAI's finish_reason vocabulary.
OPENAI_FINISH = ("stop", "length", "tool_calls", "content_filter", "function_call")

#: provider -> its finish / stop / block reason -> OpenAI's finish_reason (None: not final)
FINISH_REASONS: dict[str, dict[str, str | None]] = {
    "openai": {r: r for r in OPENAI_FINISH},
    "anthropic": {
        "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
        "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "stop",
        "model_context_window_exceeded": "length",
    },
    "google": {
        "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
        "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
        "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
        "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
        "IMAGE_RECITATION": "content_filter", "LANGUAGE": "content_filter",
        "OTHER": "stop", "MALFORMED_FUNCTION_CALL": "stop", "UNEXPECTED_TOOL_CALL": "stop",
        "TOO_MANY_TOOL_CALLS": "stop", "NO_IMAGE": "stop", "IMAGE_OTHER": "stop",
        "FINISH_REASON_UNSPECIFIED": None,
        # promptFeedback.blockReason (the prompt itself was blocked)
        "BLOCK_REASON_UNSPECIFIED": "content_filter",
    },
    # OpenAI-compatible servers (vLLM, Ollama, llama.cpp, TGI...)
    "compatible": {r: r for r in OPENAI_FINISH} | {
        "eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "max_tokens": "length",
        "model_length": "length", "abort": "stop", "tool_call": "tool_calls",
    },
}


def finish_reason(provider: str, raw: Any) -> str | None:
    """OpenAI's finish_reason for ``provider``'s ``raw`` reason (unknown words: ``stop``)."""
    if raw is None:
        return None
    table = FINISH_REASONS.get(provider) or FINISH_REASONS["compatible"]
    if raw in table:
        return table[raw]
    if provider == "google":
        return "content_filter"  # NOTE: new block reasons are blocks
    return "stop"


# -- errors ---------------------------------------------------------------------------------
_OVERFLOW = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens|"
    r"exceeds? the (?:maximum|max)(?: number of)? tokens|input token count.*exceeds|"
    r"maximum (?:input|prompt) length|input (?:length|is too long)|"
    r"exceed context limit|reduce the length", re.I)
_FILTER = re.compile(r"content[_ ]?(?:filter|policy|management)|safety system|"
                     r"responsible ?ai|flagged", re.I)
_QUOTA = re.compile(r"insufficient[_ ]quota|exceeded your current quota|billing|credit balance"
                    r"|payment required", re.I)

#: Anthropic error.type -> OpenAI code
ANTHROPIC_CODES = {
    "rate_limit_error": "rate_limit_exceeded", "overloaded_error": "overloaded",
    "api_error": "server_error", "authentication_error": "invalid_api_key",
    "permission_error": "permission_denied", "not_found_error": "model_not_found",
    "request_too_large": "request_too_large", "billing_error": "insufficient_quota",
    "timeout_error": "timeout",
}
#: Google error.status -> OpenAI code
GOOGLE_CODES = {
    "RESOURCE_EXHAUSTED": "rate_limit_exceeded", "UNAVAILABLE": "overloaded",
    "INTERNAL": "server_error", "UNAUTHENTICATED": "invalid_api_key",
    "PERMISSION_DENIED": "permission_denied", "NOT_FOUND": "model_not_found",
    "DEADLINE_EXCEEDED": "timeout", "FAILED_PRECONDITION": "unsupported_country_region",
}


def classify_error(provider: str, status: int | None, data: Any,
                   message: str | None) -> dict[str, Any]:
    """``{"code": ..., "error_type": ..., "retry_after": ...}`` (only the keys found) for a
    provider error body ``data`` (decoded JSON or None) and its ``message``."""
    out: dict[str, Any] = {}
    err = data.get("error") if isinstance(data, dict) else None
    err = err if isinstance(err, dict) else {}
    text = message or ""
    code: str | None = None
    if provider == "anthropic":
        code = ANTHROPIC_CODES.get(str(err.get("type")))
    elif provider == "google":
        code = GOOGLE_CODES.get(str(err.get("status")))
        details = err.get("details")
        for detail in details if isinstance(details, list) else ():
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("RetryInfo"):
                delay = _duration(detail.get("retryDelay"))
                if delay is not None:
                    out["retry_after"] = delay
            if detail.get("reason") in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
                code = "invalid_api_key"
                out["error_type"] = "authentication"
    else:
        raw = err.get("code")
        code = raw if isinstance(raw, str) and raw else None
        if code in ("content_policy_violation", "content_filter"):
            code = "content_filter"
    if _OVERFLOW.search(text) and (status in (None, 400, 413, 422) or code is None):
        code = "context_length_exceeded"
    elif code is None and _FILTER.search(text) and status == 400:
        code = "content_filter"
    elif code in (None, "rate_limit_exceeded") and _QUOTA.search(text):
        code = "insufficient_quota"
    if code is None and status is not None:
        code = _by_status(status)
    if code is not None:
        out["code"] = code
    return out


def _by_status(status: int) -> str | None:
    if status == 401:
        return "invalid_api_key"
    if status == 403:
        return "permission_denied"
    if status == 429:
        return "rate_limit_exceeded"
    if status in (503, 529):
        return "overloaded"
    if status >= 500:
        return "server_error"
    return None


def _duration(value: Any) -> float | None:
    """Seconds of a protobuf Duration in JSON (``"37s"``, ``"1.5s"``)."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return seconds if seconds >= 0 else None
    if isinstance(value, dict):  # {"seconds": 3, "nanos": 5e8}
        try:
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    return None
