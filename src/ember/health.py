"""Liveness and readiness probes: ``app.add_health(liveness="/livez", readiness="/readyz")``.

* **Liveness** (``GET /livez``) answers ``200 {"status": "ok"}`` while the worker's event
  loop runs — it checks nothing else, so an outage of Redis or PostgreSQL never makes an
  orchestrator restart healthy processes.
* **Readiness** (``GET /readyz``) runs every check at once, each bounded by its own
  timeout, and answers ``200`` when all pass, else ``503``, with one JSON entry per
  check: ``{"status": "ok"|"fail"|"draining", "checks": {"database": {"status": "ok",
  "ms": 1.2}, "redis-cache": {"status": "fail", "error": "TimeoutError: ..."}}}``.
  The checks are the app's own dependencies — the database pool (``app.add_database``),
  a Redis session store, a Redis conversation store, and each Redis/Memcached route
  cache (reported, but not failing readiness: caches fail open) — plus ``checks=[...]``:
  async callables (raise to fail) or :class:`Check`.
* When the worker receives SIGTERM, readiness answers ``503 {"status": "draining"}`` at
  once, while the server keeps serving for ``ServerLimits(shutdown_delay=...)`` seconds
  before it closes its listeners (docs/deployment.md: Kubernetes).

Probes run before middleware (no authentication, no session store), are exempt from
``allowed_hosts``, and are left out of the access log unless ``access_log=True``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ember._redact import redact
from ember.exceptions import ConfigError
from ember.responses import JSONResponse, Response


class Check:
    """One readiness check: ``await fn()`` must return within ``timeout`` seconds.

    ``fn`` raises (or returns False) to fail.  ``name`` is its key in the JSON report.
    A failing check with ``critical=False`` is reported but keeps readiness 200 (the
    route caches: they fail open, so the host still serves).
    """

    __slots__ = ("critical", "fn", "name", "timeout")

    def __init__(self, name: str, fn: Callable[[], Any], *, timeout: float | None = None,
                 critical: bool = True) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Check name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise ConfigError(f"Check {name!r}: fn must be an async callable, got {fn!r}")
        if timeout is not None:
            _check_timeout(timeout)
        self.name = name
        self.fn = fn
        self.timeout = timeout
        self.critical = bool(critical)

    def __repr__(self) -> str:
        return f"Check({self.name!r})"


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 60:
        raise ConfigError(f"health check timeout must be a number of seconds in (0, 60], "
                          f"got {value!r}")
    return float(value)


class Health:
    """The probes of one app; ``draining`` turns readiness 503 (set on SIGTERM)."""

    def __init__(self, app: Any, checks: list[Check], timeout: float) -> None:
        self.app = app
        self.checks = checks
        self.timeout = timeout
        self.draining = False

    def dependency_checks(self) -> list[Check]:
        """The app's own dependencies, found when readiness is first asked."""
        found: list[Check] = []
        database = getattr(self.app, "database", None)
        if database is not None:
            async def db() -> None:
                result = await database.health(self.timeout)
                if not result.get("ok"):
                    raise ConnectionError(result.get("error", "database unavailable"))
            found.append(Check("database", db))
        seen: list[Any] = []
        for i, cache in enumerate(self.app._caches()):
            ping = getattr(cache, "_ping", None)
            if ping is not None and getattr(cache, "backend", "") != "cache":
                found.append(Check(f"cache:{getattr(cache, 'backend', 'cache')}:{i}", ping,
                                   critical=False))
        for mw in self.app.middleware:
            store = getattr(mw, "store", None)
            if callable(getattr(store, "ping", None)) and all(store is not s for s in seen):
                seen.append(store)
                found.append(Check("sessions", store.ping))
        store = getattr(self.app, "conversation_store", None)
        if callable(getattr(store, "ping", None)):
            found.append(Check("conversations", store.ping))
        return found

    async def _run(self, check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        timeout = check.timeout or self.timeout
        try:
            result = await asyncio.wait_for(_call(check.fn), timeout)
            if result is False:
                raise RuntimeError("check returned False")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = "timed out" if isinstance(exc, TimeoutError) and not str(exc) else str(exc)
            failed = {"status": "fail", "error": f"{type(exc).__name__}: {redact(error)}"[:300],
                      "ms": _ms(started)}
            if not check.critical:
                failed["critical"] = False
            return failed
        return {"status": "ok", "ms": _ms(started)}

    async def readiness(self) -> Response:
        """Run every check concurrently; 200 when all pass, else 503."""
        if self.draining:
            return JSONResponse({"status": "draining", "checks": {}}, 503,
                                headers={"cache-control": "no-store"})
        checks = self.dependency_checks() + self.checks
        results = await asyncio.gather(*(self._run(c) for c in checks))
        report = {c.name: r for c, r in zip(checks, results, strict=True)}
        ok = all(r["status"] == "ok" or not c.critical
                 for c, r in zip(checks, results, strict=True)) and not self.draining
        status = "ok" if ok else ("draining" if self.draining else "fail")
        return JSONResponse({"status": status, "checks": report}, 200 if ok else 503,
                            headers={"cache-control": "no-store"})


async def _call(fn: Callable[[], Any]) -> Any:
    result = fn()
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    return result


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class _ProbeLogFilter(logging.Filter):
    """Drops access-log lines of the probe paths (``ember.access``)."""

    def __init__(self, paths: set[str]) -> None:
        super().__init__()
        self.paths = paths

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(a, str) and a in self.paths for a in args)


def add_health(app: Any, *, liveness: str | None, readiness: str | None,
               checks: list[Any] | None, timeout: float, access_log: bool) -> Health:
    """Register the probes on ``app`` (see :meth:`ember.app.Ember.add_health`)."""
    if getattr(app, "_health", None) is not None:
        raise ConfigError("add_health() was already called on this app")
    if liveness is None and readiness is None:
        raise ConfigError("add_health needs a liveness or a readiness path")
    for path in (liveness, readiness):
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ConfigError(f"health probe paths must start with '/', got {path!r}")
    if liveness is not None and liveness == readiness:
        raise ConfigError("liveness and readiness need different paths")
    timeout = _check_timeout(timeout)
    if isinstance(checks, (str, bytes)) or (checks is not None
                                           and not isinstance(checks, (list, tuple))):
        raise ConfigError(f"checks must be a list of async callables or Check, got {checks!r}")
    compiled = []
    for item in checks or ():
        if isinstance(item, Check):
            compiled.append(item)
        elif callable(item):
            compiled.append(Check(getattr(item, "__name__", "check"), item))
        else:
            raise ConfigError(f"checks: {item!r} is not an async callable or a Check")
    names = [c.name for c in compiled]
    if len(set(names)) != len(names):
        raise ConfigError(f"checks: duplicate names {names}; use Check(name, fn)")
    health = Health(app, compiled, timeout)
    app._health = health
    paths = set()
    if liveness is not None:
        async def livez() -> Response:
            return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})
        app._register(liveness, ("GET",), livez, name="livez", include_in_schema=False)
        paths.add(liveness)
    if readiness is not None:
        async def readyz() -> Response:
            return await health.readiness()
        app._register(readiness, ("GET",), readyz, name="readyz", include_in_schema=False)
        paths.add(readiness)
    app._probe_routes.update(r for r in app.routes if r.path in paths
                             and r.name in ("livez", "readyz"))
    app._update_gate()
    if not access_log:
        logging.getLogger("ember.access").addFilter(_ProbeLogFilter(paths))
    return health
