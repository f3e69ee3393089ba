"""``Depends``: dependencies resolved from plans built at registration.

A ``Depends(fn)`` parameter (see :mod:`ember._markers` for the other markers) becomes a
:class:`Dependency` with its own plan (built by the same
:func:`~ember.injection.analyse`, handed down in its :class:`~ember._plan.Build`: this
module imports nothing above it), so it resolves at request time with no
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
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ember import _plan as _inj
from ember._markers import _param, _strip_markers
from ember._plan import Build
from ember.exceptions import ConfigError
from ember.params import Depends

if TYPE_CHECKING:
    from ember.injection import Plan

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
                    (*build.stack, fn), analyse=build.analyse)
        try:
            self.plan: Plan = build.analyse(fn, build.path_params, build.has_body,
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
                    try:
                        dep = Dependency(replacement, self.use_cache, self.build)
                    except ConfigError as exc:  # NOTE: built on first use: name the override
                        raise ConfigError(
                            f"app.dependency_overrides[{_name(self.fn)}] = "
                            f"{_name(replacement)}: {exc}") from None
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


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


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


def depends_param(name: str, marker: Depends, hint: Any, build: Build) -> _inj.Param:
    """The plan entry of a ``Depends(...)`` parameter."""
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


def add_route_dependencies(plan: Plan, dependencies: tuple[Any, ...], build: Build) -> None:
    """``dependencies=[Depends(fn), ...]`` of a route: resolved first, values dropped.

    Called through :func:`ember.injection.add_route_dependencies`, which builds ``build``.
    """
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


async def call_scoped(plan: Plan, route: Any, request: Any, context: Any) -> Any:
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


def flat_params(plan: Plan, hints: dict[str, Any]
                ) -> Iterator[tuple[_inj.Param, dict[str, Any]]]:
    """Every request value ``plan`` reads, its dependencies' included (for OpenAPI):
    ``(entry, type hints of the function it belongs to)``, each value once."""
    seen: set[tuple[int, str]] = set()

    def walk(plan: Plan, hints: dict[str, Any]
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


__all__ = ["Dependency", "Solved", "add_route_dependencies", "call_scoped", "depends_param",
           "flat_params"]
