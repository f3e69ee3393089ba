"""``--reload``: serve in a child process, restart it when a ``.py`` file changes.

Uses ``watchfiles`` (``pip install 'ember-api[reload]'``), the watcher uvicorn
uses: OS file events, no polling of mtimes. The reloader survives anything the
app does: a syntax or import error shows in the child's output, the reloader
says it waits for a fix, and the next save starts the app again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ember.exceptions import ConfigError

logger = logging.getLogger("ember.reload")

#: set in the child's environment: it serves instead of reloading
CHILD_ENV = "EMBER_RELOAD_CHILD"


def in_reload_child() -> bool:
    """Whether this process is the server a reloader started."""
    return os.environ.get(CHILD_ENV, "") not in ("", "0")


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError:
        raise ConfigError("reload needs the watchfiles package: pip install "
                          "'ember-api[reload]'") from None
    return watchfiles


def run_with_reload(cli_args: list[str], watch_dir: str | None = None,
                    python_path: str | None = None) -> int:
    """Run ``ember <cli_args>`` in a child; restart it on changes under ``watch_dir``.

    Returns 0 after SIGINT/SIGTERM (forwarded to the child, which stops gracefully).
    ``python_path`` is prepended to the child's ``PYTHONPATH`` (the app's folder).
    """
    watchfiles = _watchfiles()
    watch_dir = watch_dir or os.getcwd()
    env = dict(os.environ, **{CHILD_ENV: "1"})
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (python_path, env.get("PYTHONPATH"))
                                            if p)
    cmd = [sys.executable, "-m", "ember.cli", *cli_args]
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    child = _start(cmd, env)
    reported = False
    print(f"ember: reloading on changes to .py files under {watch_dir}", file=sys.stderr)
    try:
        for changes in watchfiles.watch(watch_dir, watch_filter=watchfiles.PythonFilter(),
                                        stop_event=stop, rust_timeout=300,
                                        yield_on_timeout=True, debounce=200,
                                        raise_interrupt=False):
            if not changes:
                if child.poll() is not None and not reported:
                    reported = True
                    hint = "fix the error and save" if child.returncode else "save a file"
                    print(f"ember: the app exited (code {child.returncode}); {hint}: it "
                          f"restarts on the next change", file=sys.stderr)
                continue
            names = sorted({os.path.relpath(path, watch_dir) for _, path in changes})
            print(f"ember: {', '.join(names[:3])} changed; restarting", file=sys.stderr)
            _stop(child, signal.SIGTERM)
            child = _start(cmd, env)
            reported = False
    finally:
        _stop(child, received[0] if received else signal.SIGTERM)
        for s, handler in old.items():
            signal.signal(s, handler)
    return 0


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # NOTE: its own process group, so Ctrl-C reaches the server once (forwarded by us),
    # not twice; the child exits if we die (it calls die_with_parent itself).
    if os.name != "posix":
        return subprocess.Popen(cmd, env=env)
    return subprocess.Popen(cmd, env=env, process_group=0)


def _stop(child: subprocess.Popen[bytes], signum: int) -> None:
    if child.poll() is None:
        child.send_signal(signum)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def import_string_of_main(app: Any) -> tuple[str, str]:
    """``("module:attr", folder)`` for an app defined in the ``__main__`` script.

    Raises :class:`ConfigError` when there is no such script (REPL, ``-c``,
    notebook) or the app is not a module-level name there.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    hint = "run it with: ember run module:app --reload"
    if main is None or not path or not path.endswith(".py"):
        raise ConfigError(f"app.run(reload=True) needs the app defined in a .py file; {hint}")
    names = [name for name, value in vars(main).items() if value is app]
    if not names:
        raise ConfigError(f"app.run(reload=True): the app is not a module-level name in "
                          f"{path}; {hint}")
    file = Path(path).resolve()
    return f"{file.stem}:{names[0]}", str(file.parent)


def reload_main_script(app: Any, config: Any) -> None:
    """``app.run(reload=True)`` from a script: re-run it under the reloader."""
    spec, folder = import_string_of_main(app)
    args = ["run", spec, "--host", config.host, "--port", str(config.port), "--workers",
            str(config.workers), "--log-level", config.log_level]
    if config.access_log:
        args.append("--access-log")
    if config.ssl_certfile:
        args += ["--ssl-certfile", config.ssl_certfile, "--ssl-keyfile", config.ssl_keyfile]
    run_with_reload(args, watch_dir=folder, python_path=folder)
