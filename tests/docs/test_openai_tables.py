"""The tables of docs/openai.md against the code they describe (issue #22).

Each table is rebuilt here from the code — the parameter tables
(``ember.models.params``, every provider's ``PARAMS``, the gateway's request Struct),
``ember.models.vocab.FINISH_REASONS``, and each provider's error classification run
through the gateway's :func:`~ember.gateway.errors.classify` — and compared with the
rows the document shows, both ways: a parameter, reason or error the code knows and the
document does not list fails, and so does a row the code no longer backs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "openai.md"
PROVIDER_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "google": "Gemini",
                  "compatible": "OpenAI-compatible"}


def _table(header_start: str) -> list[list[str]]:
    """The rows (cells stripped) of the table whose header row starts with ``header_start``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# -- parameters ---------------------------------------------------------------------------
def _known_parameters() -> set[str]:
    from ember.gateway.schemas import ChatCompletionRequest
    from ember.models import params as P
    from ember.models.providers.anthropic import AnthropicProvider
    from ember.models.providers.google import GoogleProvider
    from ember.models.providers.openai import OpenAIProvider

    known = set(P.OPENAI_PARAMS) | set(P.EXTRA_FIELDS)
    for cls in (OpenAIProvider, AnthropicProvider, GoogleProvider):
        known |= set(cls.PARAMS)
    known |= set(ChatCompletionRequest.__struct_fields__) - {"model", "messages", "stream"}
    return known


PARAM_HEADER = "| parameter | OpenAI / compatible | Anthropic | Gemini | offline |"


def test_the_parameter_table_lists_every_parameter_the_code_knows():
    listed: set[str] = set()
    for row in _table(PARAM_HEADER):
        listed |= {n.split(" ")[0] for n in _names(re.sub(r"\(.*?\)", "", row[0]))}
    known = _known_parameters()
    assert known - listed == set(), "parameters missing from docs/openai.md"
    assert listed - known == set(), "rows in docs/openai.md the code does not know"


def _fate(provider: Any, name: str) -> str:
    """What the code does with ``name`` for ``provider``, for any value: pass, drop or
    refuse (``translate`` when it depends on the value or renames it)."""
    from ember.models import params as P

    if name in P.EXTRA_FIELDS:
        outcomes = set()
        for value in ("x", True, 7):
            try:
                out, _dropped = P.for_provider(provider, {}, {name: value})
            except P.UnsupportedParameterError:
                outcomes.add("refuse")
                continue
            outcomes.add("drop" if not out else "pass" if out == {name: value} else "translate")
        return outcomes.pop() if len(outcomes) == 1 else "translate"
    rule = provider.PARAMS.get(name, P.PASS)
    return {P.PASS: "pass", P.DROP: "drop", P.REFUSE: "refuse"}.get(
        rule if isinstance(rule, str) else "", "translate")


def test_single_word_cells_say_what_the_code_does():
    """A cell that is just ``pass``, ``drop`` or ``refuse`` is checked against the code
    (Anthropic and Gemini columns: the translated providers)."""
    from ember.models.providers.anthropic import AnthropicProvider
    from ember.models.providers.google import GoogleProvider

    providers = {2: AnthropicProvider(api_key="k"), 3: GoogleProvider(api_key="k")}
    checked = 0
    for row in _table(PARAM_HEADER):
        for column, provider in providers.items():
            word = row[column]
            if word not in ("pass", "drop", "refuse"):
                continue
            for name in (n.split(" ")[0] for n in _names(re.sub(r"\(.*?\)", "", row[0]))):
                assert _fate(provider, name) == word, (name, provider.name, word)
                checked += 1
    assert checked >= 10


# -- finish reasons ------------------------------------------------------------------------
def finish_rows() -> list[list[str]]:
    from ember.models.vocab import FINISH_REASONS

    rows = []
    for provider, table in FINISH_REASONS.items():
        groups: dict[str | None, list[str]] = {}
        for raw, finish in table.items():
            groups.setdefault(finish, []).append(raw)
        for finish, raws in groups.items():
            rows.append([PROVIDER_NAMES[provider], ", ".join(f"`{r}`" for r in raws),
                         f"`{finish}`" if finish else "none (not final)"])
    return rows


def test_the_finish_reason_table_is_the_code():
    assert _table("| provider | provider's reason | `finish_reason` |") == finish_rows()


# -- provider errors -> OpenAI codes -> the gateway's answer ----------------------------------
#: provider -> (HTTP status, the field the provider puts its error kind in, the kind)
ERRORS = {
    "anthropic": [(400, "invalid_request_error"), (401, "authentication_error"),
                  (402, "billing_error"), (403, "permission_error"), (404, "not_found_error"),
                  (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
                  (504, "timeout_error"), (529, "overloaded_error")],
    "google": [(400, "INVALID_ARGUMENT"), (400, "FAILED_PRECONDITION"),
               (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
               (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"),
               (504, "DEADLINE_EXCEEDED")],
    "openai": [(404, "model_not_found"), (401, "invalid_api_key"),
               (400, "content_policy_violation"), (429, "rate_limit_exceeded"),
               (429, "insufficient_quota"), (500, "server_error"), (503, "overloaded")],
}


def _provider(name: str) -> Any:
    from ember.models.providers.anthropic import AnthropicProvider
    from ember.models.providers.google import GoogleProvider
    from ember.models.providers.openai import OpenAIProvider

    return {"anthropic": AnthropicProvider, "google": GoogleProvider,
            "openai": OpenAIProvider}[name](api_key="k")


def _error_body(provider: str, status: int, kind: str) -> bytes:
    if provider == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": "m"}})
    if provider == "google":
        return orjson.dumps({"error": {"code": status, "status": kind, "message": "m"}})
    return orjson.dumps({"error": {"message": "m", "type": "x", "code": kind}})


def error_rows() -> list[list[str]]:
    from ember.gateway.errors import classify

    rows = []
    for provider, cases in ERRORS.items():
        for status, kind in cases:
            exc = _provider(provider)._status_error(status, {}, _error_body(provider, status,
                                                                           kind), "m")
            code = exc.context.get("code")
            answer, body, _headers = classify(exc, "req_1", [])
            err = body["error"]
            field = {"anthropic": "error.type", "google": "error.status",
                     "openai": "error.code"}[provider]
            rows.append([PROVIDER_NAMES[provider], f"{status} `{field}: {kind}`",
                         f"`{code}`" if code else "none",
                         f"{answer} `{err['type']}` / `{err['code']}`"])
    return rows


def test_the_error_code_table_is_the_code():
    assert _table("| provider | provider's error | `code` on the model side |") == error_rows()


if __name__ == "__main__":  # pragma: no cover - prints the tables for the document
    for rows in (finish_rows(), error_rows()):
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()


pytest.importorskip("msgspec")
