"""Process model over real processes: handler exits, SIGHUP, orphans, binding, stopping.

Every wait is on an event (a response, a file, a process exit); the timeouts are
hang guards only (see tests/server/_proc.py). Regression tests for issue #8 item 6
and for peers' bugs: gunicorn #1663/#2215 (orphaned workers after the arbiter is
killed), uvicorn #1421 (SystemExit in the app stops the server), gunicorn's
"address already in use" restart loop.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

import httpx
import pytest

from tests.server._proc import AppProcess, alive, refused, wait_for


@pytest.mark.parametrize("workers", [1, 2])
def test_handler_systemexit_and_keyboardinterrupt_never_stop_the_server(tmp_path, workers):
    server = AppProcess(tmp_path, workers)
    try:
        pids = server.worker_pids(workers)
        for path in ("/exit", "/interrupt", "/exit", "/interrupt"):
            assert server.get(path).status_code == 500
        # a SystemExit before the handler's first await: a 500 as well (the handler runs
        # in its Task from its first line, where the protocol catches it)
        assert server.get("/exit-now").status_code == 500
        assert server.proc.poll() is None
        assert server.get("/pid").status_code == 200
        # the very same worker processes are still serving (none died and restarted)
        assert server.worker_pids(workers) == pids
    finally:
        out = server.stop()
    assert "SystemExit: 3" in out  # logged with its traceback, never swallowed silently


def test_sighup_gracefully_replaces_the_workers(tmp_path):
    server = AppProcess(tmp_path, 2, graceful_timeout=600)
    try:
        old = server.worker_pids(2)
        result: dict[str, httpx.Response] = {}
        held = threading.Thread(target=lambda: result.update(r=server.get("/hold", timeout=60)))
        held.start()
        wait_for(server.started_holds, "the held request to start")
        server.signal(signal.SIGHUP)
        # new workers take over; the old ones stop accepting once they listen
        new = server.new_pids(old, 2)
        # the old worker holding a request is still draining it: release, it completes
        server.release()
        held.join(60)
        assert result["r"].status_code == 200 and result["r"].text == "released"
        wait_for(lambda: not any(alive(pid) for pid in old), "old workers to exit")
        assert server.proc.poll() is None
        assert server.worker_pids(2) <= new
    finally:
        out = server.stop()
    assert "SIGHUP" in out
    assert "restarting" not in out  # drained workers are not "restarted" crashes


def test_sighup_to_the_whole_group_reloads_once_without_downtime(tmp_path):
    # gunicorn PR #1868: `pkill -HUP` also hit the workers, which died at once
    server = AppProcess(tmp_path, 2)
    try:
        old = server.worker_pids(2)
        server.signal_group(signal.SIGHUP)
        server.new_pids(old, 2)
        wait_for(lambda: not any(alive(pid) for pid in old), "old workers to drain")
    finally:
        out = server.stop()
    assert out.count("SIGHUP: starting 2 new workers") == 1
    assert "restarting" not in out and "crashed" not in out


def test_ctrl_c_after_sighup_leaves_no_process_behind(tmp_path):
    # gunicorn #67 / #3: after a HUP, stopping left the arbiter and a worker running
    server = AppProcess(tmp_path, 2)
    old = server.worker_pids(2)
    server.signal(signal.SIGHUP)
    new = server.new_pids(old, 2)
    server.signal_group(signal.SIGINT)
    assert server.wait_exit() == 0
    wait_for(lambda: not any(alive(pid) for pid in old | new), "every worker to exit")
    assert server.output().count("Ember stopped") == 1


def test_sighup_stops_a_single_worker_server_cleanly(tmp_path):
    server = AppProcess(tmp_path, 1)
    server.signal(signal.SIGHUP)
    assert server.wait_exit() == 0
    assert "Ember stopped" in server.output()


def test_workers_exit_when_the_supervisor_is_sigkilled(tmp_path):
    server = AppProcess(tmp_path, 2)
    pids = server.worker_pids(2)
    server.signal(signal.SIGKILL)
    server.wait_exit()
    wait_for(lambda: not any(alive(pid) for pid in pids), "orphaned workers to exit")


@pytest.mark.parametrize("workers", [1, 2])
def test_port_in_use_fails_fast_with_one_line(tmp_path, workers):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = AppProcess(tmp_path, workers, port, wait=False)
        assert server.wait_exit() == 1
    lines = server.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "--port" in lines[0] and "port=" in lines[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_restart_on_the_same_port_right_after_a_stop(tmp_path, workers):
    # the probe must not mistake the last run's TIME_WAIT connections for a live server
    first = AppProcess(tmp_path, workers)
    for _ in range(5):
        assert first.get("/pid", headers={"connection": "close"}).status_code == 200
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    second = AppProcess(tmp_path, workers, first.port)
    try:
        assert second.get("/pid").status_code == 200
    finally:
        second.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_held_by_another_embers_reuseport_workers_isrefused(tmp_path, workers):
    first = AppProcess(tmp_path, 2)
    try:
        second = AppProcess(tmp_path, workers, first.port, wait=False)
        assert second.wait_exit() == 1
        lines = second.output().strip().splitlines()
        assert len(lines) == 1 and f"127.0.0.1:{first.port}" in lines[0], lines
        # and the first server still gets all the traffic
        assert first.get("/pid").status_code == 200
    finally:
        first.stop()


def test_worker_that_keeps_failing_at_startup_stops_the_supervisor(tmp_path):
    server = AppProcess(tmp_path, 2, wait=False, fail_startup=True)
    assert server.wait_exit() == 1
    out = server.output()
    last = out.strip().splitlines()[-1]
    assert last == ("error: a worker failed to start 3 times in a row: RuntimeError: "
                    "database unreachable"), out
    assert out.count("Traceback") <= 2  # the first attempt of each slot, not a flood
    assert "exited after" not in out


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_idle_server_stops_without_waiting_for_any_timeout(tmp_path, workers, signum):
    # NOTE: keep-alive and grace periods of 10 minutes: a stop that waited for any of
    # them would hit the hang guard. Measured stop times: bench/process_stop.py.
    server = AppProcess(tmp_path, workers, keep_alive_timeout=600, graceful_timeout=600)
    with httpx.Client() as keep_alive, socket.create_connection(("127.0.0.1", server.port)):
        assert keep_alive.get(server.url + "/pid").status_code == 200
        server.signal(signum)
        assert server.wait_exit() == 0
    assert server.output().count("Ember stopped") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_waits_for_the_in_flight_request_then_exits(tmp_path, workers):
    server = AppProcess(tmp_path, workers, graceful_timeout=600)
    result: dict[str, httpx.Response] = {}
    held = threading.Thread(target=lambda: result.update(r=server.get("/hold", timeout=60)))
    held.start()
    wait_for(server.started_holds, "the held request to start")
    server.signal(signal.SIGTERM)
    # a stopping server refuses new connections but keeps the held request's
    wait_for(lambda: refused(server.port), "the listener to close")
    assert server.proc.poll() is None
    server.release()
    held.join(60)
    assert result["r"].status_code == 200 and result["r"].text == "released"
    assert server.wait_exit() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_stop_signal_aborts_what_is_in_flight(tmp_path, workers):
    """Ctrl-C twice: the first drains (and says so), the second stops now."""
    server = AppProcess(tmp_path, workers, graceful_timeout=600)
    held = threading.Thread(target=lambda: _ignore_errors(server.get, "/hold", timeout=60))
    held.start()
    wait_for(server.started_holds, "the held request to start")
    server.signal(signal.SIGINT)
    wait_for(lambda: refused(server.port), "the listener to close")
    wait_for(lambda: "Ctrl-C again" in server.output(), "the 'waiting' line")
    assert server.proc.poll() is None  # still draining: the grace period is 10 minutes
    server.signal(signal.SIGINT)
    assert server.wait_exit() == 0  # the hang guard would fire if it waited for the grace
    held.join(60)
    assert "stopped again: aborting 1 connection(s)" in server.output()


def _ignore_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except httpx.HTTPError:
        pass


def test_metrics_are_summed_over_workers(tmp_path):
    server = AppProcess(tmp_path, 2)
    line = 'ember_requests_total{method="GET",route="/hit",status="200"}'
    try:
        pids = server.worker_pids(2)
        metrics_dir = server.get("/pid").json()["metrics_dir"]
        for _ in range(40):
            assert server.get("/hit").text == "hit"
        # whichever worker renders /metrics, it counts all 40
        by_worker: dict[int, str] = {}
        wait_for(lambda: by_worker.update([server.get("/metrics-of").json().values()])
                 or len(by_worker) == 2, "/metrics from both workers")  # no worker changes here
        assert set(by_worker) == pids
        assert [_value(text, line) for text in by_worker.values()] == [40, 40]
        assert _value(server.get("/metrics").text, line) == 40
        # a killed worker's counts stay, its live gauge goes; the replacement adds on
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        server.new_pids(pids, 1)  # the replacement
        assert not os.path.exists(os.path.join(metrics_dir, f"live_{victim}.db"))
        assert server.get("/hit").text == "hit"
        text = server.get("/metrics").text
        assert _value(text, line) == 41
        assert "ember_requests_in_flight 0" in text
    finally:
        server.stop()
    assert metrics_dir and not os.path.exists(metrics_dir)  # removed at exit


def _value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in {text}")
