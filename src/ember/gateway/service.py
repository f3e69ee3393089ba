"""The gateway as one object: a pipeline of steps that raise typed errors.

:class:`Gateway` is what ``app.mount_openai(...)`` builds.  Each endpoint runs the
same steps, each a method that other endpoints (``/v1/messages``, ``/v1/responses``,
``/v1/completions``) call in the same order:

1. ``await authenticate(request) -> Caller``: a static ``api_keys`` key or a virtual
   key from the key store (:mod:`ember.gateway.auth`), else 401 (503: store down);
2. ``await decode(request, schema) -> (body, spec)``: JSON + schema, or 400;
3. ``resolve(caller, model) -> _Target``: the public model name the key may use, or 404;
4. ``await admit(caller) -> release``: an in-flight slot shared fairly between keys
   (:mod:`ember.gateway.fairness`; 429 after a bounded wait, 503 when the queue is full);
5. ``chat_worst_case(target, raw, body, params, budgeted) -> (tokens, cost)``
   (:mod:`ember.gateway.costing`; another endpoint computes its own worst case), then
   ``await reserve(caller, target, tokens, cost, rid) -> Ticket``: the per-key limits
   (429 ``rate_limit_exceeded``, :mod:`ember.gateway.limits`) and the key's and team's
   budgets (429 ``insufficient_quota``, :mod:`ember.gateway.budgets`), held until settled
   (both in one Redis script when they share a Redis: :mod:`ember.gateway.ledger`);
6. the model call (:mod:`ember.gateway._chat` for chat completions), with
   ``ticket.settle`` as its ``settle(key, model, sink, streamed=None)`` callback
   (``streamed``: the text a client that left early received);
7. ``await ticket.settle(...)`` (:mod:`ember.gateway.ticket`): the real usage replaces
   the reservation, the concurrency slot and unused tokens go back, the spend-log row is
   queued (:mod:`ember.gateway.spend`); ``ticket.abandon()`` when the handler was
   cancelled mid-call (the reservation stays charged).  Add ``ticket.headers``
   (``x-ratelimit-*``) to the answer.

A step refuses by raising a :class:`ember.gateway.failures.GatewayError`; the route
boundary (:meth:`Gateway.run`) turns it into OpenAI's error shape, once.  The admin API
(keys, spend) is :mod:`ember.gateway.admin`.
"""

from __future__ import annotations

import base64
import logging
import os
from array import array
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from ember._redact import redact
from ember.gateway._targets import _is_loopback, _keys, _Target, _targets, card
from ember.gateway.auth import Authenticator, Caller, master_key_from
from ember.gateway.budgets import team_budgets_from
from ember.gateway.costing import DEFAULT_MAX_TOKENS, IMAGE_TOKENS, Prices, worst_case
from ember.gateway.errors import error_response, request_id
from ember.gateway.failures import (
    BadRequest,
    GatewayError,
    ModelNotFound,
    Overloaded,
    QuotaExceeded,
    RateLimited,
)
from ember.gateway.fairness import FairShare
from ember.gateway.limits import KeyLimits, make_limit_store, parse_limits, refusal
from ember.gateway.limits import headers as rate_headers
from ember.gateway.ticket import Ticket
from ember.responses import JSONResponse, Response

logger = logging.getLogger("ember.gateway")

#: Request body limit of the model routes: 32 MiB (OpenAI takes images of up to 20 MB, as
#: base64 data URIs in the JSON body); ``mount_openai(max_body_size=...)`` changes it.
DEFAULT_MAX_BODY = 32 * 1024 * 1024

#: Request fields that are the provider's business (mapped by its PARAMS table).
FORWARD = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
           "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
           "seed", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
           "reasoning_effort")


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        from ember.exceptions import MissingDependency

        raise MissingDependency("msgspec", "models", "The OpenAI-compatible gateway") from None
    return msgspec


class Gateway:
    """The OpenAI-compatible gateway of one app (see the module docstring)."""

    def __init__(self, app: Any, models: Any, prefix: str = "/v1",
                 api_keys: list[str] | Mapping[str, str] | None = None, *,
                 allow_unauthenticated: bool = False, budget: Any = None,
                 budget_store: Any = None, max_in_flight: int | None = 256,
                 budget_fail_open: bool = False,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS, limits: Any = None,
                 limit_store: Any = None, max_queue: int | None = None,
                 queue_timeout: float = 10.0, master_key: str | None = None,
                 key_store: Any = None, team_budgets: Any = None,
                 spend_log: Any = None, drop_params: bool = False,
                 response_store: Any = None,
                 max_body_size: int | None = DEFAULT_MAX_BODY) -> None:
        if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"prefix must start with '/' and not end with '/', got {prefix!r}")
        if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(
                max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"max_in_flight must be a positive int or None, "
                             f"got {max_in_flight!r}")
        if not isinstance(drop_params, bool):
            raise ValueError(f"drop_params must be True or False, got {drop_params!r}")
        self.drop_params = drop_params
        if max_body_size is not None and (isinstance(max_body_size, bool) or not isinstance(
                max_body_size, int) or max_body_size < 1):
            raise ValueError(f"max_body_size must be a positive int (bytes) or None, "
                             f"got {max_body_size!r}")
        from ember.limits import RouteLimits

        #: the request body limit of the model routes (images as data URIs are large)
        self.limits = RouteLimits(max_body_size=max_body_size)
        self.response_store = response_store
        self._msgspec = _msgspec()
        from ember.gateway import schemas

        self.schemas = schemas
        self.app = app
        self.prefix = prefix
        self.targets, self.catch_all = _targets(models)
        self.keys = _keys(api_keys)
        self.allow_unauthenticated = allow_unauthenticated
        if isinstance(default_max_tokens, bool) or not isinstance(default_max_tokens, int) or \
                default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be a positive int, "
                             f"got {default_max_tokens!r}")
        self.default_max_tokens = default_max_tokens
        self.master_key = master_key_from(master_key, self.keys)
        if key_store is None and self.master_key is not None:
            key_store = "memory"
        if key_store is not None:
            from ember.gateway.keys import make_key_store

            key_store = make_key_store(key_store)
        self.key_store = key_store
        self.team_budgets = team_budgets_from(team_budgets)
        self.budgets: Any = None
        if budget is not None or key_store is not None or self.team_budgets:
            from ember.gateway.budgets import Budgets

            self.budgets = Budgets(budget, budget_store, fail_open=budget_fail_open)
        elif budget_store is not None:
            raise ValueError("budget_store= needs budget=")
        self.prices = Prices()
        self.max_in_flight = max_in_flight
        self.slots = FairShare(max_in_flight, max_queue, queue_timeout)
        self.default_limits, self.key_limits = parse_limits(limits)
        if limit_store is not None and not (self.default_limits or self.key_limits):
            raise ValueError("limit_store= needs limits=")
        self.limit_store = make_limit_store(limit_store)
        from ember.gateway.ledger import ledger_for

        #: limits and budgets in one Redis: one round trip per phase (or None)
        self.ledger = ledger_for(self.limit_store, self.budgets)
        self.auth = Authenticator(self.keys, key_store, self.budgets, self.default_limits,
                                  self.key_limits)
        self.key_cache = self.auth.cache
        self.spend: Any = None
        if spend_log is not None:
            from ember.gateway.spend import SpendLog

            self.spend = spend_log if isinstance(spend_log, SpendLog) else SpendLog(spend_log)
        self._key_secrets = [k.decode() for k in self.keys.values()]

    # -- lifecycle -----------------------------------------------------------------------
    def mount(self) -> Gateway:
        """Register the routes and the startup/shutdown hooks on the app."""
        app, prefix, schemas = self.app, self.prefix, self.schemas
        app.on_startup(self.check_binding)
        for store in (self.key_store, self.spend):
            start = getattr(store, "startup", None)
            if start is not None:
                app.on_startup(start)
        app.on_shutdown(self.aclose)
        if self.master_key is not None:
            from ember.gateway.admin import Admin

            Admin(self, self.master_key).mount(app, prefix)
        from ember.gateway._chat import ChatEndpoint

        chat = ChatEndpoint()
        serve = self.serve

        async def chat_completions(request: Any) -> Response:
            return await serve(request, chat)

        app.add_route(f"{prefix}/chat/completions", chat_completions, ["POST"],
                      name="openai_chat_completions", limits=self.limits,
                      openapi_extra=schemas.CHAT_COMPLETIONS_OPENAPI)
        # the other client vocabularies (issue #22): the same pipeline, their translators
        from ember.gateway import completions, messages, responses

        host = _EndpointHost(self)
        messages.register(app, prefix, host)
        responses.register(app, prefix, host)
        completions.register(app, prefix, host)
        app.add_route(f"{prefix}/embeddings", self.route(self.embeddings), ["POST"],
                      name="openai_embeddings", limits=self.limits,
                      openapi_extra=schemas.EMBEDDINGS_OPENAPI)
        app.add_route(f"{prefix}/models", self.route(self.list_models), ["GET"],
                      name="openai_models", openapi_extra=schemas.MODELS_OPENAPI)
        run, get_model = self.run, self.get_model

        async def model_card(request: Any, model_id: str) -> Response:
            return await run(get_model, request, model_id=model_id)

        app.add_route(f"{prefix}/models/{{model_id:path}}", model_card, ["GET"],
                      name="openai_model", openapi_extra=schemas.MODEL_OPENAPI)
        app.on_miss(prefix, self.miss)
        return self

    def miss(self, request: Any, allow: str | None) -> Response:
        """A 404 (unknown path) or 405 (wrong method) under the prefix, in OpenAI's shape
        (the SDKs raise ``NotFoundError`` / ``APIStatusError`` with its message)."""
        from ember.gateway.errors import openai_error

        where = f"{request.method} {request.path}"
        if allow is None:
            return openai_error(404, f"Invalid URL ({where})", rid=request_id(request))
        methods = ", ".join(m for m in allow.split(", ") if m not in ("HEAD", "OPTIONS"))
        return openai_error(405, f"Invalid method for URL ({where}): use {methods}",
                            code="method_not_allowed", headers={"allow": allow},
                            rid=request_id(request))

    def check_binding(self) -> None:
        """At startup: refuse a keyless gateway bound off loopback (unless allowed); warn
        when per-process budgets run in several workers."""
        state = getattr(self.app, "state", None)
        workers = getattr(state, "worker_count", 1) or 1
        if self.budgets is not None and not getattr(self.budgets.store, "shared", True) and \
                workers > 1:
            logger.warning("mount_openai(%r): budgets are kept in memory and the server runs "
                           "%d workers: each worker has its own budget (up to %d times the "
                           "configured amount). Pass budget_store='redis://...' to share one.",
                           self.prefix, workers, workers)
        if self.keys:
            return
        address = getattr(state, "bound_address", None)
        host = address[0] if address else None
        if host is not None and not _is_loopback(str(host)) and not self.allow_unauthenticated:
            raise RuntimeError(
                f"mount_openai({self.prefix!r}) has no api_keys and the server is bound to "
                f"{host}: anyone who can reach it can spend your model budget. Pass "
                "api_keys=[...], or allow_unauthenticated=True if something in front of the "
                "app authenticates.")
        if not self.allow_unauthenticated:
            logger.warning("mount_openai(%r) serves without api_keys (loopback only); pass "
                           "api_keys=[...] before exposing it", self.prefix)

    async def aclose(self) -> None:
        """At worker shutdown: close provider connections and the stores."""
        # NOTE: the providers' pooled connections of this worker's loop close with it
        from ember.models.api import default_registry

        # NOTE: the spend log first (its queued rows are the record), and one failing
        # close never skips the others
        for store in (self.spend, default_registry(), self.budgets, self.limit_store,
                      self.ledger, self.key_store):
            close = getattr(store, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as exc:
                logger.warning("gateway shutdown: closing %s failed: %s",
                               type(store).__name__, redact(str(exc)))

    @property
    def in_flight(self) -> int:
        """Requests of this worker in flight (streams until they end)."""
        return self.slots.total

    def secrets(self) -> list[str]:
        """What redaction removes from logs: the gateway keys and provider keys."""
        return self._key_secrets + [v for k, v in os.environ.items() if k.endswith("_API_KEY")]

    # -- the route boundary ----------------------------------------------------------------
    async def run(self, handler: Callable[..., Awaitable[Response]], request: Any,
                  **params: Any) -> Response:
        """The route boundary: run ``handler(request, rid, **params)``; typed refusals and
        unexpected errors become OpenAI-shaped responses here, and only here."""
        rid = request_id(request)
        try:
            return await handler(request, rid, **params)
        except GatewayError as exc:
            return exc.response(rid)
        except Exception as exc:  # NOTE: never a bare 500: OpenAI's shape, details logged
            return error_response(exc, rid, self.secrets())

    def route(self, handler: Callable[..., Awaitable[Response]]) -> Callable[..., Any]:
        """An endpoint ``(request)`` running ``handler`` through :meth:`run`."""
        run = self.run

        async def endpoint(request: Any) -> Response:
            return await run(handler, request)

        endpoint.__doc__ = handler.__doc__
        return endpoint

    # -- pipeline steps --------------------------------------------------------------------
    async def authenticate(self, request: Any, endpoint: Any = None) -> Caller:
        """The calling key (:mod:`ember.gateway.auth`), or :class:`Unauthorized`."""
        return await self.auth.authenticate(request, endpoint)

    async def decode(self, request: Any, schema: Any) -> tuple[dict[str, Any], Any]:
        """``(body dict, validated spec)`` or :class:`BadRequest` naming the field."""
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except (orjson.JSONDecodeError, RecursionError) as exc:
            from ember._json import explain

            raise BadRequest(f"The request body is not valid JSON: {explain(exc, raw)}") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        msgspec = self._msgspec
        from ember.gateway import numbers

        try:
            # 5.0 is an integer to JSON Schema and OpenAI: whole floats at integer
            # positions become ints (in body too, which is what is forwarded)
            spec = numbers.decode(raw, body, schema, self.schemas.decode)
        except msgspec.ValidationError as exc:
            text = str(exc)
            param = self.schemas.error_param(text)
            if text.startswith("Object contains unknown field"):
                text = f"Unrecognized request argument supplied: {param}"
            raise BadRequest(f"Invalid request: {text}", param=param,
                             code="invalid_value") from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc}") from None
        return body, spec

    def resolve(self, caller: Caller, model: str) -> _Target:
        """The target of public model name ``model``, or :class:`ModelNotFound`."""
        target = self.targets.get(model)
        if target is None and self.catch_all is not None:
            target = self.catch_all
        if target is None or (caller.models is not None and model not in caller.models):
            raise ModelNotFound(f"The model `{model}` does not exist or you do not have "
                                "access to it.", param="model")
        return target

    async def admit(self, caller: Caller) -> Callable[[], None]:
        """An in-flight slot, shared fairly between keys (:mod:`ember.gateway.fairness`):
        returns the function that gives it back (call it once)."""
        return await self.slots.acquire(caller.name)

    def limits_of(self, caller: Caller) -> KeyLimits | None:
        """The per-key limits of ``caller``, if any."""
        return caller.limits

    async def reserve(self, caller: Caller, target: _Target, tokens: int, cost: float,
                      rid: str) -> Ticket:
        """Take the per-key limits (:class:`RateLimited`) and hold ``tokens``/``cost`` (the
        worst case) on the caller's budgets: :class:`QuotaExceeded` when it does not fit,
        :class:`Overloaded` when the shared store is down (fail closed) unless
        ``budget_fail_open``.  Nothing stays taken when it raises."""
        limits = self.limits_of(caller)
        if self.ledger is not None:
            return await self._reserve_shared(caller, target, limits, tokens, cost, rid)
        verdict = None
        if limits is not None:
            verdict = await self.limit_store.acquire(caller.name, limits, tokens, rid)
            if verdict[0]:
                message, wait, refused = refusal(verdict, limits)
                raise RateLimited(message, wait, refused)
        budgets = self.budgets
        hold = None
        scopes = self.scopes(caller)
        if scopes:
            from ember.gateway.budgets import Refused, StoreUnavailable

            try:
                hold = await budgets.reserve(scopes, tokens, cost)
            except (Refused, StoreUnavailable) as exc:
                if limits is not None:
                    await self.limit_store.release(caller.name, limits, rid, tokens)
                if isinstance(exc, Refused):
                    raise QuotaExceeded("You exceeded your budget for this period (or this "
                                        "request's maximum cost does not fit what is left).",
                                        exc.retry_after) from None
                raise Overloaded("The gateway's budget store is unavailable; retry "
                                 "shortly.", 2, code="budget_store_unavailable") from None
        ticket = Ticket(self, caller, hold, tokens, cost, limits, rid, target.name)
        if verdict is not None and verdict[2:] != (-1.0, -1.0):  # NOTE: not when failed open
            ticket.headers = rate_headers(verdict, limits)
        return ticket

    async def _reserve_shared(self, caller: Caller, target: _Target, limits: Any,
                              tokens: int, cost: float, rid: str) -> Ticket:
        """:meth:`reserve` when the limits and budgets share one Redis: one round trip
        (:mod:`ember.gateway.ledger`)."""
        from ember.gateway.budgets import Hold, StoreUnavailable, reserved_nanos
        from ember.gateway.ledger import NO_LIMITS

        scopes = self.scopes(caller)
        if limits is None and not scopes:
            return Ticket(self, caller, None, tokens, cost, None, rid, target.name)
        budgets = self.budgets
        lines, lefts = budgets.lines(scopes) if scopes else ([], [])
        nanos = reserved_nanos(cost) if scopes else 0
        try:
            answer = await self.ledger.reserve(caller.name, limits.args() if limits else
                                               NO_LIMITS, rid, tokens, lines, nanos)
        except StoreUnavailable as exc:
            if not scopes:  # NOTE: limits fail open, budgets closed (ember.gateway.limits)
                self.limit_store.down(exc)
                return Ticket(self, caller, None, tokens, cost, None, rid, target.name)
            budgets.down(exc)
            if not budgets.fail_open:
                raise Overloaded("The gateway's budget store is unavailable; retry "
                                 "shortly.", 2, code="budget_store_unavailable") from None
            return Ticket(self, caller, None, tokens, cost, None, rid, target.name)
        if scopes:
            budgets.up()
        if limits is not None:
            self.limit_store.up()
        reason = answer[0]
        if reason == 5:
            raise QuotaExceeded("You exceeded your budget for this period (or this "
                                "request's maximum cost does not fit what is left).",
                                lefts[answer[4] - 1])
        if reason:
            message, wait, refused = refusal(answer[:4], limits)
            raise RateLimited(message, wait, refused)
        hold = Hold(lines, tokens, nanos) if scopes else None
        ticket = Ticket(self, caller, hold, tokens, cost, limits, rid, target.name)
        if limits is not None:
            ticket.headers = rate_headers(answer[:4], limits)
        return ticket

    def scopes(self, caller: Caller) -> list[tuple[str, Any]]:
        """The budgets a request of ``caller`` draws on: the key's, its team's."""
        out = []
        if caller.budget is not None:
            out.append((f"k:{caller.name}", caller.budget))
        team = self.team_budgets.get(caller.team) if caller.team else None
        if team is not None:
            out.append((f"t:{caller.team}", team))
        return out

    def chat_worst_case(self, target: _Target, raw: bytes, body: dict[str, Any],
                        params: dict[str, Any], budgeted: bool,
                        document: dict[str, Any] | None = None) -> tuple[int, float]:
        """``(tokens, cost)`` to reserve for a chat request; sets ``max_tokens`` in
        ``params`` when the request has none and the reservation relies on it.
        ``document``: the decoded client body (where its images are; default ``body``)."""
        size = len(raw)
        image_tokens = 0
        # NOTE: images bounded by pixels, not their base64 bytes (a key spelled with
        # \u escapes must not hide an image from the bound)
        if b"image" in raw or b"\\u" in raw:
            from ember.gateway import images

            parts = images.scan(body if document is None else document)
            skipped, image_tokens = images.bound(parts, self.prices.models(target),
                                                 IMAGE_TOKENS)
            size -= skipped
        _prompt, tokens, cost, inject = worst_case(
            self.prices, target, size, 0, body, self.default_max_tokens, image_tokens)
        if inject and budgeted:
            params[self.prices.cap_name(target)] = self.default_max_tokens
        return tokens, cost

    # -- endpoints -------------------------------------------------------------------------
    async def serve(self, request: Any, endpoint: Any) -> Response:
        """The route boundary of every chat-like endpoint (chat/completions, messages,
        responses, completions): :meth:`chat` with errors in ``endpoint``'s shape."""
        from ember.gateway._endpoint import EndpointError, reshape
        from ember.gateway.errors import openai_error

        rid = request_id(request)
        try:
            return reshape(endpoint, await self.chat(request, rid, endpoint))
        except GatewayError as exc:
            return reshape(endpoint, exc.response(rid))
        except EndpointError as exc:
            return reshape(endpoint, openai_error(
                exc.status, exc.message, "server_error" if exc.status >= 500 else
                "invalid_request_error", exc.code, exc.param,
                {"retry-after": "1"} if exc.status == 503 else None, rid))
        except Exception as exc:  # NOTE: never a bare 500: OpenAI's shape, details logged
            return reshape(endpoint, error_response(exc, rid, self.secrets()))

    async def chat(self, request: Any, rid: str, endpoint: Any) -> Response:
        """One chat-like call: steps 1-7 of the module docstring, ``endpoint`` translating
        its client's vocabulary to the internal chat request and back."""
        from ember.gateway._chat import _complete, _GatewayStream, _stream
        from ember.gateway._endpoint import provider_params

        caller = await self.authenticate(request, endpoint)
        release = await self.admit(caller)
        streaming = False
        ticket = None
        try:
            body, spec = await self.decode(request, endpoint.schema)
            call = await endpoint.to_chat(body, spec, caller.name)
            target = self.resolve(caller, call.model)
            budgeted = bool(self.scopes(caller))
            # NOTE: the worst case reads the internal (OpenAI) parameters, whatever the
            # client's vocabulary; the prompt bound is the raw body's size
            tokens, cost = self.chat_worst_case(target, await request.body(),
                                                {**call.extras, **call.params}, call.params,
                                                budgeted, body)
            call.params, dropped = provider_params(target.providers(), call, self.drop_params)
            headers = {"x-ember-dropped-params": ",".join(dropped)} if dropped else None
            if dropped:
                logger.warning("gateway %s: dropped parameters %s (drop_params=True)", rid,
                               ",".join(dropped))
            ticket = await self.reserve(caller, target, tokens, cost, rid)
            ticket.model = call.model
            if call.stream:
                ticket.stream = True
                response = await _stream(target, endpoint, call, rid, caller.name,
                                         ticket.settle, self.secrets, release, headers)
                streaming = isinstance(response, _GatewayStream)
            else:
                # PERF: the rate headers go into the reply as it is made (one encode each,
                # no search for duplicates); an error reply gets them below
                rate = ticket.headers
                response = await _complete(target, endpoint, call, rid, caller.name,
                                           ticket.settle, self.secrets,
                                           {**headers, **rate} if headers and rate else
                                           rate or headers)
                if rate and next(iter(rate)) in response.headers:
                    return response
            if ticket.headers:
                response.headers.update(ticket.headers)
            return response
        finally:
            if not streaming:
                release()
                if ticket is not None and not ticket.settled:
                    await ticket.abandon()

    async def embeddings(self, request: Any, rid: str) -> Response:
        """``POST {prefix}/embeddings``."""
        caller = await self.authenticate(request)
        _body, spec = await self.decode(request, self.schemas.EmbeddingRequest)
        target = self.resolve(caller, spec.model)
        size = len(await request.body())
        ticket = await self.reserve(caller, target, size, size * self.prices.of(target)[0],
                                   rid)
        ticket.model = spec.model
        inputs = [spec.input] if isinstance(spec.input, str) else list(spec.input)
        params = {k: v for k, v in (("dimensions", spec.dimensions), ("user", spec.user))
                  if v is not None}
        try:
            result = await target.embed(inputs, params)
        except Exception as exc:  # NOTE: a failed call bills nothing; the row keeps the error
            await ticket.settle(caller.name, spec.model, [(spec.model, None, exc)])
            raise
        await ticket.settle(caller.name, spec.model,
                            [(result.model_key or spec.model, result.usage, None)])
        b64 = spec.encoding_format == "base64"
        data = [{"object": "embedding", "index": i, "embedding": (
            base64.b64encode(array("f", vec).tobytes()).decode() if b64 else vec)}
            for i, vec in enumerate(result.vectors)]
        usage = result.usage
        return JSONResponse({"object": "list", "data": data, "model": spec.model,
                             "usage": {"prompt_tokens": usage.prompt_tokens,
                                       "total_tokens": usage.prompt_tokens}},
                            headers={"x-request-id": rid})

    async def list_models(self, request: Any, rid: str) -> Response:
        """``GET {prefix}/models``."""
        caller = await self.authenticate(request)
        return JSONResponse({"object": "list", "data": [
            card(m) for m in self.targets if caller.models is None or m in caller.models]})

    async def get_model(self, request: Any, rid: str, model_id: str) -> Response:
        """``GET {prefix}/models/{model_id}``."""
        caller = await self.authenticate(request)
        if model_id not in self.targets or (caller.models is not None and
                                            model_id not in caller.models):
            raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
        return JSONResponse(card(model_id))


class _EndpointHost:
    """What the endpoint modules (:mod:`~ember.gateway.messages`,
    :mod:`~ember.gateway.responses`, :mod:`~ember.gateway.completions`) call on the
    gateway: the pipeline, and its steps answering a ``Response`` instead of raising."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.serve = gateway.serve
        self.secrets = gateway.secrets
        self.response_store = gateway.response_store
        self.limits = gateway.limits

    async def authenticate(self, request: Any, rid: str, endpoint: Any = None) -> Any:
        """The key's name, or the error response."""
        try:
            return (await self.gateway.authenticate(request, endpoint)).name
        except GatewayError as exc:
            return exc.response(rid)

    async def decode(self, request: Any, schema: Any, rid: str) -> Any:
        """``(body, spec)``, or the error response."""
        try:
            return await self.gateway.decode(request, schema)
        except GatewayError as exc:
            return exc.response(rid)

    def target_for(self, model: str) -> Any:
        """The target of ``model``, or None."""
        gateway = self.gateway
        return gateway.targets.get(model) or gateway.catch_all
