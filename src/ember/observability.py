"""Request ids and Prometheus metrics, as opt-in middleware.

``app.add_middleware(RequestIDMiddleware())`` echoes or creates an
``X-Request-ID`` per request (``request.state.request_id``).
``metrics = Metrics(); app.add_middleware(metrics); metrics.mount(app)`` serves
``/metrics`` in the Prometheus text format: request counts by method, route and
status, a latency histogram, requests in flight, and model tokens and cost (every
model call through ``ember.api.models``, the gateway and ``ai_route`` is recorded
by :func:`record_model_call` from the model registry; gateway usage per key by
:func:`record_key_usage`). Nothing here costs anything unless it is added.

Across workers: under ``workers=N`` the supervisor gives the workers a shared
temporary directory (``EMBER_METRICS_DIR``); each worker also writes its
totals into its own memory-mapped file there (prometheus_client's
``MmapedDict``, the file format of its multiprocess mode), and ``/metrics``
renders the sum over every worker, whichever worker answers. A dead worker's
counters stay (totals never go down); its in-flight gauge is dropped; the
directory is removed when the supervisor exits. Without prometheus_client
(``pip install 'ember-api[metrics]'``) the numbers stay per worker, with a
warning.

Labels: ``Metrics(const_labels={"host": "web-1", "region": "eu"})`` adds those labels to
every sample (several hosts scraped into one Prometheus); ``worker_label=True`` renders
one series per worker process with a ``worker="<pid>"`` label instead of the sum.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import threading
import time
import uuid
import weakref
from typing import Any

logger = logging.getLogger("ember.metrics")
METRICS_DIR_ENV = "EMBER_METRICS_DIR"

_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestIDMiddleware:
    """Propagate a client's ``X-Request-ID`` (when well-formed) or make one."""

    def __init__(self, header: str = "x-request-id") -> None:
        self.header = header.lower()

    async def __call__(self, request: Any, call_next: Any) -> Any:
        given = request.headers.get(self.header)
        rid = given if given and _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
        request.state.request_id = rid
        response = await call_next(request)
        response.headers[self.header] = rid
        return response


class _SharedStore:
    """This process's totals in ``<dir>/<pid>.db`` (+ ``live_<pid>.db`` for gauges)."""

    def __init__(self, directory: str, mmaped_dict: Any) -> None:
        pid = os.getpid()
        self.directory = directory
        self.counters = mmaped_dict(os.path.join(directory, f"{pid}.db"))
        self.live = mmaped_dict(os.path.join(directory, f"live_{pid}.db"))
        self.values: dict[str, float] = {}

    def inc(self, key: str, amount: float) -> None:
        value = self.values.get(key, 0.0) + amount
        self.values[key] = value
        self.counters.write_value(key, value, 0.0)

    def set_live(self, key: str, value: float) -> None:
        self.live.write_value(key, value, 0.0)

    def read_all(self) -> dict[str, float]:
        """Sum of every worker's values (live gauges of dead workers are gone)."""
        total: dict[str, float] = {}
        for values in self.read_per_worker().values():
            for key, value in values.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def read_per_worker(self) -> dict[str, dict[str, float]]:
        """Every worker's values, by pid (its counters and live gauges together)."""
        from prometheus_client.mmap_dict import MmapedDict

        out: dict[str, dict[str, float]] = {}
        for path in glob.glob(os.path.join(self.directory, "*.db")):
            pid = os.path.basename(path)[:-3].removeprefix("live_")
            try:
                values = MmapedDict.read_all_values_from_file(path)
            except (OSError, ValueError):  # a file removed or being created right now
                continue
            mine = out.setdefault(pid, {})
            for key, value, _ts, _pos in values:
                mine[key] = mine.get(key, 0.0) + value
        return out


_store: _SharedStore | bool | None = None  # None: not looked up yet in this process


def _reset_store_after_fork() -> None:
    global _store
    _store = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_store_after_fork)


def _shared_store() -> _SharedStore | None:
    global _store
    if _store is None:
        directory = os.environ.get(METRICS_DIR_ENV)
        _store = False
        if directory and os.path.isdir(directory):
            try:
                from prometheus_client.mmap_dict import MmapedDict
            except ImportError:
                logger.warning("metrics are per worker: install prometheus_client "
                               "(pip install 'ember-api[metrics]') to sum them over workers")
            else:
                _store = _SharedStore(directory, MmapedDict)
    return _store or None


def forget_worker(pid: int) -> None:
    """Called by the supervisor when worker ``pid`` is gone: drop its live gauges."""
    directory = os.environ.get(METRICS_DIR_ENV)
    if directory:
        try:
            os.remove(os.path.join(directory, f"live_{pid}.db"))
        except OSError:
            pass


def _key(*parts: Any) -> str:
    return json.dumps(parts, separators=(",", ":"))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and histograms kept per worker, rendered for Prometheus."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS, path: str = "/metrics",
                 *, const_labels: dict[str, str] | None = None,
                 worker_label: bool = False) -> None:
        self.const_labels = _check_labels(const_labels)
        if not isinstance(worker_label, bool):
            from ember.exceptions import ConfigError

            raise ConfigError(f"worker_label must be True or False, got {worker_label!r}")
        self.worker_label = worker_label
        self.buckets = tuple(sorted(buckets))
        self.path = path
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts + sum + count
        self.in_flight = 0
        self.model_tokens: dict[tuple[str, str], int] = {}
        self.model_cost: dict[str, float] = {}
        self.model_requests: dict[str, int] = {}
        self.key_usage: dict[tuple[str, str, str], float] = {}  # (key name, model, kind)
        self.counters: dict[str, float] = {}  # other counters by metric name (#20)
        self.protocols: dict[str, int] = {}  # requests by protocol ("http/1.1", "http/3")
        _active.add(self)

    async def __call__(self, request: Any, call_next: Any) -> Any:
        if request.path == self.path:
            return await call_next(request)
        self._set_in_flight(1)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            self._set_in_flight(-1)
        route = request.route.path if request.route is not None else "<unmatched>"
        self.observe(request.method, route, response.status_code, time.perf_counter() - started)
        self._count_protocol(request.http_minor)
        return response

    def _count_protocol(self, minor: int) -> None:
        """One request over ``http/1.0``, ``http/1.1``, ``http/2`` or ``http/3``."""
        name = f"http/1.{minor}" if minor < 2 else f"http/{minor}"
        store = _shared_store()
        with self._lock:
            if store is not None:
                store.inc(_key("proto", self.path, name), 1)
            self.protocols[name] = self.protocols.get(name, 0) + 1

    def _set_in_flight(self, delta: int) -> None:
        self.in_flight += delta
        store = _shared_store()
        if store is not None:
            store.set_live(_key("inflight", self.path), self.in_flight)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        store = _shared_store()
        with self._lock:
            if store is not None:
                ns = self.path
                store.inc(_key("req", ns, method, route, status), 1)
                index = next((i for i, b in enumerate(self.buckets) if seconds <= b),
                             len(self.buckets))
                store.inc(_key("bucket", ns, method, route, index), 1)
                store.inc(_key("sum", ns, method, route), seconds)
            key = (method, route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.latency.get((method, route))
            if hist is None:
                hist = self.latency[(method, route)] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    hist[i] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def record_model_usage(self, model: str, prompt_tokens: int, completion_tokens: int,
                           cost: float = 0.0) -> None:
        """Count a model call's tokens and cost (USD)."""
        store = _shared_store()
        with self._lock:
            if store is not None:
                ns = self.path
                store.inc(_key("tokens", ns, model, "prompt"), prompt_tokens)
                store.inc(_key("tokens", ns, model, "completion"), completion_tokens)
                store.inc(_key("cost", ns, model), cost)
                store.inc(_key("calls", ns, model), 1)
            for kind, n in (("prompt", prompt_tokens), ("completion", completion_tokens)):
                self.model_tokens[(model, kind)] = self.model_tokens.get((model, kind), 0) + n
            self.model_cost[model] = self.model_cost.get(model, 0.0) + cost
            self.model_requests[model] = self.model_requests.get(model, 0) + 1

    def record_key_usage(self, key: str, model: str, prompt_tokens: int,
                         completion_tokens: int, cost: float = 0.0) -> None:
        """Count a gateway key's tokens and cost (USD) on ``model`` (``key`` is a name,
        never the secret)."""
        store = _shared_store()
        with self._lock:
            for kind, n in (("prompt", prompt_tokens), ("completion", completion_tokens),
                            ("cost", cost)):
                if store is not None:
                    store.inc(_key("keyuse", self.path, key, model, kind), n)
                k = (key, model, kind)
                self.key_usage[k] = self.key_usage.get(k, 0) + n

    def record_counter(self, name: str, n: float = 1) -> None:
        """Add ``n`` to counter ``name`` (e.g. ``ember_gateway_spend_dropped_total``)."""
        store = _shared_store()
        with self._lock:
            if store is not None:
                store.inc(_key("ctr", self.path, name), n)
            self.counters[name] = self.counters.get(name, 0) + n

    def _summed_over_workers(self, store: _SharedStore,
                             values: dict[str, float] | None = None) -> tuple[Any, ...]:
        requests: dict[tuple[str, str, int], int] = {}
        latency: dict[tuple[str, str], list[float]] = {}
        in_flight = 0
        tokens: dict[tuple[str, str], int] = {}
        cost: dict[str, float] = {}
        key_usage: dict[tuple[str, str, str], float] = {}
        counters: dict[str, float] = {}
        protocols: dict[str, int] = {}
        width = len(self.buckets)
        for raw, value in (store.read_all() if values is None else values).items():
            kind, ns, *rest = json.loads(raw)
            if ns != self.path:
                continue
            if kind == "req":
                requests[(rest[0], rest[1], int(rest[2]))] = int(value)
            elif kind in ("bucket", "sum"):
                hist = latency.setdefault((rest[0], rest[1]), [0.0] * (width + 2))
                if kind == "sum":
                    hist[-2] += value
                else:
                    for i in range(int(rest[2]), width):  # cumulative buckets
                        hist[i] += value
                    hist[-1] += value
            elif kind == "inflight":
                in_flight += int(value)
            elif kind == "tokens":
                tokens[(rest[0], rest[1])] = int(value)
            elif kind == "cost":
                cost[rest[0]] = value
            elif kind == "keyuse":
                key_usage[(rest[0], rest[1], rest[2])] = value
            elif kind == "ctr":
                counters[rest[0]] = value
            elif kind == "proto":
                protocols[rest[0]] = int(value)
        return requests, latency, in_flight, tokens, cost, key_usage, counters, protocols

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4), summed over workers
        (or one series per worker with ``worker_label=True``)."""
        store = _shared_store()
        const = "".join(f'{k}="{_escape(v)}",' for k, v in self.const_labels.items())
        with self._lock:
            if store is not None and self.worker_label:
                groups = [(f'{const}worker="{pid}",', self._summed_over_workers(store, values))
                          for pid, values in sorted(store.read_per_worker().items())]
            elif store is not None:
                groups = [(const, self._summed_over_workers(store))]
            else:
                mine = f'worker="{os.getpid()}",' if self.worker_label else ""
                groups = [(const + mine, (self.requests, self.latency, self.in_flight,
                                          self.model_tokens, self.model_cost,
                                          self.key_usage, self.counters,
                                          self.protocols))]
        return _merge([self._format(*data, extra=extra) for extra, data in groups])

    def _format(self, requests: dict[tuple[str, str, int], int],
                latency: dict[tuple[str, str], list[float]], in_flight: int,
                model_tokens: dict[tuple[str, str], int], model_cost: dict[str, float],
                key_usage: dict[tuple[str, str, str], float],
                counters: dict[str, float] | None = None,
                protocols: dict[str, int] | None = None, extra: str = "") -> str:
        out = ["# HELP ember_requests_total HTTP requests by method, route and status.",
               "# TYPE ember_requests_total counter"]
        for (method, route, status), n in sorted(requests.items()):
            out.append(f'ember_requests_total{{{extra}method="{method}",'
                       f'route="{_escape(route)}",status="{status}"}} {n}')
        out += ["# HELP ember_request_duration_seconds Request latency.",
                "# TYPE ember_request_duration_seconds histogram"]
        for (method, route), hist in sorted(latency.items()):
            labels = f'{extra}method="{method}",route="{_escape(route)}"'
            for bound, count in zip(self.buckets, hist, strict=False):
                out.append(f'ember_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                           f"{int(count)}")
            out.append(f'ember_request_duration_seconds_bucket{{{labels},le="+Inf"}} '
                       f"{int(hist[-1])}")
            out.append(f"ember_request_duration_seconds_sum{{{labels}}} {hist[-2]:.6f}")
            out.append(f"ember_request_duration_seconds_count{{{labels}}} {int(hist[-1])}")
        out += ["# HELP ember_requests_in_flight Requests being handled now.",
                "# TYPE ember_requests_in_flight gauge",
                f"ember_requests_in_flight{{{extra.rstrip(',')}}} {in_flight}"
                if extra else f"ember_requests_in_flight {in_flight}",
                "# HELP ember_model_tokens_total Model tokens by model and kind.",
                "# TYPE ember_model_tokens_total counter"]
        for (model, kind), n in sorted(model_tokens.items()):
            out.append(f'ember_model_tokens_total{{{extra}model="{_escape(model)}",'
                       f'kind="{kind}"}} {n}')
        out += ["# HELP ember_model_cost_usd_total Model cost in USD.",
                "# TYPE ember_model_cost_usd_total counter"]
        for model, cost in sorted(model_cost.items()):
            out.append(f'ember_model_cost_usd_total{{{extra}model="{_escape(model)}"}} '
                       f"{cost:.8f}")
        if key_usage:
            out += ["# HELP ember_gateway_key_tokens_total Gateway tokens by key and model.",
                    "# TYPE ember_gateway_key_tokens_total counter"]
            out += [f'ember_gateway_key_tokens_total{{{extra}key="{_escape(k)}",model="'
                    f'{_escape(m)}",kind="{kind}"}} {int(n)}'
                    for (k, m, kind), n in sorted(key_usage.items()) if kind != "cost"]
            out += ["# HELP ember_gateway_key_cost_usd_total Gateway cost by key and model.",
                    "# TYPE ember_gateway_key_cost_usd_total counter"]
            out += [f'ember_gateway_key_cost_usd_total{{{extra}key="{_escape(k)}",model="'
                    f'{_escape(m)}"}} {n:.8f}'
                    for (k, m, kind), n in sorted(key_usage.items()) if kind == "cost"]
        if protocols:
            out += ["# HELP ember_requests_by_protocol_total HTTP requests by protocol.",
                    "# TYPE ember_requests_by_protocol_total counter"]
            out += [f'ember_requests_by_protocol_total{{{extra}protocol="{name}"}} {n}'
                    for name, n in sorted(protocols.items())]
        for name, n in sorted((counters or {}).items()):
            out += [f"# HELP {name} {name.replace('_', ' ')}.", f"# TYPE {name} counter",
                    f"{name}{{{extra[:-1]}}} {n:g}" if extra
                    else f"{name} {n:g}"]
        return "\n".join(out) + "\n"

    def mount(self, app: Any) -> None:
        """Serve :meth:`render` at ``self.path`` on ``app``."""
        from ember.responses import Response

        async def metrics() -> Response:
            return Response(self.render(), media_type="text/plain; version=0.0.4")

        app.add_route(self.path, metrics, ["GET"], name="metrics", include_in_schema=False)


_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = frozenset(("method", "route", "status", "le", "model", "kind", "key", "worker"))


def _check_labels(labels: Any) -> dict[str, str]:
    """``const_labels`` checked: Prometheus label names, string values, none reserved."""
    from ember.exceptions import ConfigError

    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise ConfigError(f"const_labels must be a dict of label name -> value, got {labels!r}")
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL.fullmatch(name) or name.startswith("__"):
            raise ConfigError(f"const_labels: {name!r} is not a Prometheus label name "
                              "([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)")
        if name in _RESERVED:
            raise ConfigError(f"const_labels: {name!r} is used by Ember's own metrics; "
                              "choose another name")
        if not isinstance(value, str) or any(c in value for c in "\r\n\x00"):
            raise ConfigError(f"const_labels[{name!r}] must be a one-line string, got {value!r}")
    return dict(labels)


def _merge(texts: list[str]) -> str:
    """Several renderings of the same families as one: HELP/TYPE once, samples grouped."""
    if len(texts) == 1:
        return texts[0]
    order: list[str] = []
    samples: dict[str, list[str]] = {}
    for text in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("# HELP "):
                family = line.split(" ", 3)[2]
                if family not in samples:
                    order.append(family)
                    samples[family] = [line]
            elif line.startswith("# TYPE "):
                if line not in samples[family]:
                    samples[family].append(line)
            elif line:
                samples[family].append(line)
    return "\n".join(line for family in order for line in samples[family]) + "\n"


# NOTE: every live Metrics instance; the model registry feeds them through
# record_model_call() for each call (ember.api.models, the gateway, ai_route).
_active: weakref.WeakSet[Metrics] = weakref.WeakSet()


def record_model_call(model: str, prompt_tokens: int, completion_tokens: int,
                      cost: float = 0.0) -> None:
    """Count one model call's tokens and cost in every live :class:`Metrics`."""
    for metrics in list(_active):
        metrics.record_model_usage(model, prompt_tokens, completion_tokens, cost)


def record_counter(name: str, n: float = 1) -> None:
    """Add ``n`` to counter ``name`` in every live :class:`Metrics`."""
    for metrics in list(_active):
        metrics.record_counter(name, n)


def record_key_usage(key: str, model: str, prompt_tokens: int, completion_tokens: int,
                     cost: float = 0.0) -> None:
    """Count a gateway key's usage in every live :class:`Metrics`."""
    for metrics in list(_active):
        metrics.record_key_usage(key, model, prompt_tokens, completion_tokens, cost)
