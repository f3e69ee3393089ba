"""HTTP status codes and their reason phrases (RFC 9110 §15 plus the registered extras).

NOTE: any code in 100..599 may be sent; codes without a registered phrase go out
with an empty reason phrase, which RFC 9112 §4 permits, instead of being rewritten.
"""

from __future__ import annotations

from http import HTTPStatus

REASON_PHRASES: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}
REASON_PHRASES.update(
    {
        103: "Early Hints",
        425: "Too Early",
        418: "I'm a teapot",
        421: "Misdirected Request",
        451: "Unavailable For Legal Reasons",
        529: "Site is overloaded",
    }
)


def reason_phrase(status_code: int) -> str:
    """Return the reason phrase for ``status_code`` ('' when none is registered)."""
    return REASON_PHRASES.get(status_code, "")


def body_allowed(status_code: int) -> bool:
    """1xx, 204 and 304 responses carry no body and no Content-Length (RFC 9110 §6.4.1)."""
    return not (status_code < 200 or status_code == 204 or status_code == 304)


globals().update({f"HTTP_{s.value}_{s.name}": s.value for s in HTTPStatus})
