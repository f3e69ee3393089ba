"""OpenAI-vocabulary parameters, mapped per provider by one table each.

Every built-in provider declares ``PARAMS``: a dict from an OpenAI Chat Completions
parameter name to what the provider does with it:

- :data:`PASS` — sent unchanged (the provider takes the same name and meaning);
- ``Rename("x")`` — sent under another name, same value;
- a function ``(value, params, body) -> None`` — translated (it writes into ``body``
  and may read the other ``params``), and may raise :class:`UnsupportedParameterError`
  for values it cannot honour;
- :data:`DROP` — not sent, because it has no effect on the answer (documented per
  table, e.g. ``user`` for providers without an end-user field);
- :data:`REFUSE` — the call fails with :class:`UnsupportedParameterError` (a 400 naming
  the parameter at the gateway) instead of silently ignoring it.

Names absent from the table are provider-native and go through unchanged, so
``models("claude-...", prompt, top_k=5)`` keeps working.  ``None`` values are
never sent.  :func:`apply` is what providers call in ``build_request``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ember.models.exceptions import ProviderAPIError

PASS = "pass"
DROP = "drop"
REFUSE = "refuse"

#: The OpenAI parameters every table must decide about (tests check each table).
OPENAI_PARAMS = (
    "max_tokens", "max_completion_tokens", "stop", "response_format", "tool_choice",
    "parallel_tool_calls", "seed", "logprobs", "top_logprobs", "n", "reasoning_effort",
    "user", "temperature", "top_p", "presence_penalty", "frequency_penalty", "logit_bias",
    "tools",
)


class Rename:
    """Send the value under the provider's own name."""

    __slots__ = ("to",)

    def __init__(self, to: str) -> None:
        self.to = to

    def __repr__(self) -> str:
        return f"Rename({self.to!r})"


Rule = str | Rename | Callable[[Any, dict[str, Any], dict[str, Any]], None]


class UnsupportedParameterError(ProviderAPIError):
    """A parameter the provider cannot honour; ``context["param"]`` names it.

    Raised before any network call; the gateway answers 400 with ``param`` set.
    """

    def __init__(self, provider: str, param: str, reason: str, model: str | None = None) -> None:
        super().__init__(
            f"{provider} does not support {param!r}: {reason}", error_type="bad_request",
            provider=provider, model=model, context={"param": param, "local": True},
        )


def apply(provider: str, table: Mapping[str, Rule], params: dict[str, Any],
          body: dict[str, Any], model: str | None = None) -> None:
    """Move ``params`` into ``body`` following ``table`` (``params`` is emptied)."""
    for name in list(params):
        value = params.pop(name)
        if value is None:
            continue
        rule = table.get(name, PASS)
        if rule is PASS or rule == PASS:
            body[name] = value
        elif rule == DROP:
            continue
        elif rule == REFUSE:
            raise UnsupportedParameterError(provider, name, "the provider has no equivalent",
                                            model)
        elif isinstance(rule, Rename):
            body.setdefault(rule.to, value)
        else:
            try:
                rule(value, params, body)
            except UnsupportedParameterError as exc:
                exc.context["model"] = exc.context.get("model") or model
                raise


def refuse(provider: str, param: str, reason: str) -> UnsupportedParameterError:
    """The error for a value a translator cannot honour."""
    return UnsupportedParameterError(provider, param, reason)


def only_one_choice(provider: str) -> Callable[[Any, dict[str, Any], dict[str, Any]], None]:
    """``n``: 1 is the default (not sent); more is refused."""

    def rule(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
        if value != 1:
            raise refuse(provider, "n", "it returns one choice per request; send n "
                         "separate requests")

    return rule


def no_logprobs(provider: str) -> Callable[[Any, dict[str, Any], dict[str, Any]], None]:
    """``logprobs``: false is the default (not sent); true is refused."""

    def rule(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
        if value:
            raise refuse(provider, "logprobs", "it does not return log probabilities")

    return rule


def parallel_default_only(provider: str) -> Callable[[Any, dict[str, Any], dict[str, Any]], None]:
    """``parallel_tool_calls``: true is the default (not sent); false is refused."""

    def rule(value: Any, params: dict[str, Any], body: dict[str, Any]) -> None:
        if value is False:
            raise refuse(provider, "parallel_tool_calls",
                         "it cannot be told to call one tool at a time")

    return rule


#: ``reasoning_effort`` -> thinking token budget (the mapping LiteLLM uses).
THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}


def stop_list(value: Any) -> list[str]:
    """``stop`` as a list of strings."""
    return [value] if isinstance(value, str) else list(value)
