"""``serve(app, config)``: choose in-process or supervised workers.

Also the switch that turns a module-level ``app.run()`` into a no-op while
something else owns the process: the ``ember`` CLI importing an app, a doc or
test harness (:func:`no_serve`, or ``EMBER_NO_SERVE=1`` in the environment).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from ember.server.config import ServerConfig
from ember.server.sockets import BindError, bind, has_reuseport

logger = logging.getLogger("ember.server")

_suppressed: list[str] = []  # why app.run() is a no-op right now (innermost last)


@contextlib.contextmanager
def no_serve(reason: str = "serving is suppressed here") -> Iterator[None]:
    """While inside, ``app.run()`` / ``serve()`` log one line and return at once.

    The ``ember`` CLI imports ``module:app`` inside this, so a module-level
    ``app.run(...)`` does not serve and the CLI's own options win; tests that
    execute doc snippets use it the same way. ``EMBER_NO_SERVE=1`` in the
    environment has the same effect process-wide.
    """
    _suppressed.append(reason)
    try:
        yield
    finally:
        _suppressed.pop()


def serving_suppressed() -> str | None:
    """Why ``serve()`` would be a no-op now, or ``None`` when it would serve."""
    if _suppressed:
        return _suppressed[-1]
    if os.environ.get("EMBER_NO_SERVE", "").strip() not in ("", "0"):
        return "EMBER_NO_SERVE is set"
    if "_pytest" in sys.modules and _importing():
        # NOTE: a seed-style module ends with app.run(); a test importing its `app` would
        # block forever (pytest captures the "listening" line, so nothing shows)
        return ("a module-level app.run() while pytest imports the module (test the app "
                "with app.test_client(); set EMBER_NO_SERVE=1 to silence this)")
    return None


def _importing() -> bool:
    """True when the caller runs inside a module import (its top level)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def serve(app: Any, config: ServerConfig) -> None:
    """Run ``app`` as configured until SIGINT/SIGTERM (SIGHUP: see docs/engine.md).

    A port that cannot be listened on ends the process with one line
    (``SystemExit``) naming host:port and how to pick another.
    """
    reason = serving_suppressed()
    if reason is not None:
        config.apply_log_level()
        log = logger.warning if reason.startswith("a module-level") else logger.info
        log("app.run(port=%d, workers=%d) not serving: %s", config.port, config.workers,
            reason)
        return
    config.apply_log_level()
    from ember.hosts import warn_if_open

    warn_if_open(app, config.host)  # NOTE(hosts): once, in the process that binds
    if config.reload:
        from ember.server.reload import in_reload_child, reload_main_script

        if not in_reload_child():
            reload_main_script(app, config)
            return
    workers = config.workers
    if workers > 1 and not (hasattr(os, "fork") and has_reuseport()):
        warnings.warn(
            "workers>1 needs fork() and SO_REUSEPORT, which this platform lacks; running one "
            "process instead", RuntimeWarning, stacklevel=3,
        )
        workers = 1
    try:
        if workers == 1:
            _serve_in_process(app, config)
        else:
            from ember.server.supervisor import Supervisor

            Supervisor(app, config).run()
    except BindError as exc:
        raise SystemExit(f"error: {exc.strerror}") from None
    logger.info("Ember stopped")


def _serve_in_process(app: Any, config: ServerConfig) -> None:
    from ember.server.worker import run_worker

    sock = bind(config)
    # NOTE: with no supervisor to restart workers, SIGHUP means a graceful stop (the
    # terminal went away, or a process manager asks for a restart it will perform).
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    if hasattr(signal, "SIGHUP") and sys.platform != "win32":
        stop_signals += (signal.SIGHUP,)
    try:
        run_worker(app, config, sock, stop_signals=stop_signals)
    finally:
        sock.close()
