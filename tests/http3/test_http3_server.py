"""HTTP/3 as a server feature: config, Alt-Svc, UDP binding, workers, shutdown, abuse."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

from ember import Ember
from ember.exceptions import ConfigError
from ember.limits import ServerLimits
from ember.server.config import ServerConfig

pytest.importorskip("aioquic", reason="HTTP/3 needs the aioquic package (extra http3)")

from tests.http3._client import client_config, h3_connect, port_of

GUARD = 10.0


def _app() -> Ember:
    app = Ember()

    @app.get("/fast")
    async def fast():
        return "fast"

    @app.get("/pid")
    async def pid():
        return {"pid": os.getpid()}

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(0.3)
        return "slow done"

    return app


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def until(predicate, what: str) -> None:
    for _ in range(int(GUARD / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# -- configuration -----------------------------------------------------------------------

def test_http3_needs_tls_files(tls_files):
    with pytest.raises(ConfigError, match="ssl_certfile and ssl_keyfile"):
        ServerConfig(http3=True)
    with pytest.raises(ConfigError, match="http3 must be True or False"):
        ServerConfig(http3="yes")
    with pytest.raises(ConfigError, match="http3_retry must be True or False"):
        ServerConfig(http3_retry=1)
    cert, key = tls_files
    with pytest.raises(ConfigError, match="rloop"):
        ServerConfig(http3=True, ssl_certfile=cert, ssl_keyfile=key, loop="rloop")


def test_cli_http3_without_tls_says_what_to_fix(tmp_path):
    (tmp_path / "h3app.py").write_text("from ember import Ember\napp = Ember()\n")
    out = subprocess.run([sys.executable, "-c", "from ember.cli import main; main()", "run",
                          "h3app:app", "--http3"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "ssl_certfile and ssl_keyfile" in out.stderr


def test_a_garbage_certificate_is_a_config_error(tmp_path, tls_files):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    from ember.server.quic import quic_configuration

    config = ServerConfig(http3=True, ssl_certfile=str(bad), ssl_keyfile=str(bad))
    with pytest.raises(ConfigError, match="HTTP/3 cannot load"):
        quic_configuration(config)


def test_import_ember_does_not_load_aioquic():
    code = ("import sys, ember; from ember.server.config import ServerConfig; ServerConfig(); "
            "assert 'aioquic' not in sys.modules, 'aioquic loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_udp_port_in_use_fails_with_one_line(tls_files):
    cert, key = tls_files
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        with pytest.raises(SystemExit) as info:
            _app().run(port=port, http3=True, ssl_certfile=cert, ssl_keyfile=key)
        assert "UDP" in str(info.value) and str(port) in str(info.value)
    finally:
        holder.close()


# -- Alt-Svc -------------------------------------------------------------------------------

def test_http1_responses_advertise_h3(serve, tls_files):
    cert, key = tls_files
    url = serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key)
    want = f'h3=":{port_of(url)}"; ma=86400'
    with httpx.Client(verify=False, base_url=url) as c:
        for path in ("/fast", "/pid", "/missing"):  # fast path, general path, 404
            r = c.get(path)
            assert r.http_version == "HTTP/1.1"
            assert r.headers.get_list("alt-svc") == [want], path
            assert "GMT" in r.headers["date"]


def test_no_alt_svc_without_http3(serve, tls_files):
    cert, key = tls_files
    url = serve(_app(), ssl_certfile=cert, ssl_keyfile=key)
    with httpx.Client(verify=False, base_url=url) as c:
        assert "alt-svc" not in c.get("/fast").headers


def test_http2_beside_http3_keeps_a_clean_date_and_advertises_h3(serve, tls_files):
    pytest.importorskip("h2")
    cert, key = tls_files
    url = serve(_app(), http2=True, http3=True, ssl_certfile=cert, ssl_keyfile=key)
    with httpx.Client(http2=True, verify=False, base_url=url) as c:
        r = c.get("/fast")
        assert r.http_version == "HTTP/2" and r.text == "fast"
        assert r.headers["date"].endswith("GMT") and "\n" not in r.headers["date"]
        assert r.headers.get_list("alt-svc") == [f'h3=":{port_of(url)}"; ma=86400']
        r = c.get("/pid")  # the general path too
        assert r.headers.get_list("alt-svc") == [f'h3=":{port_of(url)}"; ma=86400']

    async def main():
        async with h3_connect(port_of(url)) as q:
            assert (await q.request("GET", "/fast")).body == b"fast"

    run(main())


# -- abuse ----------------------------------------------------------------------------------

def test_garbage_datagrams_are_dropped_and_the_server_keeps_serving(serve, tls_files):
    cert, key = tls_files
    port = port_of(serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for size in (0, 1, 5, 40, 1200, 1500, 65000):  # 65000: hypercorn#295
            s.sendto(os.urandom(size), ("127.0.0.1", port))
        s.sendto(b"\x40" + os.urandom(30), ("127.0.0.1", port))  # short header, unknown cid
        # a long header with an unknown version: answered with Version Negotiation
        probe = bytes([0xC0]) + b"\x1a\x2a\x3a\x4a" + b"\x08" + b"d" * 8 + b"\x08" + b"s" * 8
        s.sendto(probe + b"\x00" * (1200 - len(probe)), ("127.0.0.1", port))
        reply, _ = s.recvfrom(2048)
        assert reply[1:5] == b"\x00\x00\x00\x00"  # version 0: Version Negotiation
        # an Initial below 1200 bytes never creates a connection (amplification)
        s.sendto(bytes([0xC0]) + b"\x00\x00\x00\x01" + b"\x08" + b"d" * 8 + b"\x00" * 50,
                 ("127.0.0.1", port))

    async def main():
        async with h3_connect(port) as c:
            assert (await c.request("GET", "/fast")).body == b"fast"

    run(main())


def test_a_handshake_that_never_finishes_is_dropped(server_factory, tls_files):
    # aioquic#637: a peer that never completes the handshake is probed for ever; ours
    # gives it header_timeout, then forgets it.
    from aioquic.quic.connection import QuicConnection

    cert, key = tls_files
    server = server_factory(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key,
                            limits=ServerLimits(header_timeout=0.3))
    port = port_of(server.url)
    quic = QuicConnection(configuration=client_config())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        quic.connect(("127.0.0.1", port), now=0.0)
        for data, _ in quic.datagrams_to_send(now=0.0):
            s.sendto(data, ("127.0.0.1", port))  # one Initial, then silence
        protocols = server.worker.quic.server._protocols

        async def main():
            await until(lambda: protocols, "the server's connection")
            await until(lambda: not protocols and not server.state.connections,
                        "the stalled connection to be dropped")

        run(main())


# -- shutdown and workers ---------------------------------------------------------------

def test_graceful_stop_finishes_the_request_in_flight(server_factory, tls_files):
    cert, key = tls_files
    server = server_factory(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key)
    port = port_of(server.url)

    async def main():
        async with h3_connect(port) as c:
            sid = c.start("GET", "/slow")
            await until(lambda: any(type(x).__name__ == "H3Protocol" and x.streams
                                    for x in list(server.state.connections)),
                        "the request to run")
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            await asyncio.wait_for(c.replies[sid].done.wait(), GUARD)
            assert c.replies[sid].body == b"slow done", (c.replies[sid], c.terminated)
            await asyncio.wait_for(c.closed_event.wait(), GUARD)  # then the connection closes
            await asyncio.get_running_loop().run_in_executor(None, stopper.join, GUARD)
            assert not stopper.is_alive()

    run(main())


WORKERS_APP = textwrap.dedent('''
    import os, sys
    from ember import Ember

    app = Ember()

    @app.get("/pid")
    async def pid():
        return str(os.getpid())

    app.run(port=int(sys.argv[1]), workers=2, http3=True, ssl_certfile=sys.argv[2],
            ssl_keyfile=sys.argv[3])
''')


@pytest.mark.slow  # ~8 s: two processes, 16 QUIC handshakes in pure Python
def test_two_workers_share_the_udp_port(tmp_path, tls_files):
    cert, key = tls_files
    script = tmp_path / "app.py"
    script.write_text(WORKERS_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(script), str(port), cert, key],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async def main():
            for _ in range(int(GUARD / 0.05)):  # wait until the workers listen (TCP)
                try:
                    async with httpx.AsyncClient(verify=False) as tcp:
                        await tcp.get(f"https://127.0.0.1:{port}/pid")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            seen: dict[str, int] = {}
            for _ in range(16):  # each connection: a new source port, hashed to a worker
                async with h3_connect(port) as c:
                    pids = {(await c.request("GET", "/pid")).body for _ in range(2)}
                    assert len(pids) == 1  # a connection stays on its worker
                    pid = pids.pop().decode()
                    seen[pid] = seen.get(pid, 0) + 1
            return seen

        seen = run(main())
        assert len(seen) == 2, seen
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out


# -- other clients ---------------------------------------------------------------------------

def test_curl_http3(serve, tls_files):
    curl = shutil.which("curl")
    features = subprocess.run([curl, "-V"], capture_output=True, text=True).stdout if curl else ""
    if "HTTP3" not in features:
        # NOTE: a plain skip even under EMBER_REQUIRE_SERVICES=1: Debian's curl is built
        # without HTTP/3 (no ngtcp2/quiche), so CI cannot have it.
        pytest.skip("this curl has no HTTP/3 support (Debian's build lacks it)")
    cert, key = tls_files
    url = serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key)
    out = subprocess.run([curl, "--http3-only", "-sk", url + "/fast"], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout == "fast"


def test_connections_over_max_connections_are_refused(serve, tls_files):
    cert, key = tls_files
    port = port_of(serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key,
                         limits=ServerLimits(max_connections=1)))

    async def main():
        async with h3_connect(port) as first:
            assert (await first.request("GET", "/fast")).body == b"fast"
            with pytest.raises(ConnectionError):
                async with h3_connect(port) as second:
                    await second.request("GET", "/fast")
        for _ in range(int(GUARD / 0.05)):  # the first one's slot frees once it is gone
            try:
                async with h3_connect(port) as third:
                    assert (await third.request("GET", "/fast")).body == b"fast"
                return
            except ConnectionError:
                await asyncio.sleep(0.05)
        raise AssertionError("the freed slot was never reused")

    run(main())


def test_finished_streams_are_forgotten(server_factory, tls_files):
    # hypercorn#309 / aioquic#590: finished streams stayed in dicts for the connection's
    # life; a long-lived connection must not grow with the requests it carried
    cert, key = tls_files
    server = server_factory(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key)
    port = port_of(server.url)

    async def main():
        async with h3_connect(port) as c:
            for _ in range(5):
                await asyncio.gather(*[c.request("GET", "/fast") for _ in range(20)])
            [proto] = [x for x in list(server.state.connections)
                       if type(x).__name__ == "H3Protocol"]
            await until(lambda: not proto.streams, "the streams to be released")
            assert len(proto.h3._stream) <= 8  # control/QPACK streams, not 100 requests

    run(main())


def test_unvalidated_address_gets_at_most_three_times_what_it_sent(serve, tls_files):
    # RFC 9000 §8: before the address is validated (a spoofed source cannot answer) the
    # server sends at most 3x the bytes received: no reflection amplifier
    from aioquic.quic.connection import QuicConnection

    cert, key = tls_files
    port = port_of(serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key))
    quic = QuicConnection(configuration=client_config())
    quic.connect(("127.0.0.1", port), now=0.0)
    sent = received = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data, _ in quic.datagrams_to_send(now=0.0):
            s.sendto(data, ("127.0.0.1", port))
            sent += len(data)
        s.settimeout(1.5)  # the server's probes (PTO) count towards the limit too
        try:
            while True:
                received += len(s.recv(65536))
        except TimeoutError:
            pass
    assert 0 < received <= 3 * sent, (sent, received)


def test_qpack_table_over_the_advertised_capacity_closes_the_connection(serve, tls_files):
    # RFC 9204 §4.3.1: the peer's encoder may not set a dynamic table larger than our
    # QPACK_MAX_TABLE_CAPACITY (4096): the decoder refuses it (no unbounded table)
    cert, key = tls_files
    port = port_of(serve(_app(), http3=True, ssl_certfile=cert, ssl_keyfile=key))

    async def main():
        async with h3_connect(port) as c:
            assert (await c.request("GET", "/fast")).body == b"fast"
            # "Set Dynamic Table Capacity" 8192: 001 + 5-bit prefixed integer
            c._quic.send_stream_data(c.h3._local_encoder_stream_id, b"\x3f\xe1\x3f")
            c.transmit()
            await asyncio.wait_for(c.closed_event.wait(), GUARD)
            assert c.terminated.error_code == 0x201  # QPACK_ENCODER_STREAM_ERROR
        async with h3_connect(port) as again:
            assert (await again.request("GET", "/fast")).body == b"fast"

    run(main())
