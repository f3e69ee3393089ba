"""Model id resolution: ``"gpt-4"`` -> ``("openai", "gpt-4")``.

- ``provider/model`` is explicit (the provider gets ``model``, which may itself
  contain ``/``, e.g. ``ollama/library/llama3``);
- ``gpt-*``, ``chatgpt-*``, ``o1``/``o3``/``o4-*``... -> ``openai``;
- ``claude-*`` -> ``anthropic``; ``gemini-*`` / ``gemma-*`` -> ``google``;
- anything else is a :class:`ModelProviderError` listing close matches.
"""

from __future__ import annotations

import difflib
import os
import re

from ember.models.exceptions import ModelProviderError

_O_SERIES = re.compile(r"o\d+(-|$)")
_cache: dict[str, tuple[str, str]] = {}


def provider_for(bare: str) -> str | None:
    """The provider implied by an unprefixed model name, or None."""
    m = bare.lower()
    if m.startswith(("gpt-", "chatgpt-", "text-davinci", "davinci", "babbage",
                     "text-embedding-")) or _O_SERIES.match(m):
        return "openai"
    if m.startswith("claude-"):
        return "anthropic"
    if m.startswith(("gemini-", "gemma-")):
        return "google"
    return None


def _candidates() -> list[str]:
    from ember.models.pricing import known_models
    from ember.models.providers.base import provider_names

    known = known_models()
    bare = [k.split("/", 1)[1] for k in known]
    return [*bare, *known, *(f"{p}/..." for p in provider_names())]


def close_matches(name: str, n: int = 5) -> list[str]:
    """Known model ids (and ``provider/...`` forms) that look like ``name``."""
    return difflib.get_close_matches(name, _candidates(), n=n, cutoff=0.6)


def resolve_model_id(model: str) -> tuple[str, str]:
    """``(provider, bare model)`` for a model id; raises on unknown ids."""
    hit = _cache.get(model)
    if hit is not None:
        return hit
    if not isinstance(model, str) or not model.strip():
        raise ModelProviderError(f"model id must be a non-empty string, got {model!r}",
                                 context={"reason": "unknown_model", "model": model})
    if "/" in model:
        provider, bare = model.split("/", 1)
        provider = provider.strip().lower()
        if not provider or not bare:
            raise ModelProviderError(f"malformed model id {model!r}: use provider/model",
                                     context={"reason": "unknown_model", "model": model})
        result = (provider, bare)
    else:
        provider = provider_for(model)
        if provider is None:
            matches = close_matches(model)
            hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
            raise ModelProviderError(
                f"unknown model {model!r}: its provider cannot be inferred. Use "
                f"'provider/model' (e.g. 'openai/{model}', 'offline/echo') or a known id.{hint}",
                context={"reason": "unknown_model", "model": model, "suggestions": matches},
            )
        result = (provider, model)
    if len(_cache) < 10_000:
        _cache[model] = result
    return result


def check_provider(provider: str, model_id: str) -> None:
    """Raise :class:`ModelProviderError` when ``provider`` is neither known nor configured."""
    from ember.models.providers.base import get_provider_factory, provider_names

    if get_provider_factory(provider) is not None:
        return
    env = f"{provider.upper().replace('-', '_')}_BASE_URL"
    if os.environ.get(env):
        return
    matches = difflib.get_close_matches(provider, provider_names(), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
    raise ModelProviderError(
        f"unknown provider {provider!r} in model id {model_id!r}. Register it with "
        f"register_provider({provider!r}, cls), or set {env} to use an OpenAI-compatible "
        f"server.{hint}",
        context={"reason": "unknown_provider", "model": model_id, "suggestions": matches},
    )
