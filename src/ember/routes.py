"""Routes and the decorators that register them (shared by apps and blueprints)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from ember.exceptions import ConfigError
from ember.features import wrap_route
from ember.injection import Plan, analyse
from ember.limits import RouteLimits, TokenLimits
from ember.responses import Response, to_response
from ember.route_config import INFER, RouteDoc, check_path_params, output_shaper, parse_path

_HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                           "TRACE"))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))

Handler = Callable[..., Any]


def _first_run_sync(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``ember._threadpool.run_sync``, imported on the first ``def`` handler call."""
    # NOTE: the pool module imports asyncio (and so ssl): building an app must not. The
    # first call rebinds this module's ``run_sync`` to the real one (no cost afterwards).
    global run_sync
    from ember._threadpool import run_sync as real

    run_sync = real
    return real(fn, *args, **kwargs)


run_sync = _first_run_sync


def normalise_methods(methods: Iterable[str] | str | None, default: str = "GET") -> tuple[str, ...]:
    """Upper-cased, de-duplicated methods; ConfigError for unknown ones."""
    if methods is None:
        methods = (default,)
    elif isinstance(methods, str):
        methods = (methods,)
    out: list[str] = []
    for m in methods:
        if not isinstance(m, str):
            raise ConfigError(f"HTTP methods must be strings, got {m!r}")
        up = m.upper()
        if up not in _HTTP_METHODS:
            raise ConfigError(f"unknown HTTP method {m!r}; use one of {sorted(_HTTP_METHODS)}")
        if up not in out:
            out.append(up)
    if not out:
        raise ConfigError("a route needs at least one HTTP method")
    return tuple(out)


class Route:
    """One registered handler: its path template, methods, call plan and options."""

    __slots__ = (
        "_call",
        "_shape",
        "ai",
        "cache",
        "doc",
        "endpoint",
        "include_in_schema",
        "limits",
        "max_body_size",
        "methods",
        "middleware",
        "model",
        "name",
        "path",
        "plan",
        "response_model",
        "status_code",
        "streaming",
        "timeout",
        "token_limits",
        "tools",
        "websocket",
        "websocket_options",
    )

    def __init__(
        self,
        path: str,
        methods: tuple[str, ...],
        endpoint: Handler,
        *,
        name: str | None = None,
        cache: Any = None,
        limits: RouteLimits | None = None,
        token_limits: TokenLimits | None = None,
        ai: bool = False,
        streaming: bool = False,
        model: Any = None,
        tools: Any = None,
        middleware: tuple[Any, ...] = (),
        include_in_schema: bool = True,
        websocket: bool = False,
        websocket_options: dict[str, Any] | None = None,
        status_code: int | None = None,
        response_model: Any = None,
        doc: RouteDoc | None = None,
        dependencies: tuple[Any, ...] = (),
    ) -> None:
        if not callable(endpoint):
            raise ConfigError(f"route {path!r}: handler must be callable, got {endpoint!r}")
        if limits is not None and not isinstance(limits, RouteLimits):
            raise ConfigError(f"route {path!r}: limits= must be a RouteLimits, got {limits!r}")
        if token_limits is not None and not isinstance(token_limits, TokenLimits):
            raise ConfigError(
                f"route {path!r}: token_limits= must be a TokenLimits, got {token_limits!r}"
            )
        if cache is not None and not callable(getattr(cache, "serve", None)):
            raise ConfigError(
                f"route {path!r}: cache= must be a cache such as StaticCache(), RedisCache() or "
                f"MemcachedCache(), got {cache!r}"
            )
        params = parse_path(path)
        if status_code is not None and (
                type(status_code) is not int or not 100 <= status_code <= 599):
            raise ConfigError(f"route {path!r}: status_code= must be an int in 100-599, got "
                              f"{status_code!r}")
        self.path = path
        self.methods = methods
        self.endpoint = endpoint
        self.name = name or getattr(endpoint, "__name__", path)
        self.cache = cache
        self.limits = limits
        self.max_body_size = limits.max_body_size if limits else None
        self.timeout = limits.timeout if limits else None
        self.token_limits = token_limits
        self.ai = ai
        self.streaming = streaming
        self.model = model
        self.tools = tools
        self.middleware = middleware
        self.include_in_schema = include_in_schema and not websocket
        self.websocket = websocket
        self.websocket_options = websocket_options
        self.status_code = status_code
        self.doc = doc or RouteDoc()
        has_body = any(m in _BODY_METHODS for m in methods)
        try:
            self.plan: Plan = analyse(endpoint, params, has_body, ai_route=ai,
                                      websocket=websocket)
            if dependencies:  # NOTE: run for their effect, values not passed (ember.dependencies)
                from ember.injection import add_route_dependencies

                add_route_dependencies(self.plan, dependencies, params, has_body, ai)
        except ConfigError as exc:
            raise ConfigError(f"route {path!r}: {exc}") from None
        check_path_params(path, params, endpoint, self.plan)
        self.response_model = response_model
        self._shape = None if response_model in (None, INFER) else output_shaper(
            response_model, f"route {path!r}")
        # NOTE: features wrap the call (WebSocket, AI routes): ember.features, never imported
        call = wrap_route(self, self._invoke) if websocket or ai else self._invoke
        if cache is not None:
            call = _cached(cache, call)
        for mw in reversed(middleware):  # NOTE: blueprint middleware runs before the cache
            call = _chain(mw, call)
        self._call = call

    def __call__(self, request: Any) -> Any:
        """Run the handler for ``request`` (a coroutine giving a Response)."""
        return self._call(request)

    async def _invoke(self, request: Any, context: Any = None) -> Response:
        plan = self.plan
        kind = plan.kind
        fn = self.endpoint
        if plan.is_async:
            if kind == "none":
                result = await fn()
            elif kind == "request":
                result = await fn(request)
            elif kind == "path":
                result = await fn(**request.path_params)
            elif plan.scoped:  # NOTE: resources (a DB connection), dependencies (Depends)
                return await plan.call_scoped(self, request, context)
            else:
                result = await fn(**await plan.arguments(request, context))
        else:
            # PERF: a dedicated pool with batched wake-ups (ember._threadpool), not run_in_executor
            if kind == "none":
                result = await run_sync(fn)
            elif kind == "path":  # NOTE: run_sync copies the dict; the handler cannot touch it
                result = await run_sync(fn, **request.path_params)
            elif plan.scoped:  # NOTE: dependencies (ember.dependencies)
                return await plan.call_scoped(self, request, context)
            else:
                result = await run_sync(fn, **await plan.arguments(request, context))
        if type(result) is Response:
            return result
        if self.status_code is None and self._shape is None:
            return to_response(result)
        return self._finish(result)

    def _to_response(self, result: Any) -> Response:
        """``result`` as the response :meth:`_invoke` gives (for ember.dependencies)."""
        if type(result) is Response:
            return result
        if self.status_code is None and self._shape is None:
            return to_response(result)
        return self._finish(result)

    def _finish(self, result: Any) -> Response:
        """``status_code=`` and ``response_model=`` applied to a non-Response result."""
        if isinstance(result, Response):
            return result
        status = self.status_code
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
            result, status = result
        if self._shape is not None and result is not None:
            from ember.responses import JSONResponse

            response: Response = JSONResponse(self._shape(result))
        elif result is None and status is not None:
            response = Response(None, status)
        else:
            response = to_response(result)
        if status is not None:
            response.status_code = status
        return response

    def __repr__(self) -> str:
        return f"Route({self.path!r}, methods={list(self.methods)}, name={self.name!r})"


def _chain(mw: Any, nxt: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def call(request: Any) -> Response:
        return to_response(await mw(request, nxt))
    return call


def _cached(cache: Any, nxt: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(request: Any) -> Any:
        return cache.serve(request, functools.partial(nxt, request))
    return call


class RouteDecorators:
    """``get/post/put/patch/delete/head/options/route/ai_route`` for apps and blueprints."""

    def _register(self, path: str, methods: tuple[str, ...], endpoint: Handler,
                  **options: Any) -> None:
        raise NotImplementedError

    def route(
        self,
        path: str,
        methods: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        cache: Any = None,
        limits: RouteLimits | None = None,
        status_code: int | None = None,
        response_model: Any = INFER,
        responses: dict[int | str, Any] | None = None,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        deprecated: bool = False,
        operation_id: str | None = None,
        openapi_extra: dict[str, Any] | None = None,
        include_in_schema: bool = True,
        dependencies: Iterable[Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler for ``methods`` (default GET) on ``path``.

        ``dependencies``: ``[Depends(fn), ...]`` run before the handler for their effect
        (a check that raises, say); their values are not passed to it.

        ``status_code`` is the status of a plain (non-Response) result;
        ``response_model`` converts the result to that type (dropping other fields)
        and documents it; ``responses``, ``summary``, ``description``, ``tags``,
        ``deprecated``, ``operation_id`` and ``openapi_extra`` only shape the OpenAPI
        document (same names as FastAPI's). ConfigError for a bad template or option.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"route path must be a string starting with '/', got {path!r}")
        meths = normalise_methods(methods)
        parse_path(path)
        doc = RouteDoc(summary=summary, description=description, tags=tags,
                       deprecated=deprecated, operation_id=operation_id, responses=responses,
                       response_model=response_model, openapi_extra=openapi_extra,
                       where=f"route {path!r}")

        extra = {"dependencies": tuple(dependencies)} if dependencies else {}

        def decorator(fn: Handler) -> Handler:
            self._register(path, meths, fn, name=name, cache=cache, limits=limits,
                           include_in_schema=include_in_schema, status_code=status_code,
                           response_model=response_model, doc=doc, **extra)
            return fn
        return decorator

    def add_route(self, path: str, endpoint: Handler, methods: Iterable[str] | str | None = None,
                  **options: Any) -> None:
        """Register ``endpoint`` without a decorator."""
        self.route(path, methods, **options)(endpoint)

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.get(path, cache=..., limits=...)``."""
        return self.route(path, ("GET",), **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.post(path, limits=...)``."""
        return self.route(path, ("POST",), **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.put(path)``."""
        return self.route(path, ("PUT",), **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.patch(path)``."""
        return self.route(path, ("PATCH",), **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.delete(path)``."""
        return self.route(path, ("DELETE",), **options)

    def head(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.head(path)`` (GET routes answer HEAD automatically)."""
        return self.route(path, ("HEAD",), **options)

    def options(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        """``@app.options(path)`` (without one, OPTIONS is answered with ``Allow``)."""
        return self.route(path, ("OPTIONS",), **options)

    def websocket(self, path: str, *, name: str | None = None, max_size: int = 1 << 20,
                  ping_interval: float | None = 20, ping_timeout: float = 20,
                  compression: bool = True, send_timeout: float | None = 60,
                  allowed_origins: Iterable[str] | None = None,
                  ) -> Callable[[Handler], Handler]:
        """A WebSocket endpoint: ``async def handler(ws: WebSocket, <path params>)``.

        ``max_size``: bytes per message (1009 past it); ``ping_interval``/``ping_timeout``:
        seconds; ``send_timeout``: seconds a send may wait for a peer that does not read
        (then 1008); ``allowed_origins``: browser origins allowed to connect (``["*"]``
        for any; default: the app's own origin and those a ``CORSMiddleware`` allows) —
        others get 403 before the upgrade (RFC 6455 §10.2).
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"route path must be a string starting with '/', got {path!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            raise ConfigError(f"max_size must be a positive int, got {max_size!r}")
        if send_timeout is not None and not send_timeout > 0:
            raise ConfigError(f"send_timeout must be positive or None, got {send_timeout!r}")
        if isinstance(allowed_origins, str):
            raise ConfigError("allowed_origins must be a list of origins, e.g. "
                              "['https://myapp.com'], not a string")
        origins = None if allowed_origins is None else list(allowed_origins)
        for origin in origins or ():
            if origin != "*" and ("://" not in origin or origin.rstrip("/").count("/") > 2):
                raise ConfigError(f"invalid origin {origin!r}: use scheme://host[:port] "
                                  "without a path, or '*'")
        options = {"max_size": max_size, "ping_interval": ping_interval,
                   "ping_timeout": ping_timeout, "compression": compression,
                   "send_timeout": send_timeout, "allowed_origins": origins}

        def decorator(fn: Handler) -> Handler:
            self._register(path, ("GET",), fn, name=name, websocket=True,
                           websocket_options=options)
            return fn
        return decorator

    def ai_route(self, path: str, methods: Iterable[str] | str | None = ("POST",), *,
                 streaming: bool = False, token_limits: TokenLimits | None = None,
                 tools: Any = None, model: Any = None, name: str | None = None,
                 limits: RouteLimits | None = None, include_in_schema: bool = True,
                 **doc_options: Any) -> Callable[[Handler], Handler]:
        """An AI route: injects ``context: ConversationContext``; streams as SSE when asked.

        ``doc_options`` are :class:`~ember.route_config.RouteDoc`'s (``summary``,
        ``responses``, ``openapi_extra``...).
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"route path must be a string starting with '/', got {path!r}")
        meths = normalise_methods(methods, default="POST")
        parse_path(path)
        try:
            doc = RouteDoc(**doc_options, where=f"route {path!r}")
        except TypeError as exc:
            raise ConfigError(f"ai_route {path!r}: {exc}") from None

        def decorator(fn: Handler) -> Handler:
            self._register(path, meths, fn, name=name, limits=limits, ai=True,
                           streaming=streaming, token_limits=token_limits, tools=tools,
                           model=model, include_in_schema=include_in_schema, doc=doc)
            return fn
        return decorator


def expand_path(template: str, params: dict[str, Any]) -> str:
    """Fill a path template; KeyError-free: a missing parameter is a ConfigError."""
    from ember.routing.templates import expand

    return expand(template, params)
