"""``ember run module:app``, ``ember routes module:app`` and ``ember new NAME``."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the working directory."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise SystemExit(f"error: expected 'module:app', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import module {module_name!r}: {exc}") from None
    app = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise SystemExit(f"error: module {module_name!r} has no attribute {attr!r}") from None
    if callable(app) and not hasattr(app, "_handle"):
        app = app()  # an app factory
    if not hasattr(app, "_handle"):
        raise SystemExit(f"error: {spec!r} is not an Ember app (got {type(app).__name__})")
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ember", description="Ember command line")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve an app")
    run.add_argument("app", help="module:attribute, e.g. main:app")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1, help="0 = one per CPU")
    run.add_argument("--reload", action="store_true", help="restart when source files change")
    run.add_argument("--access-log", action="store_true")
    run.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug", "trace"])
    run.add_argument("--ssl-certfile")
    run.add_argument("--ssl-keyfile")
    routes = sub.add_parser("routes", help="list an app's routes")
    routes.add_argument("app", help="module:attribute, e.g. main:app")
    new = sub.add_parser("new", help="create a project skeleton that passes its own test")
    new.add_argument("name", help="project directory to create")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ember`` script."""
    args = _parser().parse_args(argv)
    if args.command == "new":
        from ember.scaffold import new_project

        try:
            root = new_project(args.name)
        except (ValueError, OSError) as exc:
            raise SystemExit(f"error: {exc}") from None
        print(f"created {root}/: cd {root} && python -m pytest  (python app.py serves it)")
        return 0
    if args.command == "routes":
        print_routes(load_app(args.app))
        return 0
    if args.reload and not os.environ.get("EMBER_RELOAD_CHILD"):
        return _reload_loop(list(argv if argv is not None else sys.argv[1:]))
    app = load_app(args.app)
    app.run(host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
            log_level=args.log_level, ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile)
    return 0


def print_routes(app: Any) -> None:
    """A table of method, path, handler, cache and limits."""
    rows = [("METHOD", "PATH", "HANDLER", "CACHE", "LIMITS")]
    for route in app.routes:
        limits = []
        if route.max_body_size is not None:
            limits.append(f"body<={route.max_body_size}")
        if route.timeout is not None:
            limits.append(f"timeout={route.timeout}s")
        if route.token_limits is not None:
            limits.append("tokens")
        handler = f"{route.endpoint.__module__}.{getattr(route.endpoint, '__qualname__', '?')}"
        cache = type(route.cache).__name__ if route.cache is not None else "-"
        rows.append((",".join(route.methods), route.path, handler, cache,
                     " ".join(limits) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)).rstrip())


def _snapshot(root: str) -> dict[str, float]:
    mtimes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))
                       and d not in ("node_modules", "build", "dist")]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                try:
                    mtimes[path] = os.stat(path).st_mtime
                except OSError:
                    pass
    return mtimes


def _reload_loop(argv: list[str]) -> int:
    """Run the server in a child process; restart it when a .py file changes."""
    import signal

    env = dict(os.environ, EMBER_RELOAD_CHILD="1")
    root = os.getcwd()
    cmd = [sys.executable, "-m", "ember.cli", *argv]
    current: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: object) -> None:
        # NOTE: forward the stop to the server, never leave it orphaned
        for proc in current:
            if proc.poll() is None:
                proc.send_signal(signum)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        before = _snapshot(root)
        child = subprocess.Popen(cmd, env=env)
        current[:] = [child]
        try:
            while child.poll() is None:
                time.sleep(0.5)
                if _snapshot(root) != before:
                    print("ember: change detected, restarting", file=sys.stderr)
                    child.terminate()
                    try:
                        child.wait(10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                    break
            else:
                return child.returncode
        except KeyboardInterrupt:
            child.terminate()
            child.wait()
            return 0


if __name__ == "__main__":
    sys.exit(main())
