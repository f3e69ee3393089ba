"""``app.run(gc_freeze=True)`` (the default): the serving process freezes what exists after
startup, so the collector's full passes skip the app (p99 ~2x lower under load; BENCHMARKS.md
"gc.freeze").  Handlers see the collector as before; embedding processes are never frozen."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.server.config import ServerConfig
from tests.conftest import free_port
from tests.server._proc import AppProcess, wait_for


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serving_process_freezes_its_startup_objects(tmp_path, workers):
    server = AppProcess(tmp_path, workers)
    try:
        server.worker_pids(workers)
        state = httpx.get(server.url + "/gc", timeout=30).json()
        # the app and its modules moved to the permanent generation ...
        assert state["frozen"] > 1000
        # ... and user code still sees CPython's collector as configured
        assert state["enabled"] is True
        assert state["threshold"] == list(gc.get_threshold())
    finally:
        server.stop()


def test_gc_freeze_false_keeps_the_default_collector(tmp_path):
    server = AppProcess(tmp_path, 1, gc_freeze=False)
    try:
        state = httpx.get(server.url + "/gc", timeout=30).json()
        assert state["frozen"] == 0
        assert state["enabled"] is True
    finally:
        server.stop()


def test_an_embedding_process_is_never_frozen(serve):
    """Tests and other embedders call serve_forever themselves: their heap is theirs."""
    app = Ember()

    @app.get("/gc")
    async def gc_state():
        return {"frozen": gc.get_freeze_count()}

    before = gc.get_freeze_count()
    url = serve(app)
    assert httpx.get(url + "/gc", timeout=30).json() == {"frozen": before}


@pytest.mark.parametrize("garbage", [None, 1, "yes", 0.0])
def test_gc_freeze_garbage_is_a_config_error(garbage):
    with pytest.raises(ConfigError, match="gc_freeze must be True or False"):
        ServerConfig(gc_freeze=garbage)


@pytest.mark.parametrize("flag, frozen", [([], True), (["--no-gc-freeze"], False)])
def test_cli_gc_freeze_flag(tmp_path, flag, frozen):
    (tmp_path / "gcapp.py").write_text(textwrap.dedent('''
        import gc
        from ember import Ember
        app = Ember()

        @app.get("/")
        async def index():
            return {"frozen": gc.get_freeze_count()}
    '''))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli", "run", "gcapp:app",
                             "--port", str(port), *flag], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answer() -> dict | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).json()
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                return None

        assert (wait_for(answer, "the CLI server")["frozen"] > 0) is frozen
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
