"""Gateway server processes for multi-worker / multi-host tests (real sockets, real stores).

``GatewayProcess(tmp_path, workers, config)`` runs ``app.mount_openai(**config)`` in a
fresh ``python`` process (``workers`` forked workers), with the environment of the test
(so the fake provider servers' URLs and keys apply).  Waits end on events (the port
answering); the timeouts are hang guards only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

HANG_GUARD = 60.0

APP = textwrap.dedent('''
    import json, os, sys
    from ember import Ember
    from ember.gateway import Budget
    from ember.observability import Metrics

    port, workers, config = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    app = Ember()
    metrics = Metrics()
    app.add_middleware(metrics)
    metrics.mount(app)
    if "budget" in config:
        config["budget"] = {k: Budget(**v) for k, v in config["budget"].items()}
    limits = config.get("limits")
    if limits:
        from ember.gateway import KeyLimits
        config["limits"] = {k: KeyLimits(**v) for k, v in limits.items()}
    models = config.pop("models")

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    app.mount_openai(models, **config)
    app.run(port=port, workers=workers, log_level="warning")
''')


class GatewayProcess:
    """A gateway server in its own process; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, tmp_path: Path, workers: int, config: dict[str, Any]) -> None:
        script = tmp_path / "gatewayapp.py"
        script.write_text(APP)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"gateway-{self.port}.log"
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), str(self.port), str(workers), json.dumps(config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, process_group=0)
        deadline = time.monotonic() + HANG_GUARD
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/pid", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"gateway did not start: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(HANG_GUARD)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.output()
