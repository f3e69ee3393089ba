"""``Depends`` and the request-value markers, turned into plan entries at registration.

:func:`marked` builds one :class:`~ember.injection.Param` for a parameter carrying
a marker (``Query``, ``Path``, ``Header``, ``Cookie``, ``Body``, ``Form``, ``File``
or ``Depends``).  A dependency gets its own plan (built by the same
:func:`~ember.injection.analyse`), so it resolves at request time with no
``inspect``: the route's plan is marked ``scoped`` and runs through
:func:`call_scoped`, which holds a per-request :class:`Solved` (the value cache and
the exit stack of generator dependencies).

Generator dependencies: the code after ``yield`` runs after the response is sent
(chained before the response's ``background``; for a streaming response when the
stream ends or is cut), and at once when the handler raises — the exception is
thrown into the generator at its ``yield``, as FastAPI (>= 0.106) does, so
``except``/``finally`` there see it; a different exception raised there replaces it.
A handler without dependencies never reaches this module.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from ember import injection as _inj
from ember.exceptions import ConfigError, RequestValidationError
from ember.params import Body, Cookie, Depends, File, Form, Header, Param, Path, Query, checker

_UPLOAD_TYPES = ("UploadFile",)


def marker_of(hint: Any, default: Any) -> Any:
    """The marker of a parameter (in ``Annotated[...]`` or as its default), or None."""
    if isinstance(default, (Param, Depends)):
        return default
    tp = hint
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = _inj._unwrap_optional(tp)[0]
    if typing.get_origin(tp) is typing.Annotated:
        for meta in reversed(typing.get_args(tp)[1:]):
            if isinstance(meta, (Param, Depends)):
                return meta
    return None


def _strip_markers(hint: Any) -> Any:
    """``Annotated[int, Query(ge=1)]`` → ``int`` (other metadata kept)."""
    if typing.get_origin(hint) is typing.Annotated:
        args = typing.get_args(hint)
        rest = tuple(m for m in args[1:] if not isinstance(m, (Param, Depends)))
        return typing.Annotated[(args[0], *rest)] if rest else args[0]
    return hint


class Build:
    """What :func:`marked` needs to know about the route being registered."""

    __slots__ = ("ai_route", "has_body", "path_params", "stack", "where")

    def __init__(self, path_params: Any, has_body: bool, ai_route: bool, where: str,
                 stack: tuple[Any, ...] = ()) -> None:
        self.path_params = path_params
        self.has_body = has_body
        self.ai_route = ai_route
        self.where = where
        self.stack = stack


def marked(name: str, marker: Any, hint: Any, default: Any, build: Build) -> _inj.Param:
    """The plan entry for parameter ``name`` carrying ``marker``."""
    where = build.where
    if isinstance(marker, Depends):
        return _depends(name, marker, hint, build)
    if default is marker:
        default = marker.default
    elif marker.default is not Ellipsis and default is not _inj._MISSING:
        raise ConfigError(f"{where}: parameter {name!r}: give the default either in "
                          f"{type(marker).__name__}(...) or after '=', not both")
    if default is Ellipsis:
        default = _inj._MISSING
    tp = _inj._strip_annotated(_strip_markers(hint))
    inner, optional = _inj._unwrap_optional(tp)
    inner = _inj._strip_annotated(inner)
    if optional and default is _inj._MISSING and not isinstance(marker, Path):
        default = None
    multi = typing.get_origin(inner) is list
    item = (typing.get_args(inner) or (str,))[0] if multi else inner
    if isinstance(marker, Body):
        return _body(name, marker, tp, default, build)
    if isinstance(marker, Path):
        kind = build.path_params.get(name) if isinstance(build.path_params, dict) else None
        if (marker.alias or name) not in build.path_params:
            raise ConfigError(f"{where}: Path() parameter {marker.alias or name!r} is not in "
                              "the route's path")
        del kind  # NOTE: a typed converter's value is passed as text to ``conv`` again
        conv = _inj.scalar_converter(item, where)
        return _param(name, _inj.PATH, marker.alias or name, checker(marker, conv),
                      _inj._MISSING, marker)
    if isinstance(marker, File):
        return _param(name, _inj.FORM, marker.alias or name,
                      _FormValue(marker.alias or name, item, multi, default, True, marker,
                                 where), default, marker)
    conv = checker(marker, _inj.scalar_converter(item, where))
    if isinstance(marker, Form):
        key = marker.alias or name
        return _param(name, _inj.FORM, key, _FormValue(key, conv, multi, default, False,
                                                        marker, where), default, marker)
    if isinstance(marker, Header):
        key = marker.alias or (name.replace("_", "-") if marker.convert_underscores else name)
        return _param(name, _inj.HEADER, key.lower(),
                      _Lookup("header", key.lower(), conv, multi, default), default, marker)
    if isinstance(marker, Cookie):
        key = marker.alias or name
        return _param(name, _inj.COOKIE, key, _Lookup("cookie", key, conv, False, default),
                      default, marker)
    if isinstance(marker, Query):
        return _param(name, _inj.QUERY, marker.alias or name, conv, default, marker,
                      multi=multi)
    raise ConfigError(f"{where}: unknown parameter marker {marker!r}")


def _param(name: str, source: int, key: str, convert: Any, default: Any, marker: Any,
           multi: bool = False) -> _inj.Param:
    p = _inj.Param(name, source, key, convert, default, multi)
    p.marker = marker
    return p


class _Lookup:
    """A header or cookie value: ``await lookup(request, context, solved)``."""

    __slots__ = ("convert", "default", "key", "multi", "where")

    def __init__(self, where: str, key: str, convert: Any, multi: bool, default: Any) -> None:
        self.where, self.key, self.convert = where, key, convert
        self.multi, self.default = multi, default

    async def __call__(self, request: Any, context: Any, solved: Any) -> Any:
        if self.where == "header":
            headers = request.headers
            raw: Any = headers.getall(self.key) if self.multi else headers.get(self.key)
        else:
            raw = request.cookies.get(self.key)
        if raw is None or raw == []:
            if self.default is _inj._MISSING:
                raise RequestValidationError([{"loc": [self.where, self.key],
                                               "msg": "field required", "type": "missing"}])
            return self.default
        try:
            if self.multi:
                return [self.convert(v) for v in raw]
            return self.convert(raw)
        except ValueError as exc:
            raise RequestValidationError([{"loc": [self.where, self.key], "msg": str(exc),
                                           "type": "value_error", "input": raw}]) from None


class _FormValue:
    """A form field or uploaded file, from ``await request.form()``."""

    __slots__ = ("convert", "default", "file", "key", "multi", "want_bytes")

    def __init__(self, key: str, convert: Any, multi: bool, default: Any, file: bool,
                 marker: Any, where: str) -> None:
        self.key, self.multi, self.default, self.file = key, multi, default, file
        self.want_bytes = False
        if file:
            tp = convert
            if tp is bytes:
                self.want_bytes = True
            elif getattr(tp, "__name__", "") not in _UPLOAD_TYPES:
                raise ConfigError(f"{where}: File() parameter {key!r} must be annotated "
                                  f"UploadFile, bytes or a list of them, not {tp!r}")
            convert = None
        self.convert = convert

    async def __call__(self, request: Any, context: Any, solved: Any) -> Any:
        form = await request.form()
        values = form.getall(self.key, [])
        loc = ["body", self.key]
        if self.file:
            # NOTE: a browser sends an empty file part for "no file chosen"
            values = [v for v in values if not (hasattr(v, "filename") and v.filename == ""
                                                and v.size == 0)]
        if not values:
            if self.default is _inj._MISSING:
                raise RequestValidationError([{"loc": loc, "msg": "field required",
                                               "type": "missing"}])
            return self.default
        out = []
        for v in values if self.multi else values[:1]:
            is_file = not isinstance(v, str)
            if is_file != self.file:
                msg = ("expected an uploaded file, got a text field" if self.file
                       else "expected a text field, got an uploaded file")
                raise RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])
            if self.file:
                out.append(await v.read() if self.want_bytes else v)
                continue
            try:
                out.append(self.convert(v))
            except ValueError as exc:
                raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                               "type": "value_error", "input": v}]) from None
        return out if self.multi else out[0]


# -- Body ---------------------------------------------------------------------------------


def _body(name: str, marker: Body, tp: Any, default: Any, build: Build) -> _inj.Param:
    if not build.has_body:
        raise ConfigError(f"{build.where}: Body() parameter {name!r} needs a request body, but "
                          "the route's methods have none")
    key = marker.alias or name
    value = _BodyValue(key, _validator(tp, build.where), default, marker)
    return _param(name, _inj.BODY, key, value, default, marker)


class _BodyValue:
    """``Body()``: the whole JSON body, or (embedded) the member named ``key``."""

    __slots__ = ("default", "embed", "key", "marker", "validate")

    def __init__(self, key: str, validate: Any, default: Any, marker: Body) -> None:
        self.key, self.validate, self.default, self.marker = key, validate, default, marker
        self.embed = bool(marker.embed)

    def __call__(self, raw: bytes) -> Any:
        value = _inj._loads(raw)
        loc: list[Any] = ["body"]
        if self.embed:
            if not isinstance(value, dict):
                raise RequestValidationError([{"loc": loc, "msg": "expected a JSON object",
                                               "type": "type_error"}])
            if self.key not in value:
                if self.default is not _inj._MISSING:
                    return self.default
                raise RequestValidationError([{"loc": [*loc, self.key],
                                               "msg": "field required", "type": "missing"}])
            value, loc = value[self.key], [*loc, self.key]
        return self.validate(value, loc, self.marker)


def embed_all(params: list[_inj.Param]) -> None:
    """Several ``Body()`` parameters: each is a member of one JSON object (as FastAPI)."""
    bodies = [p for p in params if p.source == _inj.BODY and isinstance(p.convert, _BodyValue)]
    if len(bodies) > 1:
        for p in bodies:
            p.convert.embed = True


def _validator(tp: Any, where: str) -> Callable[[Any, list[Any], Param], Any]:
    """``validate(value, loc, marker)``: a decoded JSON value checked against ``tp``."""
    if tp in (inspect.Parameter.empty, Any):
        return lambda value, loc, marker: value
    uses_pydantic = hasattr(_inj._unwrap_optional(tp)[0], "model_validate")
    if uses_pydantic:
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(tp)

        def check_pydantic(value: Any, loc: list[Any], marker: Param) -> Any:
            try:
                value = adapter.validate_python(value, strict=False)
            except ValidationError as exc:
                raise RequestValidationError([
                    {"loc": [*loc, *e.get("loc", ())], "msg": e.get("msg", "invalid"),
                     "type": e.get("type", "value_error")}
                    for e in exc.errors(include_url=False)]) from None
            return _constrain(value, loc, marker)
        return check_pydantic
    import msgspec

    def check(value: Any, loc: list[Any], marker: Param) -> Any:
        try:
            value = msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                           "type": "validation_error"}]) from None
        return _constrain(value, loc, marker)
    return check


def _constrain(value: Any, loc: list[Any], marker: Param) -> Any:
    if not marker.constraints():
        return value
    try:
        return checker(marker, lambda v: v)(value)
    except (ValueError, TypeError) as exc:
        raise RequestValidationError([{"loc": loc, "msg": str(exc),
                                       "type": "value_error"}]) from None


# -- Depends ------------------------------------------------------------------------------

#: dependency kinds
_ASYNC, _SYNC, _ASYNC_GEN, _SYNC_GEN = range(4)


def _kind(fn: Any) -> int:
    call = fn if inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, type) \
        else getattr(fn, "__call__", fn)  # noqa: B004
    if inspect.isasyncgenfunction(call):
        return _ASYNC_GEN
    if inspect.isgeneratorfunction(call):
        return _SYNC_GEN
    if inspect.iscoroutinefunction(call):
        return _ASYNC
    return _SYNC


class Dependency:
    """One ``Depends(fn)`` of a route: ``fn``'s plan, built once; called per request."""

    __slots__ = ("build", "fn", "kind", "overridden", "plan", "use_cache")

    def __init__(self, fn: Callable[..., Any], use_cache: bool, build: Build) -> None:
        if any(fn is f for f in build.stack):
            chain = " -> ".join(getattr(f, "__qualname__", repr(f)) for f in (*build.stack, fn))
            raise ConfigError(f"{build.where}: dependency cycle: {chain}")
        self.fn = fn
        self.use_cache = use_cache
        self.build = build
        self.kind = _kind(fn)
        where = f"dependency {getattr(fn, '__qualname__', fn)!r}"
        sub = Build(build.path_params, build.has_body, build.ai_route, where,
                    (*build.stack, fn))
        try:
            self.plan = _inj.analyse(fn, build.path_params, build.has_body,
                                     ai_route=build.ai_route, _build=sub)
        except ConfigError as exc:
            raise ConfigError(f"{build.where}: {exc}") from None
        if self.plan.scoped and any(p.source == _inj.RESOURCE for p in self.plan.params) \
                and self.kind not in (_ASYNC, _ASYNC_GEN):
            raise ConfigError(f"{where}: request-scoped resources (a database connection) are "
                              "injected into 'async def' dependencies only")
        #: override callable -> its Dependency (built on first use, then reused)
        self.overridden: dict[Any, Dependency] = {}

    async def __call__(self, request: Any, context: Any, solved: Solved) -> Any:
        dep = self
        overrides = solved.overrides
        if overrides:
            replacement = overrides.get(self.fn)
            if replacement is not None:
                dep = self.overridden.get(replacement)  # type: ignore[assignment]
                if dep is None:
                    dep = Dependency(replacement, self.use_cache, self.build)
                    self.overridden[replacement] = dep
        fn = dep.fn
        cache = solved.cache
        if dep.use_cache and fn in cache:
            return cache[fn]
        plan = dep.plan
        kwargs = await plan.arguments(request, context, solved)
        stack = solved.stack
        if plan.scoped:
            for p in plan.params:
                if p.source == _inj.RESOURCE:
                    kwargs[p.name] = await stack.enter_async_context(p.convert(request))
        kind = dep.kind
        if kind == _ASYNC:
            value = await fn(**kwargs)
        elif kind == _SYNC:
            value = await _run_sync(fn, **kwargs)
        elif kind == _ASYNC_GEN:
            value = await stack.enter_async_context(
                contextlib.asynccontextmanager(fn)(**kwargs))
        else:
            value = await stack.enter_async_context(_SyncGenerator(fn(**kwargs)))
        if dep.use_cache:
            cache[fn] = value
        return value


async def _run_sync(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    from ember._threadpool import run_sync

    return await run_sync(fn, *args, **kwargs)


class _SyncGenerator:
    """A sync generator dependency as an async context manager; each step in the pool."""

    __slots__ = ("gen",)

    def __init__(self, gen: Any) -> None:
        self.gen = gen

    async def __aenter__(self) -> Any:
        value = await _run_sync(next, self.gen, _DONE)
        if value is _DONE:
            raise RuntimeError("generator dependency did not yield")
        return value

    async def __aexit__(self, tp: Any, exc: Any, tb: Any) -> bool:
        gen = self.gen
        if exc is None:
            if await _run_sync(next, gen, _DONE) is _DONE:
                return False
            raise RuntimeError("generator dependency yielded more than once")
        try:
            # NOTE: StopIteration cannot cross a Future: _throw turns it into _DONE
            if await _run_sync(_throw, gen, exc) is _DONE:
                return True  # the dependency handled the exception
        except BaseException as err:
            if err is exc:
                return False
            raise
        raise RuntimeError("generator dependency yielded again after an exception")


_DONE: Any = object()


def _throw(gen: Any, exc: BaseException) -> Any:
    try:
        return gen.throw(exc)
    except StopIteration:
        return _DONE


def _depends(name: str, marker: Depends, hint: Any, build: Build) -> _inj.Param:
    fn = marker.dependency
    if fn is None:
        tp = _inj._unwrap_optional(_inj._strip_annotated(_strip_markers(hint)))[0]
        if not callable(tp) or tp is inspect.Parameter.empty:
            raise ConfigError(f"{build.where}: parameter {name!r}: Depends() without a "
                              "callable needs a class annotation")
        fn = tp
    return _param(name, _inj.DEPENDENCY, name, Dependency(fn, marker.use_cache, build),
                  _inj._MISSING, marker)


#: names of route-level dependencies in a plan: never a Python identifier, never passed on
_HIDDEN = "\x00dependency"


def add_route_dependencies(plan: _inj.Plan, dependencies: tuple[Any, ...], path_params: Any,
                           has_body: bool, ai_route: bool) -> None:
    """``dependencies=[Depends(fn), ...]`` of a route: resolved first, values dropped."""
    build = Build(path_params, has_body, ai_route, "dependencies=")
    entries = []
    for i, dep in enumerate(dependencies):
        if not isinstance(dep, Depends) or dep.dependency is None:
            raise ConfigError(f"dependencies= takes Depends(callable) items, got {dep!r}")
        entries.append(_param(f"{_HIDDEN}{i}", _inj.DEPENDENCY, f"{_HIDDEN}{i}",
                              Dependency(dep.dependency, dep.use_cache, build), _inj._MISSING,
                              dep))
    plan.params[:0] = entries
    plan.kind = "general"
    plan.scoped = True


# -- per request ------------------------------------------------------------------------


class Solved:
    """One request's dependency state: cached values and the generators' exit stack."""

    __slots__ = ("__weakref__", "cache", "overrides", "stack")

    def __init__(self, request: Any) -> None:
        self.cache: dict[Any, Any] = {}
        self.stack = contextlib.AsyncExitStack()
        app = getattr(request, "app", None)
        self.overrides: dict[Any, Any] | None = getattr(app, "dependency_overrides", None)

    async def close(self, exc: BaseException | None) -> None:
        """Run the exit code; ``exc`` is thrown into the generators. Raises what they raise."""
        stack, self.stack = self.stack, None  # type: ignore[assignment]
        if stack is None:
            return
        if exc is None:
            await stack.aclose()
        else:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)


async def call_scoped(plan: _inj.Plan, route: Any, request: Any, context: Any) -> Any:
    """Run ``route``'s handler with its dependencies and resources; a Response."""
    import asyncio

    solved = Solved(request)
    try:
        kwargs = await plan.arguments(request, context, solved)
        if plan.params[0].name.startswith(_HIDDEN):
            for p in plan.params:
                if p.name.startswith(_HIDDEN):
                    del kwargs[p.name]
        fn = route.endpoint
        if any(p.source == _inj.RESOURCE for p in plan.params):
            async with contextlib.AsyncExitStack() as resources:
                for p in plan.params:
                    if p.source == _inj.RESOURCE:
                        kwargs[p.name] = await resources.enter_async_context(p.convert(request))
                result = await fn(**kwargs)
        elif plan.is_async:
            result = await fn(**kwargs)
        else:
            result = await _run_sync(fn, **kwargs)
        response = route._to_response(result)
    except asyncio.CancelledError as exc:
        # NOTE: a disconnect or timeout cancelled us: the exit code still runs, in its own
        # task so that a second cancellation cannot cut it short
        task = asyncio.ensure_future(_close_quietly(solved, exc))
        await asyncio.shield(task)
        raise
    except BaseException as exc:
        await solved.close(exc)  # NOTE: may raise another error (an HTTPException)
        raise
    if solved.stack._exit_callbacks:  # type: ignore[attr-defined]
        _defer(response, solved)
    return response


async def _close_quietly(solved: Solved, exc: BaseException | None) -> None:
    try:
        await solved.close(exc)
    except BaseException as err:
        if err is not exc:
            import logging

            logging.getLogger("ember.dependencies").exception(
                "dependency exit code failed after the response")


def _defer(response: Any, solved: Solved) -> None:
    """Run ``solved``'s exit code once ``response`` is sent (or cut, or dropped)."""
    import asyncio

    loop = asyncio.get_running_loop()
    state = {"done": False}

    async def close(exc: BaseException | None = None) -> None:
        if not state["done"]:
            state["done"] = True
            await _close_quietly(solved, exc)

    if response.streaming:
        stream_to = response.stream_to

        async def stream_then_close(out: Any) -> None:
            try:
                await stream_to(out)
            except BaseException as exc:
                await asyncio.shield(asyncio.ensure_future(close(exc)))
                raise
            await close()
        response.stream_to = stream_then_close
    background = response.background

    async def after() -> None:
        try:
            await close()
        finally:
            if background is not None:
                result = background()
                if inspect.isawaitable(result):
                    await result
    response.background = after

    def dropped() -> None:  # NOTE: never sent (the connection went away first)
        if not state["done"] and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(close()))
    weakref.finalize(response, dropped)


def flat_params(plan: _inj.Plan, hints: dict[str, Any]
                ) -> Iterator[tuple[_inj.Param, dict[str, Any]]]:
    """Every request value ``plan`` reads, its dependencies' included (for OpenAPI):
    ``(entry, type hints of the function it belongs to)``, each value once."""
    seen: set[tuple[int, str]] = set()

    def walk(plan: _inj.Plan, hints: dict[str, Any]
             ) -> Iterator[tuple[_inj.Param, dict[str, Any]]]:
        for p in plan.params:
            if p.source == _inj.DEPENDENCY:
                yield from walk(p.convert.plan, p.convert.plan.hints)
                continue
            mark = (p.source, p.key)
            if mark in seen and p.source != _inj.REQUEST:
                continue
            seen.add(mark)
            yield p, hints
    yield from walk(plan, hints)


__all__ = ["Body", "Build", "Cookie", "Dependency", "Depends", "File", "Form", "Header",
           "Path", "Query", "Solved", "call_scoped", "embed_all", "flat_params", "marked",
           "marker_of"]
