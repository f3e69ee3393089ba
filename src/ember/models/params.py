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

import orjson

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


# -- the gateway's newer OpenAI request fields (issue #22) ----------------------------------
#: ``reasoning_effort`` values OpenAI accepts.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
THINKING_BUDGET["xhigh"] = 8192

#: Providers whose tables are OpenAI's own vocabulary take any field unchanged.
_SAME_AS_OPENAI = frozenset(OPENAI_PARAMS)

Extra = Callable[[Any], dict[str, Any]]


class _Refuse(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _drop(value: Any) -> dict[str, Any]:
    return {}


def _refuse_with(reason: str) -> Extra:
    def rule(value: Any) -> dict[str, Any]:
        raise _Refuse(reason)

    return rule


def _default_only(default: Any, reason: str) -> Extra:
    """The default value has no effect (dropped); any other is refused."""

    def rule(value: Any) -> dict[str, Any]:
        if value == default or value is False or value is None:
            return {}
        raise _Refuse(reason)

    return rule


def _text_only(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and all(v == "text" for v in value):
        return {}
    raise _Refuse("it answers with text only")


def _anthropic_tier(value: Any) -> dict[str, Any]:
    tier = {"auto": "auto", "default": "standard_only"}.get(value)
    if tier is None:
        raise _Refuse("its service tiers are auto and standard_only (OpenAI's auto, default)")
    return {"service_tier": tier}


def _as_user(value: Any) -> dict[str, Any]:
    return {"user": value}


#: OpenAI request fields outside :data:`OPENAI_PARAMS` -> per translated provider, what
#: they become (a dict of parameters to send, ``{}`` = dropped because the answer does not
#: depend on it) or a refusal.  OpenAI-family providers take them all unchanged.
EXTRA_FIELDS: dict[str, dict[str, Extra]] = {
    # a caching hint / tags for stored completions / abuse monitoring: never the answer
    "prompt_cache_key": {"*": _drop},
    "metadata": {"*": _drop},
    "prediction": {"*": _drop},      # NOTE: a latency hint; the answer is the same
    "safety_identifier": {"anthropic": _as_user, "*": _drop},
    "service_tier": {"anthropic": _anthropic_tier,
                     "*": _default_only("auto", "it has no service tiers")},
    "store": {"*": _default_only(False, "it does not store completions")},
    "verbosity": {"*": _default_only("medium", "it has no verbosity setting")},
    "modalities": {"*": _text_only},
    "audio": {"*": _refuse_with("it does not answer with audio")},
    "web_search_options": {"*": _refuse_with("web search is not a chat parameter there")},
    # not OpenAI's: the Messages API's (``/v1/messages``); provider-native where it exists
    "top_k": {"anthropic": lambda v: {"top_k": v}, "google": lambda v: {"top_k": v},
              "*": _refuse_with("it has no top_k sampling")},
}
#: Fields in :data:`EXTRA_FIELDS` that are not OpenAI's: OpenAI itself refuses them too
#: (sent unchanged they would be an upstream 400); OpenAI-compatible servers get them.
NOT_OPENAI = frozenset(("top_k",))

#: ``reasoning_effort`` spellings a provider's table does not know -> its equivalent
#: (``None``: the parameter is not sent, which is the provider's "no reasoning").
EFFORT_ALIASES: dict[str, dict[str, str | None]] = {
    "anthropic": {"none": None},
    "google": {"none": "minimal"},   # NOTE: google maps minimal to thinkingBudget 0
}


_FAMILY: dict[int, tuple[Any, bool]] = {}


def openai_family(provider: Any) -> bool:
    """True when ``provider`` speaks OpenAI's vocabulary (every parameter passes)."""
    table = getattr(provider, "PARAMS", None)
    known = _FAMILY.get(id(table))
    if known is not None and known[0] is table:  # PERF: once per table
        return known[1]
    family = isinstance(table, Mapping) and all(
        table.get(name, PASS) == PASS for name in _SAME_AS_OPENAI)
    if table is not None:
        _FAMILY[id(table)] = (table, family)
    return family


def for_provider(provider: Any, params: dict[str, Any], extras: dict[str, Any],
                 drop: bool = False) -> tuple[dict[str, Any], list[str]]:
    """One request's parameters for ``provider``: ``(params to send, names dropped)``.

    ``params`` are OpenAI parameters (:data:`OPENAI_PARAMS`), ``extras`` the request's
    other fields.  OpenAI-family providers get both unchanged (forward compatibility).
    Others get each extra translated (:data:`EXTRA_FIELDS`) or refused, and every
    parameter their table refuses raises :class:`UnsupportedParameterError` — unless
    ``drop``, then it is left out and named in the second item.
    """
    name = str(getattr(provider, "name", "provider"))
    if openai_family(provider):
        out = {**params, **extras} if extras else params
        if not extras:
            return out, []
        # NOTE: OpenAI's own API has no such field; compatible servers (vLLM, ...) may
        foreign = [f for f in NOT_OPENAI if f in extras] if name == "openai" else []
        if foreign and not drop:
            raise UnsupportedParameterError(name, foreign[0], "it has no such parameter")
        for field in foreign:
            del out[field]
        return out, foreign
    out = dict(params)
    dropped: list[str] = []
    effort = out.get("reasoning_effort")
    alias = EFFORT_ALIASES.get(name, {})
    if effort in alias:
        if alias[effort] is None:
            del out["reasoning_effort"]
        else:
            out["reasoning_effort"] = alias[effort]
    for field, value in extras.items():
        rules = EXTRA_FIELDS.get(field)
        rule = (rules.get(name) or rules.get("*")) if rules else None
        try:
            if rule is None:
                raise _Refuse("it is not a parameter this gateway can translate")
            for key, translated in rule(value).items():
                out.setdefault(key, translated)
        except _Refuse as exc:
            if not drop:
                raise UnsupportedParameterError(name, field, exc.reason) from None
            dropped.append(field)
    table = getattr(provider, "PARAMS", None)
    if drop and isinstance(table, Mapping):
        while True:  # NOTE: a dry run of the table finds what it refuses
            try:
                apply(name, table, dict(out), {})
                break
            except UnsupportedParameterError as exc:
                param = exc.context.get("param")
                if param not in out:
                    raise
                del out[param]
                dropped.append(param)
    return out, dropped


# -- values: what OpenAI's published schema accepts, checked where a call enters -------------
class InvalidParameterError(ProviderAPIError):
    """A parameter value OpenAI's schema refuses (``max_tokens=-1``, ``"abc"``, NaN);
    ``context["param"]`` names it. Raised before any network call, for every provider
    (the offline one too); the gateway answers 400 ``invalid_value`` with ``param`` set."""

    def __init__(self, param: str, reason: str, value: Any) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        super().__init__(
            f"invalid value for {param!r}: {reason}, got {shown}", error_type="bad_request",
            context={"param": param, "local": True, "code": "invalid_value"})


_I64 = 2**63 - 1
#: name -> (integer?, minimum, maximum): OpenAI's published bounds
NUMBERS: dict[str, tuple[bool, float, float]] = {
    "max_tokens": (True, 1, _I64), "max_completion_tokens": (True, 1, _I64),
    "n": (True, 1, 128), "seed": (True, -_I64 - 1, _I64), "top_logprobs": (True, 0, 20),
    "temperature": (False, 0, 2), "top_p": (False, 0, 1),
    "presence_penalty": (False, -2, 2), "frequency_penalty": (False, -2, 2),
}


def check_values(params: dict[str, Any]) -> None:
    """Check ``params`` in place: the numbers of :data:`NUMBERS` within OpenAI's bounds (a
    whole float such as ``5.0`` becomes the integer, as OpenAI reads it), and no NaN or
    infinity anywhere — JSON has no such number, so it would reach the provider as
    ``null`` (orjson's rendering), a different request. Raises
    :class:`InvalidParameterError` naming the parameter (a path inside nested values)."""
    for name, value in params.items():
        spec = NUMBERS.get(name)
        if spec is None:
            if name not in _CALL_OPTIONS and not isinstance(value, _FINE):
                _finite(value, name)
        elif value is not None:
            _number(params, name, value, spec)


def _number(params: dict[str, Any], name: str, value: Any,
            spec: tuple[bool, float, float]) -> None:
    integer, low, high = spec
    given = value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameterError(name, "expected an integer" if integer
                                    else "expected a number", value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidParameterError(name, "NaN and infinity are not numbers in JSON", value)
        if integer:
            if not value.is_integer():
                raise InvalidParameterError(name, "expected an integer", value)
            value = params[name] = int(value)  # NOTE: same key: no resize while iterating
    if not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise InvalidParameterError(name, f"expected {kind} from {low} to {high}", given)


#: call options: not sent to the provider, checked where they are used
_CALL_OPTIONS = frozenset(("timeout", "max_retries", "first_token_timeout"))
_FINE = (str, int, type(None))


def _finite(value: Any, path: str) -> None:
    # PERF: orjson writes NaN and infinities as null: a value whose JSON has no null
    # (the common case; ~1 us for a tools list) has none; otherwise walk it
    try:
        if b"null" not in orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS):
            return
    except TypeError:
        pass  # NOTE: objects the provider converts itself (walked like the rest)
    if _bad(value):
        where, bad = _where(value, path)
        raise InvalidParameterError(where, "NaN and infinity are not numbers in JSON", bad)


_INF = float("inf")


def _bad(value: Any) -> bool:
    """Whether a NaN or an infinity is inside ``value`` (dicts, lists and tuples)."""
    stack = [value]
    pop = stack.pop
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list or t is tuple:
            stack.extend(v)
        elif isinstance(v, float) and (v != v or v == _INF or v == -_INF):
            return True
    return False


def _where(value: Any, path: str) -> tuple[str, Any]:
    """The path to the first NaN or infinity inside ``value``, and that number."""
    while True:
        if isinstance(value, dict):
            items: Any = ((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            return path, value
        path, value = next((sub, item) for sub, item in items if _bad(item))
