"""Hosts made of Linux network namespaces, for tests that need several machines.

:class:`Network` creates namespaces with unique names, a bridge inside the first one
and a veth pair from it to each other namespace — every interface lives in a namespace
this module created, so nothing in the host's own namespace changes (no forwarding,
firewall or sysctl).  Processes are started inside a namespace with ``setns`` in the
child before ``exec``; test code talks to them from a thread that entered a namespace
(:meth:`Network.call`), so traffic never leaves the namespaces.  :meth:`Network.close`
kills what it started and deletes the namespaces (their interfaces go with them).

Needs root and ``ip`` (iproute2); :func:`require_netns` skips with the reason otherwise
(a failure under ``EMBER_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from tests._services import _die_with_parent, skip_or_fail

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def require_netns() -> None:
    """Skip (or fail under EMBER_REQUIRE_SERVICES=1) unless namespaces can be made here."""
    if os.geteuid() != 0:
        skip_or_fail("network namespaces need root")
    for binary in ("ip", "nginx", "redis-server"):
        if shutil.which(binary) is None:
            skip_or_fail(f"{binary} is not installed (Debian: apt-get install -y "
                         f"{'iproute2' if binary == 'ip' else binary.replace('-server', '')})")


def enter(name: str) -> None:
    """Move the calling thread (or a child before exec) into namespace ``name``."""
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Network:
    """``Network(["svc", "a", "b"])``: hosts 10.X.Y.1, .2, .3 on one bridge (in ``svc``)."""

    def __init__(self, hosts: Sequence[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.names = {h: f"ember-{tag}-{h}" for h in hosts}
        octet = 16 + int(tag[:2], 16) % 200
        self.addr = {h: f"10.{octet}.{int(tag[2:4], 16)}.{i + 1}" for i, h in enumerate(hosts)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._made: list[str] = []
        try:
            self._build(list(hosts))
        except BaseException:
            self.close()
            raise

    def _build(self, hosts: list[str]) -> None:
        for h in hosts:
            _ip("netns", "add", self.names[h])
            self._made.append(self.names[h])
            _ip("-n", self.names[h], "link", "set", "lo", "up")
        hub = self.names[hosts[0]]
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "addr", "add", f"{self.addr[hosts[0]]}/24", "dev", "br0")
        _ip("-n", hub, "link", "set", "br0", "up")
        for h in hosts[1:]:
            # NOTE: made inside the hub namespace, the peer moved straight into the host's:
            # no interface ever exists in the namespace the tests run in
            _ip("-n", hub, "link", "add", f"v{h}", "type", "veth", "peer", "name", "eth0",
                "netns", self.names[h])
            _ip("-n", hub, "link", "set", f"v{h}", "master", "br0", "up")
            _ip("-n", self.names[h], "addr", "add", f"{self.addr[h]}/24", "dev", "eth0")
            _ip("-n", self.names[h], "link", "set", "eth0", "up")

    # -- running things inside ---------------------------------------------------------

    def spawn(self, host: str, argv: list[str], *, log: str, user: Any = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``host``'s namespace (own process group; output to ``log``)."""
        name = self.names[host]

        def preexec() -> None:
            _die_with_parent()
            enter(name)
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=preexec, process_group=0)
        self.procs.append(proc)
        return proc

    def call(self, host: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a thread inside ``host``'s namespace; its result."""
        return self.submit(host, fn, *args).result()

    def submit(self, host: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Like :meth:`call` but returns the future."""
        pool = self._pools.get(host)
        if pool is None:
            pool = self._pools[host] = concurrent.futures.ThreadPoolExecutor(
                16, initializer=enter, initargs=(self.names[host],))
        return pool.submit(fn, *args)

    def wait_port(self, client: str, host: str, port: int, proc: Any = None,
                  guard: float = 60) -> None:
        """Wait until ``host:port`` accepts connections, seen from ``client``."""
        deadline = time.monotonic() + guard

        def probe() -> bool:
            try:
                with socket.create_connection((self.addr[host], port), timeout=1):
                    return True
            except OSError:
                return False
        while not self.call(client, probe):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{host}:{port} did not listen (hang guard {guard}s)")
            time.sleep(0.05)

    def close(self) -> None:
        """Kill every process started here and delete the namespaces."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(30)
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._made.clear()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream ember {{
        server {a}:8000 max_fails=1 fail_timeout=2s;
        server {b}:8000 max_fails=1 fail_timeout=2s;
        keepalive 32;                    # reuse connections to the upstreams
        keepalive_timeout 4s;            # below Ember's keep_alive_timeout (5 s)
    }}

    server {{
        listen {listen}:8080;
        location / {{
            proxy_pass http://ember;
            proxy_http_version 1.1;      # keep-alive to the upstreams needs 1.1 ...
            proxy_set_header Connection "";  # ... and no "Connection: close"
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # retry another host only when this one did not answer; never on a 503
            # (an answer: with max_fails=1 it would mark every host down at once)
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 3600s;    # longer than any SSE stream's silence
            proxy_send_timeout 3600s;
            proxy_buffering off;         # stream tokens as they come
        }}
    }}
}}
"""
