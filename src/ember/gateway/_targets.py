"""What the gateway serves and who may call it: public model names -> targets, static keys.

Used by :mod:`ember.gateway.service`.  A target is a model id (called through the
registry) or a ``ModelRouter``; a list of ids is a fallback router.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any


class _Target:
    """One public model name: a model id (through the registry) or a router."""

    __slots__ = ("_providers", "model_id", "name", "router")

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.router = None
        self._providers: list[Any] | None = None
        self.model_id: str | None = None
        if isinstance(target, str) and target:
            self.model_id = target
        elif isinstance(target, list | tuple) and target and all(
                isinstance(m, str) and m for m in target):
            from ember.ai.router import ModelRouter

            self.router = ModelRouter(list(target), "fallback")
        elif hasattr(target, "acomplete") and hasattr(target, "astream"):
            self.router = target
        else:
            raise ValueError(f"mount_openai: model {name!r} must map to a model id, a non-empty "
                             f"list of ids or a ModelRouter, got {target!r}")

    def providers(self) -> list[Any]:
        """The provider of each model (for the parameters each one takes)."""
        if self._providers is not None:
            return self._providers
        from ember.models.api import default_registry

        out: list[Any] = []
        complete = True
        for model in self.ids():
            try:
                provider = default_registry().get_model(model).provider
            except Exception:  # NOTE: the call itself raises the configuration error
                complete = False
                continue
            if all(p is not provider for p in out):
                out.append(provider)
        if complete:  # PERF: bindings do not change once made
            self._providers = out
        return out

    def ids(self) -> list[str]:
        return [self.model_id] if self.model_id else list(getattr(self.router, "models", []))

    async def complete(self, messages: list[Any], params: dict[str, Any]) -> Any:
        if self.router is not None:
            return await self.router.acomplete(messages, **params)
        from ember.models.api import default_registry

        return await default_registry().invoke_model_async(self.model_id, messages, **params)

    def stream(self, messages: list[Any], params: dict[str, Any]) -> Any:
        if self.router is not None:
            # NOTE: (issue 22) a ModelRouter's stream object carries every attempt's usage
            stream = getattr(self.router, "stream", None)
            return (stream(messages, **params) if stream is not None
                    else self.router.astream(messages, **params))
        from ember.models.api import default_registry

        return default_registry().stream_model_async(self.model_id, messages, **params)

    async def embed(self, inputs: list[str], params: dict[str, Any]) -> Any:
        from ember.models.api import default_registry
        from ember.models.exceptions import ProviderAPIError

        last: Exception | None = None
        for model in self.ids():  # NOTE: a list falls back on retryable errors, in order
            try:
                return await default_registry().embed_async(model, inputs, **params)
            except ProviderAPIError as exc:
                if not exc.retryable:
                    raise
                last = exc
        assert last is not None
        raise last


def _targets(models: Any) -> tuple[dict[str, _Target], _Target | None]:
    """Public name -> target, and the catch-all router (a bare ModelRouter)."""
    if isinstance(models, str):
        return {models: _Target(models, models)}, None
    if isinstance(models, Mapping):
        if not models:
            raise ValueError("mount_openai needs at least one model")
        for name in models:
            if not isinstance(name, str) or not name:
                raise ValueError(f"mount_openai: public model names must be non-empty "
                                 f"strings, got {name!r}")
        return {name: _Target(name, t) for name, t in models.items()}, None
    if isinstance(models, list | tuple):
        if not models or not all(isinstance(m, str) and m for m in models):
            raise ValueError("mount_openai needs a non-empty list of model ids")
        return {m: _Target(m, m) for m in models}, None
    if hasattr(models, "acomplete") and hasattr(models, "astream"):
        router = _Target("router", models)
        return {m: _Target(m, m) for m in router.ids()}, router
    raise ValueError("mount_openai(models=...) takes a model id, a list of ids, a dict of "
                     f"public names or a ModelRouter, got {models!r}")


def _keys(api_keys: Any) -> dict[str, bytes]:
    """Key name -> key bytes (names label metrics and budgets; never the secret)."""
    if api_keys is None:
        return {}
    if isinstance(api_keys, str | bytes):
        raise ValueError("api_keys must be a list of keys (or a dict name -> key), not a string")
    pairs = api_keys.items() if isinstance(api_keys, Mapping) else (
        (f"key-{hashlib.sha256(k.encode()).hexdigest()[:8]}" if isinstance(k, str) else k, k)
        for k in api_keys)
    out: dict[str, bytes] = {}
    for name, key in pairs:
        if not isinstance(key, str) or not key.strip() or not isinstance(name, str) or not name:
            raise ValueError("api_keys entries must be non-empty strings (with non-empty names)")
        out[name] = key.encode()
    if not out:
        raise ValueError("api_keys is empty: pass None (and allow_unauthenticated=True off "
                         "loopback) to serve without keys")
    return out


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def card(model_id: str) -> dict[str, Any]:
    owner = model_id.split("/", 1)[0] if "/" in model_id else "ember"
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
