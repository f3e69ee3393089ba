"""``ember run module:app``, ``ember routes module:app``, ``ember new NAME``, ``ember --version``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

#: what a module-level ``app.run()`` logs while the CLI imports the app
CLI_WINS = "the ember command's options win (--host/--port/--workers)"
#: the same, for ``ember routes`` (which serves nothing)
CLI_ROUTES = "ember routes only lists the routes"


def _module_form(spec: str) -> str | None:
    """``examples/demo.py[:attr]`` → ``examples.demo:attr`` (None if not a file path)."""
    path, _, attr = spec.partition(":") if not spec.endswith(".py") else (spec, "", "")
    if not (path.endswith(".py") or os.sep in path or "/" in path):
        return None
    module = path.removesuffix(".py").replace(os.sep, ".").replace("/", ".").strip(".")
    return f"{module}:{attr or 'app'}"


def load_app(spec: str, reason: str = CLI_WINS) -> Any:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the working directory.

    A module-level ``app.run()`` in that module does not serve while it is imported
    (:func:`ember.server.run.no_serve`). Raises ``SystemExit`` with one line on a bad spec.
    """
    from ember.server.run import no_serve

    suggestion = _module_form(spec)
    if suggestion is not None:
        raise SystemExit(f"error: {spec!r} is a file path; name the app as module:attribute, "
                         f"here {suggestion!r}")
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise SystemExit(f"error: expected 'module:app', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with no_serve(reason):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise SystemExit(f"error: cannot import module {module_name!r}: {exc} (run "
                                 f"ember from the folder that contains it)") from None
            raise SystemExit(f"error: cannot import module {module_name!r}: {exc}") from None
        app = module
        for part in attr.split("."):
            try:
                app = getattr(app, part)
            except AttributeError:
                raise SystemExit(f"error: module {module_name!r} has no attribute "
                                 f"{attr!r}") from None
        if callable(app) and not hasattr(app, "_handle"):
            app = app()  # an app factory
    if not hasattr(app, "_handle"):
        raise SystemExit(f"error: {spec!r} is not an Ember app (got {type(app).__name__})")
    return app


def _version() -> str:
    import ember

    return ember.__version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ember", description="Ember command line")
    parser.add_argument("--version", action="version",
                        version=f"ember {_version()} (Python {sys.version.split()[0]})")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve an app")
    run.add_argument("app", help="module:attribute, e.g. main:app")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1, help="0 = one per CPU")
    run.add_argument("--reload", action="store_true",
                     help="restart when .py files change (needs ember-api[reload])")
    run.add_argument("--access-log", action="store_true")
    run.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug", "trace"])
    run.add_argument("--ssl-certfile")
    run.add_argument("--ssl-keyfile")
    run.add_argument("--http3", action="store_true",
                     help="also serve HTTP/3 over QUIC on the same UDP port (needs TLS)")
    run.add_argument("--http3-retry", action="store_true",
                     help="HTTP/3: validate client addresses with Retry tokens first")
    run.add_argument("--loop", default="auto",
                     help="event loop: auto (default; EMBER_LOOP or uvloop), uvloop, rloop, "
                          "asyncio")
    run.add_argument("--no-gc-freeze", action="store_true",
                     help="do not gc.freeze() the app after startup (docs/engine.md)")
    routes = sub.add_parser("routes", help="list an app's routes")
    routes.add_argument("app", help="module:attribute, e.g. main:app")
    new = sub.add_parser("new", help="create a project skeleton that passes its own test")
    new.add_argument("name", help="project directory to create")
    from ember.gateway.keys_cli import add_parser as add_keys_parser

    add_keys_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ember`` script."""
    from ember.exceptions import ConfigError
    from ember.server.reload import in_reload_child, run_with_reload

    argv = list(argv if argv is not None else sys.argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "new":
        from ember.scaffold import new_project

        try:
            root = new_project(args.name)
        except (ValueError, OSError) as exc:
            raise SystemExit(f"error: {exc}") from None
        print(f"created {root}/: cd {root} && pip install -e \".[dev]\" && python -m pytest  "
              "(python app.py serves it; its README says how to install this Ember in a new "
              "venv)")
        return 0
    if args.command == "keys":
        from ember.gateway.keys_cli import run as run_keys

        return run_keys(args)
    if args.command == "routes":
        print_routes(load_app(args.app, CLI_ROUTES))
        return 0
    try:
        if args.reload and not in_reload_child():
            return run_with_reload(argv)
        if in_reload_child() and hasattr(os, "fork"):
            from ember.server.supervisor import die_with_parent

            die_with_parent(os.getppid())
        app = load_app(args.app)
        app.run(host=args.host, port=args.port, workers=args.workers,
                access_log=args.access_log, log_level=args.log_level,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile, loop=args.loop,
                gc_freeze=not args.no_gc_freeze, http3=args.http3,
                http3_retry=args.http3_retry)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
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


if __name__ == "__main__":
    sys.exit(main())
