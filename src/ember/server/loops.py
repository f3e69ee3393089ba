"""Which asyncio event loop a worker runs: ``app.run(loop=...)`` / ``ember run --loop``.

Every choice is a real ``asyncio.AbstractEventLoop``: handlers always run in asyncio
Tasks, so httpx, anyio, redis and ``asyncio.timeout`` behave the same on each.

- ``"auto"`` (default): ``EMBER_LOOP`` from the environment when set, else uvloop when
  installed, else the standard asyncio loop.
- ``"uvloop"``: libuv-based (``pip install uvloop``; a dependency of ember-api on Linux
  and macOS).  The fastest engine-correct loop measured (BENCHMARKS.md "Issue 9 — the I/O
  layer").
- ``"rloop"``: the Rust loop by granian's author (``pip install 'ember-api[rloop]'``);
  no TLS (rloop 0.5 raises NotImplementedError for ``ssl=``), so it is refused with TLS.
- ``"asyncio"``: the standard library's selector loop (slowest; no extra package).

Loops are looked up without importing them (``import ember`` stays light) and imported
when the worker starts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading

from ember.exceptions import ConfigError

LOOPS = ("auto", "uvloop", "rloop", "asyncio")
ENV = "EMBER_LOOP"
# NOTE: the order "auto" tries; measured in bench/io_layer.py (BENCHMARKS.md "Issue 9 —
# the I/O layer"): rloop is not in it because it costs more CPU per request than uvloop.
AUTO_ORDER = ("uvloop", "asyncio")
_PIP = {"uvloop": "pip install uvloop", "rloop": "pip install 'ember-api[rloop]'"}


def installed(name: str) -> bool:
    """Whether the loop ``name`` can be imported here (without importing it)."""
    return name == "asyncio" or importlib.util.find_spec(name) is not None


def resolve_loop(name: object, *, tls: bool = False) -> str:
    """The concrete loop (``uvloop``/``rloop``/``asyncio``) for a ``loop=`` setting.

    Raises ConfigError for a value outside :data:`LOOPS` (or a bad ``EMBER_LOOP``), for a
    loop that is not installed (naming the pip command) and for rloop with TLS.
    """
    source = "loop"
    if isinstance(name, str) and name.strip().lower() == "auto" and os.environ.get(ENV, "").strip():
        name, source = os.environ[ENV], ENV
    if not isinstance(name, str) or name.strip().lower() not in LOOPS:
        raise ConfigError(f"{source} must be one of {', '.join(LOOPS)}, got {name!r}")
    name = name.strip().lower()
    if name == "auto":
        return next(n for n in AUTO_ORDER if installed(n))
    if not installed(name):
        raise ConfigError(f"{source}={name!r} needs the {name} package: {_PIP[name]} "
                          f"(or use loop='auto')")
    if name == "rloop" and tls:
        raise ConfigError(f"{source}='rloop' cannot serve TLS (rloop has no SSL support); use "
                          f"loop='uvloop' or 'auto' with ssl_certfile/ssl_keyfile")
    return name


def new_event_loop(name: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop of the kind ``name`` resolves to (see :func:`resolve_loop`)."""
    name = resolve_loop(name)
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "rloop":
        return _rloop_class()()
    return asyncio.new_event_loop()


def _rloop_class() -> type:
    from rloop.loop import RLoop

    class _RLoop(RLoop):
        """rloop's loop without a ResourceWarning after each run.

        NOTE: rloop 0.5.0's ``_run_forever_post`` closes its self-pipe socketpair's fds
        on the Rust side (``_ssock_del``) but leaves the Python socket objects thinking
        they are open: their finalizer warns, then closes the fd numbers again, which by
        then may belong to a client connection.  Detaching them drops the stale numbers.
        """

        def _run_forever_post(self, old_agen_hooks: object) -> None:
            pair = (self._ssock_r, self._ssock_w)
            super()._run_forever_post(old_agen_hooks)
            for sock in pair:
                if sock is not None:
                    sock.detach()

        def _is_main_thread(self) -> bool:
            # NOTE: rloop 0.5.0's remove_signal_handler calls this name, but the method is
            # defined as ``__is_main_thread`` (name-mangled): AttributeError without it.
            return threading.main_thread().ident == threading.current_thread().ident

    return _RLoop
