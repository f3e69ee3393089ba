"""The application: routes, middleware, errors and lifecycle.

A connection asks the app for its interface once, when it is built
(:meth:`Ember._connection_interface`): ``resolve(request)`` routes a request once
(so body limits apply before the body is read; a miss remembers the allowed
methods for 404/405), ``dispatch(request)`` is a coroutine that always ends in a
Response (errors are turned into responses here, never left to the protocol),
and ``upgrade(request, value)`` says whether a WebSocket route takes the
connection.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ember._hints import add_await_hint
from ember._redact import redact
from ember.blueprints import Blueprint, check_prefixes, prefix_for
from ember.datastructures import State
from ember.exceptions import (
    ClientDisconnect,
    ConfigError,
    HTTPException,
    RequestValidationError,
)
from ember.features import entry_point
from ember.hosts import PROBE as _PROBE
from ember.limits import ServerLimits
from ember.responses import JSONResponse, PlainTextResponse, Response, to_response
from ember.routes import Handler, Route, RouteDecorators, expand_path
from ember.routing import Router

logger = logging.getLogger("ember.app")


class Ember(RouteDecorators):
    """An Ember application.

    ``server_limits`` bounds every connection (SPEC §2); ``debug`` puts tracebacks
    in 500 responses; ``trusted_proxies`` lists the addresses (or networks) whose
    forwarding header is believed, and ``forwarded_header`` which one
    (``"x-forwarded-for"``, ``"forwarded"`` or ``"x-real-ip"``; the others are
    ignored, see :mod:`ember.proxies`), ``forwarded_fields`` which of its parts
    (``"for"``, ``"proto"``, ``"host"``; default ``("for", "proto")``);
    ``allowed_hosts`` the ``Host`` names served (wildcards ``*.example.com``; others get
    400 before routing; None: any, see :mod:`ember.hosts`); ``lifespan`` is an
    async context manager factory ``lifespan(app)`` run around the server.
    """

    def __init__(
        self,
        *,
        server_limits: ServerLimits | None = None,
        debug: bool = False,
        trusted_proxies: list[str] | tuple[str, ...] | None = None,
        forwarded_header: str = "x-forwarded-for",
        forwarded_fields: list[str] | tuple[str, ...] = ("for", "proto"),
        allowed_hosts: list[str] | tuple[str, ...] | None = None,
        lifespan: Callable[[Ember], Any] | None = None,
        title: str = "Ember",
        version: str = "0.1.0",
        middleware: list[Any] | None = None,
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        database: Any = None,
    ) -> None:
        from ember._app_args import check_app_args

        check_app_args(debug=debug, title=title, version=version, lifespan=lifespan,
                       middleware=middleware, openapi_url=openapi_url, docs_url=docs_url)
        if server_limits is None:
            server_limits = ServerLimits()
        elif not isinstance(server_limits, ServerLimits):
            raise ConfigError(f"server_limits must be a ServerLimits, got {server_limits!r}")
        from ember.hosts import compile_allowed_hosts
        from ember.proxies import check_forwarded_fields, check_forwarded_header, parse_trusted

        self.server_limits = server_limits
        self.debug = bool(debug)
        self.trusted_proxies = parse_trusted(trusted_proxies)
        self.forwarded_header = check_forwarded_header(forwarded_header)
        self.forwarded_fields = check_forwarded_fields(forwarded_fields)
        self.allowed_hosts = compile_allowed_hosts(allowed_hosts)
        # NOTE(hosts): the request gate (ember.hosts.RequestGate): proxies, probes, hosts
        self._probe_routes: set[Route] = set()
        self._host_exempt_routes: set[Route] = set()
        self._health: Any = None
        self._gate: Any = None
        self._update_gate()
        self.lifespan = lifespan
        self.title = title
        self.version = version
        self.state = State()
        self.router = Router()
        self.routes: list[Route] = []
        self.middleware: list[Any] = []
        self._stack: Callable[[Any], Any] | None = None
        self._exception_handlers: dict[Any, Callable[..., Any]] = {}
        #: (path prefix, handler(request, allow header or None) -> Response): 404/405 there
        self._miss_handlers: list[tuple[str, Callable[[Any, str | None], Response]]] = []
        self._startup: list[Callable[[], Any]] = []
        self._shutdown: list[Callable[[], Any]] = []
        self._lifespan_cm: Any = None
        #: what the lifespan yielded (a dict): each request.state starts as a copy of it
        self._lifespan_state: dict[str, Any] | None = None
        self._started = False
        self._plan: dict[Any, int] | None = None
        self._names: dict[str, Route] = {}
        self._taken: dict[tuple[str, str], Route] = {}
        #: ``{dependency: replacement}`` for ``Depends(dependency)`` (tests); read per request
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._asgi: Any = None
        #: features registered with :meth:`add_feature` (``"mcp"``, ``"database"``, ...)
        self.features: dict[str, Any] = {}
        for mw in middleware or ():
            self.add_middleware(mw)
        self._openapi: dict[str, Any] | None = None
        self.database: Any = None
        if database is not None:
            self.add_database(database)
        if openapi_url:
            self._add_openapi_routes(openapi_url, docs_url)

    def _add_openapi_routes(self, openapi_url: str, docs_url: str | None) -> None:
        async def openapi() -> Response:
            if self._openapi is None:
                from ember.openapi import build_openapi

                self._openapi = build_openapi(self)
            return JSONResponse(self._openapi)

        self._register(openapi_url, ("GET",), openapi, name="openapi", include_in_schema=False)
        if docs_url:
            assets_url = docs_url.rstrip("/") + "/assets"

            async def docs() -> Response:
                from ember.openapi import docs_page
                from ember.responses import HTMLResponse

                return HTMLResponse(docs_page(self.title, openapi_url, assets_url))

            async def docs_asset(name: str) -> Response:
                from ember.openapi import docs_asset

                found = docs_asset(name)
                if found is None:
                    return JSONResponse({"detail": "Not Found"}, 404)
                return Response(found[0], media_type=found[1],
                                headers={"cache-control": "public, max-age=86400"})

            self._register(docs_url, ("GET",), docs, name="docs", include_in_schema=False)
            self._register(assets_url + "/{name}", ("GET",), docs_asset, name="docs_asset",
                           include_in_schema=False)

    # -- registration --------------------------------------------------------

    def _register(self, path: str, methods: tuple[str, ...], endpoint: Handler,
                  **options: Any) -> None:
        route = Route(path, methods, endpoint, **options)
        from ember.route_config import template_key

        key = template_key(path)
        for method in methods:
            other = self._taken.get((method, key))
            if other is not None:
                raise ConfigError(
                    f"route {method} {path!r} ({route.name}) is already registered by "
                    f"{other.name} ({other.path!r}); give one of them another path or method"
                    + ("; or pass openapi_url=None / docs_url=None to Ember()"
                       if other.name in ("openapi", "docs") else "")
                )
        for method in methods:
            self._taken[(method, key)] = route
        self.router.add(path, methods, route)
        self._openapi = None
        self.routes.append(route)
        self._names.setdefault(route.name, route)
        self._replan()

    def add_blueprint(self, blueprint: Blueprint,
                      prefixes: Mapping[str, str] | str | None = None) -> None:
        """Register a blueprint's routes; ``prefixes`` maps methods (``"*"``: all) to prefixes."""
        if not isinstance(blueprint, Blueprint):
            raise ConfigError(f"add_blueprint expects a Blueprint, got {blueprint!r}")
        table = check_prefixes(prefixes)
        for path, methods, endpoint, options in blueprint.expand():
            groups: dict[str, list[str]] = {}
            for method in methods:
                groups.setdefault(prefix_for(table, method), []).append(method)
            for prefix, group in groups.items():
                full = prefix + path if path != "/" or not prefix else prefix
                self._register(full, tuple(group), endpoint, **options)

    def add_middleware(self, middleware: Any) -> None:
        """Add middleware: ``async def mw(request, call_next)`` or an instance with ``__call__``.

        The first added runs outermost.  A middleware may answer instead of the
        handler by returning a response without calling ``call_next``.
        """
        if isinstance(middleware, type):
            raise ConfigError(
                f"add_middleware expects an instance, e.g. {middleware.__name__}(...), not the "
                "class"
            )
        if not callable(middleware):
            raise ConfigError(f"middleware must be callable, got {middleware!r}")
        self.middleware.append(middleware)
        self._stack = None
        self._replan()

    def add_database(self, database: Any) -> None:
        """Use ``database`` (an ``ember.db.Database``): a pool per worker, opened on start.

        Handlers then take ``conn: Connection`` (see docs/database.md).  One per app.
        """
        if not callable(getattr(database, "attach", None)):
            raise ConfigError(f"add_database expects an ember.db.Database, got {database!r}")
        if self.database is not None:
            raise ConfigError("this app already has a Database; use one app per database")
        self.database = database
        self.add_feature("database", database)

    def add_feature(self, name: str, feature: Any) -> Any:
        """Keep ``feature`` as ``app.features[name]`` and attach it (see :mod:`ember.features`).

        A feature with an ``attach(app)`` method is attached now: it adds its routes,
        hooks and handlers through the app's public methods. A later feature of the same
        name replaces the earlier one in ``features`` (its routes stay). Returns ``feature``.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"add_feature expects a non-empty name, got {name!r}")
        self.features[name] = feature
        attach = getattr(feature, "attach", None)
        if callable(attach):
            attach(self)
        return feature

    def middleware_(self, fn: Handler) -> Handler:
        """Decorator form of :meth:`add_middleware`."""
        self.add_middleware(fn)
        return fn

    def exception_handler(self, key: type[BaseException] | int) -> Callable[[Handler], Handler]:
        """Handle an exception type or an HTTP status: ``handler(request, exc) -> response``."""
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, Exception))):
            raise ConfigError(f"exception_handler expects an exception class or status code, "
                              f"got {key!r}")

        def decorator(fn: Handler) -> Handler:
            self._exception_handlers[key] = fn
            return fn
        return decorator

    def on_startup(self, fn: Handler) -> Handler:
        """Run ``fn`` (sync or async) when a worker starts, before it accepts requests."""
        self._startup.append(fn)
        return fn

    def on_shutdown(self, fn: Handler) -> Handler:
        """Run ``fn`` (sync or async) when a worker stops, after requests are done."""
        self._shutdown.append(fn)
        return fn

    def url_for(self, name: str, **params: Any) -> str:
        """The path of the route called ``name``; extra parameters become the query."""
        route = self._names.get(name)
        if route is None:
            raise ConfigError(f"url_for: no route named {name!r}; known: {sorted(self._names)}")
        from ember.routing.templates import path_params

        names = set(path_params(route.path))
        path = expand_path(route.path, {k: v for k, v in params.items() if k in names})
        extra = {k: v for k, v in params.items() if k not in names}
        if extra:
            from urllib.parse import urlencode

            path += "?" + urlencode(extra, doseq=True)
        return path

    # -- AI surfaces --------------------------------------------------------------

    def add_mcp(self, path: str = "/mcp", tools: Any = None, name: str | None = None,
                version: str | None = None, instructions: str | None = None, *,
                allowed_hosts: list[str] | None = None,
                allowed_origins: list[str] | None = None, **options: Any) -> Any:
        """Serve an MCP server (streamable HTTP) exposing ``tools``, resources and prompts.

        Only loopback ``Host`` names and ``allowed_hosts`` are served (421 otherwise);
        a browser ``Origin`` must be loopback or in ``allowed_origins`` (403 otherwise).
        """
        add_mcp = entry_point("app.add_mcp")  # NOTE: features are not imported (ember.features)
        server = add_mcp(self, path=path, tools=tools, name=name or self.title,
                         version=version or self.version, instructions=instructions,
                         allowed_hosts=allowed_hosts, allowed_origins=allowed_origins,
                         **options)
        # NOTE(hosts): the MCP endpoint keeps its own stricter Host check (421, SPEC §6)
        self._host_exempt_routes.update(r for r in self.routes if r.name == f"mcp:{path}")
        return server

    def _update_gate(self) -> None:
        """(Re)build the request gate; None when there is nothing to do per request."""
        from ember.hosts import RequestGate

        needed = self.allowed_hosts is not None or self.trusted_proxies or self._probe_routes
        self._gate = RequestGate(self) if needed else None
        self._replan()

    def add_health(self, liveness: str | None = "/livez", readiness: str | None = "/readyz",
                   checks: list[Any] | None = None, *, timeout: float = 2.0,
                   access_log: bool = False) -> Any:
        """Serve liveness and readiness probes; see :mod:`ember.health` and docs/deployment.md.

        ``checks``: async callables or ``Check(name, fn, timeout=...)`` run by readiness
        besides the app's own dependencies (database pool, Redis caches and sessions).
        """
        add_health = entry_point("app.add_health")
        return add_health(self, liveness=liveness, readiness=readiness, checks=checks,
                          timeout=timeout, access_log=access_log)

    @property
    def _mcp_server(self) -> Any:
        """The MCP server of :meth:`add_mcp` (the last one added), or None."""
        return self.features.get("mcp")

    def _mcp(self) -> Any:
        server = self.features.get("mcp")
        return server if server is not None else self.add_mcp()

    def mcp_resource(self, uri: str, name: str | None = None, description: str | None = None,
                     mime_type: str = "text/plain") -> Callable[[Handler], Handler]:
        """Expose the decorated function's result as an MCP resource at ``uri``."""
        return self._mcp().resource(uri, name=name, description=description,
                                    mime_type=mime_type)

    def mcp_prompt(self, name: str | None = None,
                   description: str | None = None) -> Callable[[Handler], Handler]:
        """Expose the decorated function as an MCP prompt."""
        return self._mcp().prompt(name=name, description=description)

    def mount_openai(self, models: Any, prefix: str = "/v1",
                     api_keys: Any = None, **options: Any) -> None:
        """Serve an OpenAI-compatible API (``/chat/completions``, ``/embeddings``, ``/models``)
        at ``prefix``; ``options``: see :func:`ember.gateway.openai.mount_openai`."""
        entry_point("app.mount_openai")(self, models, prefix=prefix, api_keys=api_keys, **options)

    # -- ASGI interop and static files ------------------------------------------

    def mount(self, prefix: str, app: Any, *, name: str | None = None) -> Any:
        """Run the ASGI 3 application ``app`` for every request under ``prefix`` (HTTP,
        WebSocket and its lifespan, on Ember's engine; see :mod:`ember.asgi`)."""
        return entry_point("app.mount")(self, prefix, app, name=name)

    def mount_static(self, prefix: str, directory: Any, html: bool = False, *,
                     follow_symlinks: bool = False, cache_control: str | None = None,
                     name: str | None = None) -> Any:
        """Serve the files of ``directory`` under ``prefix`` (GET/HEAD, ETag, ranges,
        304; traversal-safe; ``html=True``: ``index.html`` for directories). See
        :mod:`ember.staticfiles`."""
        mount_static = entry_point("app.mount_static")
        return mount_static(self, prefix, directory, html=html,
                            follow_symlinks=follow_symlinks, cache_control=cache_control,
                            name=name)

    @property
    def asgi(self) -> Any:
        """This app as an ASGI 3 callable, for uvicorn / granian / hypercorn."""
        if self._asgi is None:
            self._asgi = entry_point("app.asgi")(self)
        return self._asgi

    # -- lifecycle ------------------------------------------------------------

    def _caches(self) -> list[Any]:
        seen: list[Any] = []
        for route in self.routes:
            if route.cache is not None and all(route.cache is not c for c in seen):
                seen.append(route.cache)
        return seen

    async def startup(self) -> None:
        """Enter the lifespan, run startup hooks, connect caches (once per worker)."""
        if self._started:
            return
        self._started = True
        if self.lifespan is not None:
            self._lifespan_cm = self.lifespan(self)
            state = await self._lifespan_cm.__aenter__()
            if state is not None:  # NOTE: Starlette's lifespan state: copied per request
                if not isinstance(state, Mapping):
                    raise ConfigError(f"the lifespan yielded {type(state).__name__}; yield a "
                                      "dict (it becomes each request.state) or nothing")
                self._lifespan_state = dict(state)
        for fn in self._startup:
            await _maybe_await(fn())
        for cache in self._caches():
            start = getattr(cache, "startup", None)
            if start is not None:
                try:
                    await start()
                except Exception:
                    logger.warning("cache %r failed to start; serving uncached", cache,
                                   exc_info=True)
        self._build_stack()
        self._answer_plan(self._connection_interface()[1])

    async def shutdown(self) -> None:
        """Close caches, run shutdown hooks, leave the lifespan."""
        if not self._started:
            return
        self._started = False
        for cache in self._caches():
            stop = getattr(cache, "shutdown", None)
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    logger.warning("cache %r failed to stop cleanly", cache, exc_info=True)
        for mw in self.middleware:
            # NOTE: middleware holding connections (GlobalTokenBucket's Redis) closes here
            closer = getattr(mw, "shutdown", None) or getattr(getattr(mw, "bucket", None),
                                                              "close", None)
            if callable(closer):
                try:
                    await _maybe_await(closer())
                except Exception:
                    logger.warning("middleware %r failed to close cleanly", mw, exc_info=True)
        store = getattr(self, "conversation_store", None)  # NOTE(hosts): its Redis client
        if callable(getattr(store, "close", None)):
            try:
                await _maybe_await(store.close())
            except Exception:
                logger.warning("conversation store %r failed to close cleanly", store,
                               exc_info=True)
        for fn in self._shutdown:
            try:
                await _maybe_await(fn())
            except Exception:
                logger.exception("shutdown hook %r failed", fn)
        cm, self._lifespan_cm = self._lifespan_cm, None
        self._lifespan_state = None
        if cm is not None:
            await cm.__aexit__(None, None, None)

    # -- the protocol interface ---------------------------------------------------

    def _connection_interface(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any],
                                             Callable[[Any, bytes], bool]]:
        """``(resolve, dispatch, upgrade)``: all a connection needs of the app."""
        if self._gate is not None:
            # NOTE(hosts): a different dispatch, so the connection's fast path (which stands
            # for Ember._handle exactly) never skips the gate
            return self._resolve, self._handle_gated, self._upgrade_request
        return self._resolve, self._handle, self._upgrade_request

    # -- dispatch decided once (issue 24) -------------------------------------------

    def _answer_plan(self, dispatch: Any) -> dict[Any, int]:
        """``{route: kind}``: how a connection answers each route, decided once.

        Kind 1 calls ``fn()``, 2 ``fn(request)``, 3 ``fn(**path_params)`` (4, 5, 6 the
        same for a ``def`` handler, in the thread pool), and the connection writes a
        plain result itself; 0 (or a route missing from the plan) goes through
        ``dispatch`` — middleware, hosts gate, injection, caches, feature wrappers,
        ``status_code=``/``response_model=``.  Decided when the app is prepared for
        serving (:meth:`startup`, or a connection's first use); adding a route or
        middleware, or changing the hosts gate, empties the plan in place, so running
        connections fall back to ``dispatch`` until they are rebuilt.  ``dispatch`` is
        what the connection got from :meth:`_connection_interface`: only
        ``Ember._handle`` itself (not a subclass override, not the hosts gate) may be
        stood for by the fast kinds; with middleware the plan is empty.
        """
        if getattr(dispatch, "__func__", None) is not Ember._handle \
                or getattr(dispatch, "__self__", None) is not self:
            return {route: 0 for route in self.routes} if not self.middleware else {}
        plan = self._plan
        if plan is None:
            plan = self._plan = {} if self.middleware else {
                route: _fast_kind(route) for route in self.routes}
        return plan

    def _direct_routing(self, resolve: Any) -> tuple[Any, Any]:
        """``(app, router)`` when ``resolve`` is this app's own :meth:`_resolve` (not a
        subclass override): a connection may then build and route each request in one
        compiled call; ``(None, None)``: it calls ``resolve``.  Asked once per connection
        (dispatch decided once, issue 24): the wire never inspects the app's classes."""
        if getattr(resolve, "__func__", None) is Ember._resolve \
                and getattr(resolve, "__self__", None) is self:
            return self, self.router
        return None, None

    def _replan(self) -> None:
        """The app changed: connections that hold the plan fall back to ``dispatch``."""
        plan = getattr(self, "_plan", None)
        if plan is not None:
            plan.clear()
            self._plan = None

    async def _handle_gated(self, req: Any) -> Response:
        return await self._handle(req)

    def _resolve(self, req: Any) -> Any:
        """Route ``req`` once: its route (None on a miss, allowed methods remembered)."""
        req.app = self
        route, params = self.router.match_request(req.method, req.raw_path)
        if route is not None:
            req.route = route
            req.path_params = params
        else:
            req._allowed = params or ()
        return route

    def _upgrade_request(self, req: Any, upgrade: bytes) -> bool:
        return self._upgrade(None, req, upgrade)

    def _upgrade(self, proto: Any, req: Any, upgrade: bytes) -> bool:
        """Stop HTTP parsing for a valid WebSocket opening handshake on a WebSocket route."""
        route = req.route
        # NOTE: ``websocket_options`` on a non-WebSocket route: a mounted ASGI app (ember.asgi)
        if route is None or not (route.websocket or route.websocket_options) \
                or b"websocket" not in upgrade.lower():
            return False
        gate = self._gate
        if gate is not None and gate(req) is not None:
            return False  # NOTE(hosts): refused host: _handle answers the 400
        from ember.websockets import handshake_error

        return handshake_error(req) is None

    async def _handle(self, req: Any) -> Response:
        gate = self._gate
        if gate is not None:  # NOTE(hosts): proxies, probes, allowed_hosts (ember.hosts)
            early = gate(req)
            if early is not None:
                return await self._endpoint(req) if early is _PROBE else early
        stack = self._stack
        try:
            if stack is None:
                if self.middleware:
                    stack = self._build_stack()
                else:
                    route = req.route
                    if route is not None:
                        try:
                            response = await route._call(req)
                        except Exception as exc:
                            response = await self._error_response(req, exc)
                    else:
                        response = await self._endpoint(req)
            if stack is not None:
                response = await stack(req)
        except Exception as exc:
            response = await self._error_response(req, exc)
        except BaseException:
            if req._leaving is not None:  # cancelled: a cache releases its waiters
                req._leaving.abandon()
            raise
        if req._leaving is not None:
            # NOTE: a route cache decides on the response as it leaves (Set-Cookie
            # added by middleware, ...): ember.cache.base
            await req._leaving(response)
        return response

    def _build_stack(self) -> Callable[[Any], Any] | None:
        if not self.middleware:
            self._stack = None
            return None
        call: Callable[[Any], Any] = self._endpoint
        for mw in reversed(self.middleware):
            call = _bind(mw, call)
        self._stack = call
        return call

    async def _endpoint(self, req: Any) -> Response:
        """The innermost step: the route (or 404/405/OPTIONS), errors made responses."""
        route = req.route
        try:
            if route is None:
                return self._miss(req)
            return await route._call(req)
        except Exception as exc:
            return await self._error_response(req, exc)

    def _miss(self, req: Any) -> Response:
        if req.method == "OPTIONS" and req.raw_path == b"*":
            # RFC 9110 §9.3.7: "OPTIONS *" asks about the server, not a resource
            methods = {m for route in self.routes for m in route.methods} | {"OPTIONS"}
            if "GET" in methods:
                methods.add("HEAD")
            return Response(None, 204, headers={"allow": ", ".join(sorted(methods))})
        allowed = req._allowed
        if allowed is None:  # NOTE: not resolved by a connection (tests, rewrites)
            _, allowed = self.router.match(req.method, req.path)
        header = None
        if allowed:
            allow = set(allowed)
            if "GET" in allow:
                allow.add("HEAD")
            allow.add("OPTIONS")
            header = ", ".join(sorted(allow))
            if req.method == "OPTIONS":
                return Response(None, 204, headers={"allow": header})
        for prefix, handler in self._miss_handlers:  # NOTE: e.g. the gateway's error shape
            if req.path == prefix or req.path.startswith(prefix + "/"):
                return handler(req, header)
        if header is not None:
            raise HTTPException(405, "Method Not Allowed", headers={"allow": header})
        redirect = self._slash_redirect(req)
        if redirect is not None:
            return redirect
        raise HTTPException(404, "Not Found")

    def _slash_redirect(self, req: Any) -> Response | None:
        """``/items`` ↔ ``/items/`` when only the other one is a route: 307 to it, as
        FastAPI/Starlette's ``redirect_slashes``; the Location is a path (never the Host)."""
        raw = req.raw_path
        other = raw[:-1] if raw.endswith(b"/") else raw + b"/"
        # NOTE: "//evil.example/" must not become "Location: //evil.example" (open redirect)
        if not other.startswith(b"/") or other.startswith(b"//") or b"\\" in other:
            return None
        path = req.path
        route, _ = self.router.match(req.method, path[:-1] if path.endswith("/") else path + "/")
        if route is None:
            return None
        location = other.decode("latin-1")
        if req.query_string:
            location += "?" + req.query_string.decode("latin-1")
        return Response(None, 307, headers={"location": location})

    def on_miss(self, prefix: str, handler: Callable[[Any, str | None], Response]) -> None:
        """Answer a 404 (no route) or 405 (wrong method) under path ``prefix`` with
        ``handler(request, allow)``: ``allow`` is the Allow header of a 405, else None."""
        self._miss_handlers.append((prefix.rstrip("/"), handler))

    async def _error_response(self, req: Any, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):
            raise exc  # NOTE: the client left: no answer, no 500, no error log (protocol)
        if isinstance(exc, TypeError | AttributeError):  # "did you forget `await`?"
            add_await_hint(exc)
        handler = self._find_handler(exc)
        if handler is not None:
            try:
                return to_response(await _maybe_await(handler(req, exc)))
            except Exception as inner:
                if inner is not exc:
                    logger.exception("exception handler %r failed", handler)
                exc = inner
                if isinstance(exc, HTTPException):
                    return _http_error(exc)
                return self._internal_error(req, exc)
        if isinstance(exc, RequestValidationError):
            return JSONResponse({"detail": exc.errors}, 422, headers=exc.headers)
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        return self._internal_error(req, exc)

    def _find_handler(self, exc: Exception) -> Callable[..., Any] | None:
        handlers = self._exception_handlers
        if not handlers:
            return None
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None

    def _internal_error(self, req: Any, exc: Exception) -> Response:
        # NOTE: the traceback is formatted here so that a URL's password or a token in
        # the exception text is masked there too (ember._redact)
        logger.error("unhandled %s in %s %s: %s\n%s", type(exc).__name__, req.method, req.path,
                     redact(exc), redact("".join(traceback.format_exception(exc))).rstrip())
        if self.debug:
            text = "".join(traceback.format_exception(exc))
            return PlainTextResponse(f"Internal Server Error\n\n{text}", 500)
        return JSONResponse({"detail": "Internal Server Error"}, 500)

    # -- running -----------------------------------------------------------------

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        workers: int = 1,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        http2: bool = False,
        http3: bool = False,
        http3_retry: bool = False,
        access_log: bool = False,
        log_level: str = "info",
        reload: bool = False,
        loop: str = "auto",
        io_uring_num_bufs: int | None = None,
        io_uring_buf_size: int | None = None,
        gc_freeze: bool = True,
        **limits: Any,
    ) -> None:
        """Serve until SIGINT/SIGTERM (SPEC §2).  Extra keywords override ServerLimits.

        ``loop``: ``"auto"`` | ``"uvloop"`` | ``"rloop"`` | ``"asyncio"`` (docs/engine.md).
        ``io_uring_num_bufs`` / ``io_uring_buf_size`` (positive ints, else ConfigError):
        accepted for the seed's API, ignored with a log line (no io_uring layer ships).
        ``http3``: HTTP/3 over QUIC on the same port number (UDP; needs the TLS files and
        the ``http3`` extra; ``http3_retry`` validates addresses first: docs/http3.md).
        ``gc_freeze``: after the app's startup, collect once and ``gc.freeze()`` what exists
        (the app, its modules), so the collector's full passes skip it: p99 latency
        under load ~2x lower (docs/engine.md "Garbage collector"); False keeps CPython's
        default behaviour.

        Inside ``ember.server.run.no_serve()`` (the ``ember`` CLI importing the app) or
        with ``EMBER_NO_SERVE=1`` in the environment (the doc tests) it logs one line and
        returns without serving.
        """
        ServerConfig = entry_point("app.run.config")
        config = ServerConfig(host=host, port=port, workers=workers, ssl_certfile=ssl_certfile,
                              ssl_keyfile=ssl_keyfile, http2=http2, http3=http3,
                              http3_retry=http3_retry, access_log=access_log,
                              log_level=log_level, reload=reload, loop=loop,
                              io_uring_num_bufs=io_uring_num_bufs,
                              io_uring_buf_size=io_uring_buf_size, gc_freeze=gc_freeze,
                              limits=self.server_limits.replace(**limits)
                              if limits else self.server_limits)
        entry_point("app.run")(self, config)

    def test_client(self, **kwargs: Any) -> Any:
        """A client that drives this app through the real protocol, in-process."""
        return entry_point("app.test_client")(self, **kwargs)

    def __repr__(self) -> str:
        return f"<Ember {self.title!r} routes={len(self.routes)}>"


def _http_error(exc: HTTPException) -> Response:
    status = exc.status_code
    if status < 200 or status in (204, 304):
        return Response(None, status, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status, headers=exc.headers)


def _bind(mw: Any, nxt: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def call(request: Any) -> Response:
        result = await mw(request, nxt)
        return result if isinstance(result, Response) else to_response(result)
    return call


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _fast_kind(route: Route) -> int:
    """How the connection calls ``route``'s handler on the fast path (see
    ``Ember._answer_plan``); 0 when it must go through ``Ember._handle``: a route whose
    call is not ``Route._invoke`` itself (feature wrappers, a mounted app, a subclass),
    ``status_code=``/``response_model=``, injected parameters."""
    call = route._call
    if getattr(call, "__func__", None) is not Route._invoke \
            or getattr(call, "__self__", None) is not route \
            or route.status_code is not None or route._shape is not None:
        return 0
    plan = route.plan
    kind = {"none": 1, "request": 2, "path": 3}.get(plan.kind, 0)
    if kind and not plan.is_async:
        kind += 3  # 4, 5, 6: the same through the thread pool
    return kind
