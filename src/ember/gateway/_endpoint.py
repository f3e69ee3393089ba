"""What every client vocabulary of the gateway implements: pure translators.

An :class:`Endpoint` turns its client's request into a :class:`ChatCall` (the internal
chat request: OpenAI-shaped messages and parameters) and the model system's answer —
a ``ChatResponse`` or a stream of ``StreamChunk`` — back into its client's vocabulary.
Everything else (authentication, admission, budgets, settling, errors, in-flight slots)
is the gateway's one pipeline in :mod:`ember.gateway.openai`, shared by
``chat/completions``, ``messages``, ``responses`` and ``completions``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ember.models import params as P
from ember.responses import JSONResponse, Response


class EndpointError(Exception):
    """A request the endpoint cannot translate faithfully: a 4xx naming ``param``."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str | None = "unsupported_parameter") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


@dataclass
class ChatCall:
    """One internal chat request, whatever vocabulary the client spoke."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    """OpenAI parameters (``ember.models.params.OPENAI_PARAMS``)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Other OpenAI request fields: sent unchanged to OpenAI-family providers,
    translated or refused for the others (``ember.models.params.for_provider``)."""
    stream: bool = False
    include_usage: bool = False
    state: Any = None
    """The endpoint's own (e.g. the Responses API's stored conversation)."""


class Endpoint:
    """Base of the client vocabularies (the OpenAI chat one is :mod:`._chat`)."""

    #: msgspec Struct validating the request body (400 naming the field otherwise)
    schema: Any = None
    #: ``{"id"}`` prefix of generated objects
    name = "endpoint"

    def credentials(self, request: Any) -> str | None:
        """The key the client presented (``Authorization: Bearer``), or None."""
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    def known_fields(self) -> frozenset[str]:
        """Top-level fields the schema declares (others are ``ChatCall.extras``)."""
        return frozenset(getattr(self.schema, "__struct_fields__", ()))

    async def to_chat(self, body: dict[str, Any], spec: Any, key: str = "") -> ChatCall:
        """The internal request (``key``: the gateway key's name, for what is stored per
        key); raises :class:`EndpointError` for what cannot be faithful."""
        raise NotImplementedError

    async def render(self, result: Any, call: ChatCall) -> dict[str, Any]:
        """The JSON answer for a completed ``ChatResponse``."""
        raise NotImplementedError

    def frames(self, chunks: AsyncIterator[Any], call: ChatCall,
               usage: Any) -> AsyncIterator[bytes]:
        """The SSE body for a stream of ``StreamChunk`` (``usage()`` = the calls' sum)."""
        raise NotImplementedError

    def error(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> Response:
        """An error response from an OpenAI-shaped error body (reshape it here)."""
        return JSONResponse(body, status, headers=headers)

    def error_frame(self, status: int, body: dict[str, Any]) -> bytes:
        """An error inside a started stream."""
        return b"data: " + orjson.dumps(body) + b"\n\n"


def shared_extras(body: dict[str, Any], own: frozenset[str]) -> dict[str, Any]:
    """The fields of a Responses/Completions request outside ``own`` that are OpenAI
    request fields shared with Chat Completions (``prompt_cache_key``, ``service_tier``,
    ...); any other field is a 400 naming it, as OpenAI answers (it would mean something
    else in a chat request, or nothing)."""
    extras: dict[str, Any] = {}
    for name, value in body.items():
        if name in own or value is None:
            continue
        if name not in P.EXTRA_FIELDS or name in P.NOT_OPENAI:
            raise EndpointError(f"Unknown parameter: '{name}'.", name, code="unknown_parameter")
        extras[name] = value
    return extras


def reshape(endpoint: Endpoint, response: Response) -> Response:
    """An OpenAI-shaped error response of the pipeline in ``endpoint``'s shape."""
    if type(endpoint).error is Endpoint.error or response.status_code < 400:
        return response
    try:
        body = orjson.loads(response.body)
    except (orjson.JSONDecodeError, TypeError):
        return response
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return response
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-length", "content-type")}
    return endpoint.error(response.status_code, body, headers)


def provider_params(providers: list[Any], call: ChatCall,
                    drop: bool) -> tuple[dict[str, Any], list[str]]:
    """``call``'s parameters for the providers of its target: ``(params, dropped)``.

    A fallback list sends the same parameters to each of its models: a field that its
    providers treat differently (one passes it, another translates or drops it) is
    refused, or dropped with ``drop``.
    """
    if not providers:
        return {**call.params, **call.extras}, []
    if len(providers) == 1:  # PERF: the common case
        return P.for_provider(providers[0], call.params, call.extras, drop)
    results = [P.for_provider(p, call.params, call.extras, drop) for p in providers]
    out, dropped = dict(results[0][0]), list(results[0][1])
    for other, gone in results[1:]:
        dropped += [g for g in gone if g not in dropped]
        for name in set(out) | set(other):
            if out.get(name) == other.get(name):
                continue
            if not drop:
                raise P.UnsupportedParameterError(
                    "this model list", name, "its providers take it differently; send it "
                    "to one model, or mount with drop_params=True")
            out.pop(name, None)
            if name not in dropped:
                dropped.append(name)
    return out, dropped
