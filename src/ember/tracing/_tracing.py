"""The tracing machinery behind :func:`instrument` (see :mod:`ember.tracing`)."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ember.exceptions import ConfigError, require
from ember.tracing import _state

_FEATURE = "ember.tracing"
_PATCHED = False
_QUERY_MAX = 1000  # characters of SQL text put on a database span


class Tracing:
    """One tracer and the propagator Ember uses while instrumented."""

    def __init__(self, tracer_provider: Any = None) -> None:
        trace = require("opentelemetry.trace", "otel", _FEATURE)
        self.propagate = require("opentelemetry.propagate", "otel", _FEATURE)
        self.context = require("opentelemetry.context", "otel", _FEATURE)
        self.trace = trace
        self.provider = tracer_provider if tracer_provider is not None else _env_provider()
        from ember import __version__

        self.tracer = self.provider.get_tracer("ember", __version__)
        self.SERVER = trace.SpanKind.SERVER
        self.CLIENT = trace.SpanKind.CLIENT
        self.INTERNAL = trace.SpanKind.INTERNAL
        self.ERROR = trace.StatusCode.ERROR

    def inject(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``/``baggage``) of the current context."""
        carrier: dict[str, str] = {}
        self.propagate.inject(carrier)
        return carrier

    def shutdown(self) -> None:
        """Flush and stop the provider Ember created (not one that was passed in)."""
        stop = getattr(self.provider, "shutdown", None)
        if stop is not None:
            stop()


def _env_provider() -> Any:
    """An SDK provider exporting over OTLP/HTTP as the ``OTEL_*`` variables say."""
    sdk = require("opentelemetry.sdk.trace", "otel", _FEATURE)
    export = require("opentelemetry.sdk.trace.export", "otel", _FEATURE)
    resources = require("opentelemetry.sdk.resources", "otel", _FEATURE)
    otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel", _FEATURE)
    provider = sdk.TracerProvider(resource=resources.Resource.create())
    provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter()))
    return provider


def instrument(app: Any, *, tracer_provider: Any = None) -> Tracing | None:
    """Trace ``app``'s requests and the model/tool/cache/database calls inside them.

    ``tracer_provider``: an OpenTelemetry ``TracerProvider`` (tests pass one with an
    in-memory exporter); default: one built from the ``OTEL_*`` environment.
    Returns None (and does nothing) when ``OTEL_SDK_DISABLED`` is true.  Raises
    :class:`~ember.exceptions.MissingDependency` naming the ``otel`` extra when
    OpenTelemetry is not installed.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if getattr(app, "_started", False):
        raise ConfigError("instrument(app) must run before the app starts serving")
    tracing = Tracing(tracer_provider)
    _state.active = tracing
    _patch()
    if not any(getattr(mw, "_ember_tracing", False) for mw in app.middleware):
        app.middleware.insert(0, _request_middleware)  # NOTE: outermost: sees every answer
        app._stack = None
    return tracing


def uninstrument(app: Any) -> None:
    """Stop tracing ``app`` (the patched calls go back to doing nothing extra)."""
    app.middleware[:] = [mw for mw in app.middleware if not getattr(mw, "_ember_tracing", False)]
    app._stack = None
    _state.active = None


# -- requests -------------------------------------------------------------------------------


class _HeaderGetter:
    def get(self, carrier: Any, key: str) -> list[str] | None:
        values = carrier.getall(key)
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


async def _request_middleware(request: Any, call_next: Any) -> Any:
    tracing = _state.active
    if tracing is None:
        return await call_next(request)
    parent = tracing.propagate.extract(request.headers, getter=_GETTER)
    route = request.route
    template = getattr(route, "path", None)
    attributes: dict[str, Any] = {"http.request.method": request.method,
                                  "url.path": request.path, "url.scheme": request.scheme,
                                  "network.protocol.version": _version(request)}
    if template:
        attributes["http.route"] = template
    if request.query_string:
        attributes["url.query"] = "<redacted>"  # NOTE: may carry keys; never exported
    host = request.headers.get("host")
    if host:
        name, _, port = host.rpartition(":") if host.rpartition(":")[2].isdigit() \
            else (host, "", "")
        attributes["server.address"] = name
        if port:
            attributes["server.port"] = int(port)
    client = request.client
    if client is not None:
        attributes["client.address"] = client.host
    agent = request.headers.get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    span = tracing.tracer.start_span(f"{request.method} {template}" if template
                                     else request.method, context=parent,
                                     kind=tracing.SERVER, attributes=attributes)
    token = tracing.context.attach(tracing.trace.set_span_in_context(span, parent))
    try:
        response = await call_next(request)
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(tracing.ERROR, type(exc).__name__)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.end()
        raise
    finally:
        tracing.context.detach(token)
    status = response.status_code
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(tracing.ERROR)
        span.set_attribute("error.type", str(status))
    if response.streaming:
        send = response.stream_to

        async def stream_then_end(out: Any) -> None:
            # NOTE: the body is produced after the handler returned: model calls made
            # while streaming (a lazily started model stream) are children of this span
            token = tracing.context.attach(tracing.trace.set_span_in_context(span, parent))
            try:
                await send(out)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                tracing.context.detach(token)
                span.end()
        response.stream_to = stream_then_end
    else:
        span.end()
    return response


_request_middleware._ember_tracing = True  # type: ignore[attr-defined]


def _version(request: Any) -> str:
    minor = request.http_minor
    return "2" if minor == 2 else f"1.{minor}"


# -- calls inside a request ----------------------------------------------------------------------


def _patch() -> None:
    """Wrap the model, tool, cache and database calls once; each checks ``_state.active``."""
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    from ember.ai.tools import ToolRegistry
    from ember.cache.base import RouteCache
    from ember.models.providers._http import HTTPProvider
    from ember.models.providers._stream import HTTPStreaming
    from ember.models.providers.offline import OfflineProvider

    # NOTE: the built-in providers (and the mixin their streaming lives in); a custom
    # provider overriding these methods is not traced
    for cls in (HTTPProvider, HTTPStreaming, OfflineProvider):
        if "complete_async" in cls.__dict__:
            cls.complete_async = _traced_complete(cls.__dict__["complete_async"])  # type: ignore[attr-defined]
        if "stream_async" in cls.__dict__:
            cls.stream_async = _traced_stream(cls.__dict__["stream_async"])  # type: ignore[attr-defined]
        # the sync twins (models() and def handlers, run in the thread pool)
        if "complete" in cls.__dict__:
            cls.complete = _traced_complete_sync(cls.__dict__["complete"])  # type: ignore[attr-defined]
        if "stream" in cls.__dict__:
            cls.stream = _traced_stream_sync(cls.__dict__["stream"])  # type: ignore[attr-defined]
    ToolRegistry.call = _traced_tool(ToolRegistry.call)  # type: ignore[method-assign]
    RouteCache.serve = _traced_cache(RouteCache.serve)  # type: ignore[method-assign]
    try:
        from asyncpg.connection import Connection
    except ImportError:
        return
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        setattr(Connection, name, _traced_query(getattr(Connection, name), name))


def _model_attributes(provider: Any, model: str, stream: bool) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider.name,
            "gen_ai.system": provider.name, "gen_ai.request.model": model,
            "server.address": _host(getattr(provider, "base_url", "") or ""),
            "ember.stream": stream}


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _usage(span: Any, provider: Any, model: str, usage: Any, response_model: Any = None) -> None:
    if usage is None:
        return
    prompt, completion = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
    span.set_attribute("gen_ai.usage.input_tokens", prompt)
    span.set_attribute("gen_ai.usage.output_tokens", completion)
    if response_model:
        span.set_attribute("gen_ai.response.model", str(response_model))
    cost = float(getattr(usage, "cost", 0.0) or 0.0)
    if not cost:
        cost = _cost(provider.name, model, prompt, completion)
    if cost:
        span.set_attribute("ember.cost_usd", cost)


_PRICING: Any = None


def _cost(provider: str, model: str, prompt: int, completion: int) -> float:
    global _PRICING
    if _PRICING is None:
        from ember.models.pricing import Pricing

        _PRICING = Pricing()
    price = _PRICING.price(provider, model)  # NOTE: price(), not cost(): no warning
    if price is None:
        return 0.0
    return (prompt * price.input + completion * price.output) / 1_000_000


def _error(span: Any, tracing: Tracing, exc: BaseException) -> None:
    context = getattr(exc, "context", None)
    kind = context.get("error_type") if isinstance(context, dict) else None
    span.set_attribute("error.type", kind or type(exc).__qualname__)
    span.set_status(tracing.ERROR, type(exc).__name__)


@contextlib.contextmanager
def _call_span(tracing: Tracing, provider: Any, model: str) -> Iterator[Callable[[Any], Any]]:
    """The span of one completed model call (the sync and async wrappers share it):
    yields ``done(response)``, which records the usage and returns the response."""
    with tracing.tracer.start_as_current_span(
            f"chat {model}", kind=tracing.CLIENT, record_exception=True,
            set_status_on_exception=False,
            attributes=_model_attributes(provider, model, False)) as span:

        def done(response: Any) -> Any:
            _usage(span, provider, model, response.usage, response.model_id)
            if response.finish_reason:
                span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
            return response

        try:
            yield done
        except BaseException as exc:
            _error(span, tracing, exc)
            raise


def _traced_complete(original: Any) -> Any:
    @functools.wraps(original)
    async def complete_async(self: Any, prompt: Any, model: str, **params: Any) -> Any:
        tracing = _state.active
        if tracing is None:
            return await original(self, prompt, model, **params)
        with _call_span(tracing, self, model) as done:
            return done(await original(self, prompt, model, **params))
    return complete_async


def _traced_complete_sync(original: Any) -> Any:
    @functools.wraps(original)
    def complete(self: Any, prompt: Any, model: str, **params: Any) -> Any:
        tracing = _state.active
        if tracing is None:
            return original(self, prompt, model, **params)
        with _call_span(tracing, self, model) as done:
            return done(original(self, prompt, model, **params))
    return complete


def _traced_stream_sync(original: Any) -> Any:
    @functools.wraps(original)
    def stream(self: Any, prompt: Any, model: str, **params: Any) -> Any:
        tracing = _state.active
        if tracing is None:
            return original(self, prompt, model, **params)
        return _stream_sync(tracing, original(self, prompt, model, **params), self, model,
                            tracing.context.get_current())
    return stream


class _StreamSpan:
    """The span of one streamed model call (the sync and async streams share it)."""

    __slots__ = ("ctx", "first", "model", "provider", "span", "started", "tracing", "usage")

    def __init__(self, tracing: Tracing, provider: Any, model: str, parent: Any) -> None:
        self.tracing = tracing
        self.provider = provider
        self.model = model
        self.span = tracing.tracer.start_span(
            f"chat {model}", context=parent, kind=tracing.CLIENT,
            attributes=_model_attributes(provider, model, True))
        self.ctx = tracing.trace.set_span_in_context(self.span)
        self.started = time.perf_counter()
        self.first = True
        self.usage = None

    def seen(self, chunk: Any) -> None:
        """A chunk went by: time to first token, usage."""
        if self.first and (chunk.text or chunk.tool_calls):
            self.first = False
            self.span.set_attribute("ember.time_to_first_token_s",
                                    round(time.perf_counter() - self.started, 6))
        if chunk.usage is not None:
            self.usage = chunk.usage

    def failed(self, exc: BaseException) -> None:
        if not isinstance(exc, GeneratorExit):
            self.span.record_exception(exc)
            _error(self.span, self.tracing, exc)

    def end(self) -> None:
        _usage(self.span, self.provider, self.model, self.usage)
        self.span.end()


def _stream_sync(tracing: Tracing, chunks: Any, provider: Any, model: str,
                 parent: Any) -> Any:
    traced = _StreamSpan(tracing, provider, model, parent)
    try:
        while True:
            # NOTE: the span is current while the provider runs (see _stream)
            token = tracing.context.attach(traced.ctx)
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            finally:
                tracing.context.detach(token)
            traced.seen(chunk)
            yield chunk
    except BaseException as exc:
        traced.failed(exc)
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        traced.end()


def _traced_stream(original: Any) -> Any:
    @functools.wraps(original)
    def stream_async(self: Any, prompt: Any, model: str, **params: Any) -> Any:
        tracing = _state.active
        if tracing is None:
            return original(self, prompt, model, **params)
        # NOTE: the parent is the context of the call; the stream may be iterated later,
        # outside it (a StreamingResponse sends after the handler returned)
        return _stream(tracing, original(self, prompt, model, **params), self, model,
                       tracing.context.get_current())
    return stream_async


async def _stream(tracing: Tracing, chunks: Any, provider: Any, model: str,
                  parent: Any) -> Any:
    traced = _StreamSpan(tracing, provider, model, parent)
    try:
        while True:
            # NOTE: the span is current while the provider runs (its upstream request
            # carries the span's traceparent); attached and detached around each step
            token = tracing.context.attach(traced.ctx)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            finally:
                tracing.context.detach(token)
            traced.seen(chunk)
            yield chunk
    except BaseException as exc:
        traced.failed(exc)
        raise
    finally:
        try:
            await chunks.aclose()
        finally:
            traced.end()
def _traced_tool(original: Any) -> Any:
    @functools.wraps(original)
    async def call(self: Any, name: str, arguments: Any = None, timeout: Any = None) -> Any:
        tracing = _state.active
        if tracing is None:
            return await original(self, name, arguments, timeout)
        with tracing.tracer.start_as_current_span(
                f"execute_tool {name}", kind=tracing.INTERNAL,
                attributes={"gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": name}) as span:
            try:
                return await original(self, name, arguments, timeout)
            except BaseException as exc:
                _error(span, tracing, exc)
                raise
    return call


def _traced_cache(original: Any) -> Any:
    @functools.wraps(original)
    async def serve(self: Any, request: Any, call: Any) -> Any:
        tracing = _state.active
        if tracing is None:
            return await original(self, request, call)
        computed = False

        async def compute() -> Any:
            nonlocal computed
            computed = True
            return await call()
        with tracing.tracer.start_as_current_span(
                "cache lookup", kind=tracing.INTERNAL,
                attributes={"ember.cache.backend": type(self.backend).__name__
                            if hasattr(self, "backend") else type(self).__name__}) as span:
            response = await original(self, request, compute)
            span.set_attribute("ember.cache.hit", not computed)
            return response
    return serve


def _traced_query(original: Any, operation: str) -> Any:
    @functools.wraps(original)
    async def query(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        tracing = _state.active
        # NOTE: the pool's own reset on release is not the app's query
        if tracing is None or sql is getattr(self, "_reset_query", None):
            return await original(self, sql, *args, **kwargs)
        words = str(sql).split(None, 1)
        with tracing.tracer.start_as_current_span(
                f"{words[0].upper() if words else operation}", kind=tracing.CLIENT,
                attributes={"db.system.name": "postgresql",
                            "db.operation.name": words[0].upper() if words else operation,
                            "db.query.text": str(sql)[:_QUERY_MAX]}) as span:
            try:
                return await original(self, sql, *args, **kwargs)
            except BaseException as exc:
                _error(span, tracing, exc)
                raise
    return query
