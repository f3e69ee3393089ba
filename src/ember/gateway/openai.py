"""An OpenAI-compatible API on an Ember app: ``app.mount_openai(models, prefix="/v1")``.

Serves ``POST {prefix}/chat/completions`` (plain and streaming, tools, ``n``, usage
with cost), ``POST {prefix}/embeddings`` and ``GET {prefix}/models`` /
``{prefix}/models/{id}`` in OpenAI's wire format, so the official OpenAI SDK works
against the app with ``base_url="http://host:port/v1"``; and, through the same pipeline,
``{prefix}/messages`` (Anthropic, :mod:`ember.gateway.messages`), ``{prefix}/responses``
(:mod:`ember.gateway.responses`, stored in ``response_store``) and ``{prefix}/completions``
(:mod:`ember.gateway.completions`).  Fields OpenAI-family upstreams take pass unchanged;
for translated providers what cannot be honoured is a 400, or with ``drop_params=True``
left out and named in ``x-ember-dropped-params``.

``models`` is a model id, a list of ids, a ``ModelRouter`` (any requested name is
routed), or a dict of public names to a model id, a list of ids (a fallback
``ModelRouter``) or a router: ``{"fast": "gpt-4o-mini", "smart": ["claude-sonnet-4-5",
"gpt-4o"]}``.  ``api_keys`` (a list of keys, or a dict of key name -> key) makes
``Authorization: Bearer <key>`` mandatory (constant-time comparison); without keys
the server refuses to start on a non-loopback address unless
``allow_unauthenticated=True``.  ``budget`` (see :mod:`ember.gateway.budgets`) caps
tokens or cost per key and period; ``max_in_flight`` caps concurrent requests per
worker (503 + ``Retry-After`` beyond it).  Requests are validated against OpenAI's
schema (:mod:`ember.gateway.schemas`); parameters reach each provider in its own
vocabulary or are refused (:mod:`ember.models.params`); every error is in OpenAI's
shape with a request id, and upstream error bodies never reach clients
(:mod:`ember.gateway.errors`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import sys
from array import array
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import orjson

from ember.gateway._chat import ChatEndpoint, _complete, _GatewayStream, _stream
from ember.gateway._endpoint import EndpointError, provider_params, reshape
from ember.gateway.errors import error_response, openai_error, request_id
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.gateway")

__all__ = ["mount_openai", "openai_error"]


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        from ember.exceptions import MissingDependency

        raise MissingDependency("msgspec", "models", "The OpenAI-compatible gateway") from None
    return msgspec


class _Target:
    """One public model name: a model id (through the registry) or a router."""

    __slots__ = ("_providers", "model_id", "name", "router")

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._providers: list[Any] | None = None
        self.router = None
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


def mount_openai(app: Any, models: Any, prefix: str = "/v1",
                 api_keys: list[str] | Mapping[str, str] | None = None, *,
                 allow_unauthenticated: bool = False, budget: Any = None,
                 budget_store: Any = None, max_in_flight: int | None = 256,
                 drop_params: bool = False, response_store: Any = None) -> None:
    """Register the OpenAI-compatible routes on ``app`` (see the module docstring).

    Raises ``ValueError`` for a malformed configuration; at server start, raises
    ``RuntimeError`` when bound to a non-loopback address without ``api_keys`` unless
    ``allow_unauthenticated=True``.
    """
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"prefix must start with '/' and not end with '/', got {prefix!r}")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(
            max_in_flight, int) or max_in_flight < 1):
        raise ValueError(f"max_in_flight must be a positive int or None, got {max_in_flight!r}")
    if not isinstance(drop_params, bool):
        raise ValueError(f"drop_params must be True or False, got {drop_params!r}")
    msgspec = _msgspec()
    from ember.gateway import numbers, schemas

    targets, catch_all = _targets(models)
    keys = _keys(api_keys)
    budgets = None
    if budget is not None:
        from ember.gateway.budgets import Budgets

        budgets = Budgets(budget, budget_store)
    elif budget_store is not None:
        raise ValueError("budget_store= needs budget=")
    gateway_secrets = [k.decode() for k in keys.values()]
    chat_endpoint = ChatEndpoint()
    in_flight = 0

    def secrets() -> list[str]:
        return gateway_secrets + [v for k, v in os.environ.items() if k.endswith("_API_KEY")]

    def check_binding() -> None:
        if keys:
            return
        state = getattr(app, "state", None)
        address = getattr(state, "bound_address", None)
        host = address[0] if address else None
        if host is not None and not _is_loopback(str(host)) and not allow_unauthenticated:
            raise RuntimeError(
                f"mount_openai({prefix!r}) has no api_keys and the server is bound to {host}: "
                "anyone who can reach it can spend your model budget. Pass api_keys=[...], or "
                "allow_unauthenticated=True if something in front of the app authenticates.")
        if not allow_unauthenticated:
            logger.warning("mount_openai(%r) serves without api_keys (loopback only); pass "
                           "api_keys=[...] before exposing it", prefix)

    app.on_startup(check_binding)

    async def close_clients() -> None:
        # NOTE: the providers' pooled connections of this worker's loop close with it
        from ember.models.api import default_registry

        await default_registry().aclose()
        if budgets is not None:
            await budgets.aclose()

    app.on_shutdown(close_clients)

    def authenticate(request: Any, rid: str, endpoint: Any = None) -> str | Response:
        """The key's name, or a 401."""
        if not keys:
            return "anonymous"
        token = (endpoint or chat_endpoint).credentials(request)
        given = (token or "").encode("utf-8", "surrogateescape")
        found = None
        for name, key in keys.items():  # NOTE: compare with every key (constant time)
            if hmac.compare_digest(given, key):
                found = name
        if token is not None and found is not None:
            return found
        return openai_error(401, "Incorrect API key provided.", code="invalid_api_key",
                            headers={"www-authenticate": 'Bearer realm="openai"'}, rid=rid)

    def target_for(model: str) -> _Target | None:
        target = targets.get(model)
        if target is None and catch_all is not None:
            return catch_all
        return target

    async def decode(request: Any, type_: Any, rid: str) -> tuple[Any, Any] | Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except (orjson.JSONDecodeError, RecursionError) as exc:
            return openai_error(400, f"The request body is not valid JSON: {exc}", rid=rid)
        if not isinstance(body, dict):
            return openai_error(400, "The request body must be a JSON object.", rid=rid)
        try:
            # 5.0 is an integer to JSON Schema and OpenAI: whole floats at integer
            # positions become ints (in body too, which is what is forwarded)
            spec = numbers.decode(raw, body, type_, schemas.decode)
        except msgspec.ValidationError as exc:
            text = str(exc)
            param = schemas.error_param(text)
            if text.startswith("Object contains unknown field"):
                text = f"Unrecognized request argument supplied: {param}"
            return openai_error(400, f"Invalid request: {text}", param=param,
                                code="invalid_value", rid=rid)
        except (msgspec.DecodeError, RecursionError) as exc:
            return openai_error(400, f"The request body is not valid JSON: {exc}", rid=rid)
        return body, spec

    async def admit(key: str, rid: str, model: str) -> tuple[str, _Target] | Response:
        """Model and budget checks (after the key and the body)."""
        target = target_for(model)
        if target is None:
            return openai_error(404, f"The model `{model}` does not exist or you do not have "
                                "access to it.", code="model_not_found", param="model", rid=rid)
        if budgets is not None:
            wait = await budgets.check(key)
            if wait is not None:
                return openai_error(
                    429, "You exceeded your budget for this period.", "insufficient_quota",
                    code="insufficient_quota", rid=rid,
                    headers={"retry-after": str(max(1, int(wait + 0.999))),
                             "x-should-retry": "false"})
        return key, target

    async def settle(key: str, model: str, sink: list[Any]) -> None:
        """Charge the key's budget and count its usage (metrics) from the calls made."""
        tokens = 0
        cost = 0.0
        obs = sys.modules.get("ember.observability")
        record = getattr(obs, "record_key_usage", None) if obs is not None else None
        for model_key, usage, _error in sink:
            if usage is None:
                continue
            tokens += usage.total_tokens
            cost += usage.cost
            if record is not None:
                record(key, model_key, usage.prompt_tokens, usage.completion_tokens, usage.cost)
        if budgets is not None:
            await budgets.charge(key, tokens, cost)

    def busy(rid: str) -> Response | None:
        if max_in_flight is not None and in_flight >= max_in_flight:
            return openai_error(503, "The gateway is at capacity; retry shortly.",
                                "server_error", code="overloaded",
                                headers={"retry-after": "1"}, rid=rid)
        return None

    async def serve(request: Any, endpoint: Any) -> Response:
        """The one pipeline of every chat-like endpoint: capacity, key, body, admission,
        parameters, the call (budget settled), errors in ``endpoint``'s shape."""
        nonlocal in_flight
        rid = request_id(request)
        refused = busy(rid)
        if refused is not None:
            return reshape(endpoint, refused)
        in_flight += 1
        streaming = False
        try:
            prepared = await prepare(request, rid, endpoint.schema, endpoint)
            if isinstance(prepared, Response):
                return reshape(endpoint, prepared)
            body, spec, key, target = prepared
            call = await endpoint.to_chat(body, spec, key)
            call.params, dropped = provider_params(target.providers(), call, drop_params)
            headers = {"x-ember-dropped-params": ",".join(dropped)} if dropped else None
            if dropped:
                logger.warning("gateway %s: dropped parameters %s (drop_params=True)", rid,
                               ",".join(dropped))
            if call.stream:
                response = await _stream(target, endpoint, call, rid, key, settle, secrets,
                                         release, headers)
                streaming = isinstance(response, _GatewayStream)
                return reshape(endpoint, response)
            return reshape(endpoint, await _complete(target, endpoint, call, rid, key, settle,
                                                     secrets, headers))
        except EndpointError as exc:
            return reshape(endpoint, openai_error(
                exc.status, exc.message, "server_error" if exc.status >= 500 else
                "invalid_request_error", exc.code, exc.param,
                {"retry-after": "1"} if exc.status == 503 else None, rid))
        except Exception as exc:  # NOTE: never a bare 500: OpenAI's shape, details logged
            return reshape(endpoint, error_response(exc, rid, secrets()))
        finally:
            if not streaming:
                in_flight -= 1

    async def chat_completions(request: Any) -> Response:
        return await serve(request, chat_endpoint)

    def release() -> None:
        nonlocal in_flight
        in_flight -= 1

    async def prepare(request: Any, rid: str, schema: Any, endpoint: Any = None) -> Any:
        """Authenticate, validate ``schema`` and admit: ``(body, spec, key, target)`` or
        the error response to send."""
        key = authenticate(request, rid, endpoint)
        if isinstance(key, Response):
            return key
        decoded = await decode(request, schema, rid)
        if isinstance(decoded, Response):
            return decoded
        body, spec = decoded
        admitted = await admit(key, rid, spec.model)
        if isinstance(admitted, Response):
            return admitted
        return (body, spec, *admitted)

    async def embeddings(request: Any) -> Response:
        rid = request_id(request)
        try:
            prepared = await prepare(request, rid, schemas.EmbeddingRequest)
            if isinstance(prepared, Response):
                return prepared
            _body, spec, key, target = prepared
            inputs = [spec.input] if isinstance(spec.input, str) else list(spec.input)
            params = {k: v for k, v in (("dimensions", spec.dimensions), ("user", spec.user))
                      if v is not None}
            result = await target.embed(inputs, params)
            await settle(key, spec.model, [(result.model_key or spec.model, result.usage, None)])
            b64 = spec.encoding_format == "base64"
            data = [{"object": "embedding", "index": i, "embedding": (
                base64.b64encode(array("f", vec).tobytes()).decode() if b64 else vec)}
                for i, vec in enumerate(result.vectors)]
            usage = result.usage
            return JSONResponse({"object": "list", "data": data, "model": spec.model,
                                 "usage": {"prompt_tokens": usage.prompt_tokens,
                                           "total_tokens": usage.prompt_tokens}},
                                headers={"x-request-id": rid})
        except Exception as exc:
            return error_response(exc, rid, secrets())

    async def list_models(request: Any) -> Response:
        rid = request_id(request)
        key = authenticate(request, rid)
        if isinstance(key, Response):
            return key
        return JSONResponse({"object": "list", "data": [_card(m) for m in targets]})

    async def get_model(request: Any, model_id: str) -> Response:
        rid = request_id(request)
        key = authenticate(request, rid)
        if isinstance(key, Response):
            return key
        if model_id not in targets:
            return openai_error(404, f"The model `{model_id}` does not exist.",
                                code="model_not_found", param="model", rid=rid)
        return JSONResponse(_card(model_id))

    app.add_route(f"{prefix}/chat/completions", chat_completions, ["POST"],
                  name="openai_chat_completions", openapi_extra=schemas.CHAT_COMPLETIONS_OPENAPI)
    # -- the other client vocabularies (issue #22): the same pipeline, their translators
    gateway = SimpleNamespace(serve=serve, authenticate=authenticate, decode=decode,
                              target_for=target_for, secrets=secrets,
                              response_store=response_store)
    from ember.gateway import completions as _completions
    from ember.gateway import messages as _messages
    from ember.gateway import responses as _responses

    _messages.register(app, prefix, gateway)
    _responses.register(app, prefix, gateway)
    _completions.register(app, prefix, gateway)
    app.add_route(f"{prefix}/embeddings", embeddings, ["POST"], name="openai_embeddings",
                  openapi_extra=schemas.EMBEDDINGS_OPENAPI)
    app.add_route(f"{prefix}/models", list_models, ["GET"], name="openai_models",
                  openapi_extra=schemas.MODELS_OPENAPI)
    app.add_route(f"{prefix}/models/{{model_id:path}}", get_model, ["GET"],
                  name="openai_model", openapi_extra=schemas.MODEL_OPENAPI)


def _card(model_id: str) -> dict[str, Any]:
    owner = model_id.split("/", 1)[0] if "/" in model_id else "ember"
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}
