"""``Metrics(const_labels=..., worker_label=True)``: in one process and across workers."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.observability import Metrics
from tests.conftest import free_port
from tests.server._proc import HANG_GUARD, wait_for

SAMPLE = re.compile(r'^(ember_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$')


def _samples(text: str) -> list[tuple[str, str, float]]:
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, f"not a Prometheus sample: {line!r}"
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def test_const_labels_on_every_sample() -> None:
    app = Ember()
    metrics = Metrics(const_labels={"host": "web-1", "region": 'eu"west\\1'})
    app.add_middleware(metrics)
    metrics.mount(app)

    @app.get("/x")
    async def x() -> str:
        return "x"

    metrics.record_model_usage("m", 1, 2, 0.5)
    metrics.record_key_usage("team", "m", 1, 2, 0.5)
    with app.test_client() as c:
        c.get("/x")
        text = c.get("/metrics").text
    samples = _samples(text)
    assert samples and all(labels.startswith('{host="web-1",region="eu\\"west\\\\1"')
                           for _, labels, _ in samples), text
    assert text.count("# TYPE ember_requests_total counter") == 1


@pytest.mark.parametrize("labels", [{"method": "x"}, {"worker": "1"}, {"__x": "1"},
                                    {"1a": "x"}, {"a-b": "x"}, {"a": 1}, {"a": "x\ny"},
                                    ["host"], "host=a"])
def test_bad_const_labels(labels: Any) -> None:
    with pytest.raises(ConfigError, match="const_labels"):
        Metrics(const_labels=labels)
    with pytest.raises(ConfigError, match="worker_label"):
        Metrics(worker_label="yes")  # type: ignore[arg-type]


SCRIPT = textwrap.dedent('''
    import os, sys
    from ember import Ember
    from ember.observability import Metrics
    app = Ember()
    metrics = Metrics(const_labels={"host": "h1"}, worker_label=sys.argv[3] == "1")
    app.add_middleware(metrics)
    metrics.mount(app)

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    app.run(port=int(sys.argv[1]), workers=int(sys.argv[2]))
''')


@pytest.mark.parametrize("per_worker", [True, False])
def test_worker_label_across_workers(tmp_path: Path, per_worker: bool) -> None:
    script = tmp_path / "metricsapp.py"
    script.write_text(SCRIPT)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, str(script), str(port), "2",
                             "1" if per_worker else "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        pids: set[int] = set()

        def hit() -> bool:
            try:
                with httpx.Client() as c:  # a new connection: any worker may answer
                    pids.add(c.get(url + "/pid").json()["pid"])
            except httpx.TransportError:
                return False
            return len(pids) == 2
        wait_for(hit, "both workers answering")
        with httpx.Client() as c:
            total = sum(1 for _ in range(10) if c.get(url + "/pid").status_code == 200)
        text = httpx.get(url + "/metrics").text
        counts = {labels: value for name, labels, value in _samples(text)
                  if name == "ember_requests_total"}
        assert all('host="h1"' in labels for labels in counts), text
        if per_worker:
            workers = {re.search(r'worker="(\d+)"', k).group(1) for k in counts}  # type: ignore[union-attr]
            assert workers == {str(p) for p in pids}
            assert len([k for k in text.splitlines() if k.startswith(
                "ember_requests_in_flight{")]) == 2
        else:
            assert not any("worker=" in k for k in counts)
        assert sum(counts.values()) >= total + 2  # every /pid request, summed over workers
    finally:
        proc.terminate()
        proc.wait(HANG_GUARD)
