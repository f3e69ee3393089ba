"""Redaction of secrets before they reach a log line or an error message.

One helper for every place that logs or raises with a URL, key or token in
hand: caches, rate limits, sessions, context stores, providers, the gateway.

* :func:`redact_url` hides the password (and a token-like user name) in a URL's
  userinfo and the values of secret-looking query parameters.
* :func:`redact` replaces every URL in a text by its redacted form, every
  known secret (``secrets=``) and anything shaped like a provider key or a
  bearer token by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "redact", "redact_url"]

MASK = "***"

# NOTE: query parameters whose values are credentials in the wild
# (Google's ``key=``, presigned ``token``/``signature``, DSNs' ``password``).
_SECRET_PARAMS = frozenset(
    {"key", "api_key", "apikey", "api-key", "token", "access_token", "password", "passwd",
     "pwd", "secret", "signature", "sig", "auth", "x-api-key"}
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# Provider keys (sk-..., sk-ant-..., AIza...), bearer tokens and JWT-shaped strings.
_TOKENS = re.compile(
    r"(?:\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bAIza[0-9A-Za-z_-]{20,}"
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=-]{8,}"
    r"|\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"
)


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``***``.

    ``redis://:hunter2@cache:6379/0`` → ``redis://:***@cache:6379/0``;
    ``https://x/v1?key=AIza...`` → ``https://x/v1?key=***``.  A string that is
    not a URL comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _TOKENS.sub(MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        # NOTE: a lone user name in a URL is usually a token (https://TOKEN@host)
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: object, secrets: Iterable[str | None] = ()) -> str:
    """Return ``str(text)`` with URLs redacted, the given ``secrets`` and token-shaped strings masked.

    ``secrets`` are exact values to hide wherever they appear (an API key the
    caller holds, say); values shorter than 4 characters are ignored so that a
    short secret cannot turn a whole message into asterisks.
    """
    out = _URL.sub(lambda m: redact_url(m.group(0)), str(text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    return _TOKENS.sub(MASK, out)
