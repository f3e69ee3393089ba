"""The ledger's lean pipelined Redis client (ember.gateway._resp) answers what redis-py
answers, and fails the way the ledger's policy expects (an exception, never a hang).

Real ``redis-server`` processes; a hung server is a port that accepts and never answers;
a broken one is a socket that sends garbage.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading

import httpx
import pytest

from ember.gateway._resp import LeanRedis, RedisReplyError, lean_client
from ember.gateway.ledger import _RESERVE, _SETTLE
from tests._services import _free_port, _stop, _wait_port

pytest.importorskip("hiredis")
GUARD = 30.0
PURE = "return {KEYS[1], ARGV, #ARGV, tonumber(ARGV[2]) or -1, {'ok', false, 1.5}}"
ECHO = "return {KEYS[1], ARGV[1], #ARGV, redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]))}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


@pytest.fixture
def redis_url(redis_server):
    import redis

    url = redis_server.url + "/7"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.mark.parametrize("url", [
    "rediss://127.0.0.1:6379/0", "unix:///tmp/redis.sock", "redis://127.0.0.1:6379/0?x=1",
    "redis://127.0.0.1:99999/0", "redis://127.0.0.1:6379/zero", "redis:///0", "http://a/0",
    "redis://[::1/0", "", "redis://h:6379/0#frag"])
def test_urls_it_cannot_serve_stay_on_redis_py(url):
    assert lean_client(url, 1.0) is None


def test_url_parts():
    c = lean_client("redis://us%40er:p%3Ass@example.org:6390/5", 2.0)
    assert (c.host, c.port, c.db, c.username, c.password, c.timeout) == (
        "example.org", 6390, 5, "us@er", "p:ss", 2.0)
    c = lean_client("redis://:pw@h", 1.0)
    assert (c.port, c.db, c.username, c.password) == (6379, 0, "", "pw")
    assert lean_client("redis://h/", 1.0).password is None


def test_replies_equal_redis_py_for_the_same_script_and_arguments(redis_url):
    import redis.asyncio as aioredis

    cases = [(["k:a"], ["x", 1]), (["k:\u00e9\u6f22"], ["\u00e9", -5, 7, 2.5]),
             (["k:b"], [b"\x00\xffbin", 10**15, "", 0]), (["k:{tag}:c"], ["1" * 3000, 3])]

    async def both():
        lean = lean_client(redis_url, 3.0)
        ref = aioredis.Redis.from_url(redis_url)
        out = []
        try:
            for keys, args in cases:
                a = await lean.register_script(PURE)(keys=keys, args=args)
                b = await ref.register_script(PURE)(keys=keys, args=args)
                out.append((a, b))
        finally:
            await lean.aclose()
            await ref.aclose()
        return out

    for a, b in run(both()):
        assert a == b


def test_many_concurrent_commands_get_their_own_replies(redis_url):
    async def go():
        lean = lean_client(redis_url, 3.0)
        script = lean.register_script(ECHO)
        try:
            return await asyncio.gather(*(script(keys=[f"n{i % 7}"], args=[f"id{i}", i])
                                          for i in range(300)))
        finally:
            await lean.aclose()

    replies = run(go())
    assert [r[1] for r in replies] == [f"id{i}".encode() for i in range(300)]
    assert all(r[2] == 2 for r in replies)


def test_a_flushed_script_cache_is_loaded_again(redis_url):
    import redis

    async def go():
        lean = lean_client(redis_url, 3.0)
        script = lean.register_script(ECHO)
        try:
            first = await script(keys=["f"], args=["a", 1])
            redis.Redis.from_url(redis_url).script_flush()
            second = await script(keys=["f"], args=["b", 1])
            return first, second
        finally:
            await lean.aclose()

    first, second = run(go())
    assert (first[3], second[3]) == (1, 2)


def test_an_error_reply_raises_and_the_connection_stays_usable(redis_url):
    async def go():
        lean = lean_client(redis_url, 3.0)
        try:
            with pytest.raises(RedisReplyError, match="ERR"):
                await lean.register_script(ECHO)(keys=["e"], args=["a", "not-a-number"])
            with pytest.raises(RedisReplyError):
                await lean.execute("NOSUCHCOMMAND")
            return await lean.execute("PING")
        finally:
            await lean.aclose()

    assert run(go()) == b"PONG"


def test_a_dropped_connection_fails_in_flight_commands_then_dials_again(redis_url):
    import redis

    async def go():
        lean = lean_client(redis_url, 3.0)
        try:
            await lean.execute("CLIENT", "SETNAME", "ember-lean")
            slow = asyncio.ensure_future(lean.execute("BLPOP", "never", 5))
            await asyncio.sleep(0)
            killer = redis.Redis.from_url(redis_url)
            await asyncio.to_thread(killer.client_kill_filter, _type="normal",
                                    skipme=True)
            with pytest.raises(ConnectionError):
                await slow
            return await lean.execute("PING")
        finally:
            await lean.aclose()

    assert run(go()) == b"PONG"


@pytest.fixture
def private_redis():
    """A redis-server with a password and a user (ACL)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", "s3cret:pw",
                             "--user", "app", "on", ">apppw", "~*", "+@all"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "redis-server")
        yield port
    finally:
        _stop(proc)


def test_password_user_and_database_from_the_url(private_redis):
    import redis

    port = private_redis

    async def go(url):
        lean = lean_client(url, 3.0)
        try:
            return await lean.register_script(ECHO)(keys=["acl"], args=["x", 4])
        finally:
            await lean.aclose()

    assert run(go(f"redis://:s3cret%3Apw@127.0.0.1:{port}/3"))[3] == 4
    assert run(go(f"redis://app:apppw@127.0.0.1:{port}/3"))[3] == 8
    assert redis.Redis(port=port, password="s3cret:pw", db=3).get("acl") == b"8"
    for bad in (f"redis://:wrong@127.0.0.1:{port}/3", f"redis://127.0.0.1:{port}/3",
                f"redis://:s3cret%3Apw@127.0.0.1:{port}/99"):
        with pytest.raises(RedisReplyError):
            run(go(bad))


def test_a_hung_server_times_out_and_a_closed_port_fails_at_once(blackhole_port, closed_port):
    async def go(port):
        lean = LeanRedis("127.0.0.1", port, 0, "", None, 0.3)
        try:
            await lean.execute("PING")
        finally:
            await lean.aclose()

    with pytest.raises(TimeoutError):
        run(go(blackhole_port))
    assert b"PING" in blackhole_port.received()
    with pytest.raises(OSError):
        run(go(closed_port))


@pytest.mark.parametrize("garbage", [b"!!! not resp\r\n", b"$5\r\nab", b"+OK\r\n+EXTRA\r\n",
                                     b"*-5\r\n:1\r\n" + b"x" * 100])
def test_a_server_sending_garbage_fails_the_command_without_a_hang(garbage):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    conns = []

    def answer() -> None:
        conn, _ = server.accept()
        conns.append(conn)
        conn.recv(65536)
        conn.sendall(garbage)
        if garbage == b"$5\r\nab":
            conn.shutdown(socket.SHUT_RDWR)  # a reply cut short by a closed connection

    t = threading.Thread(target=answer, daemon=True)
    t.start()

    async def go():
        lean = LeanRedis("127.0.0.1", server.getsockname()[1], 0, "", None, 2.0)
        try:
            return await lean.execute("PING")
        finally:
            await lean.aclose()

    try:
        try:
            reply = run(go())
        except (ConnectionError, TimeoutError, RedisReplyError):
            return
        assert garbage.startswith(b"+OK") or garbage.startswith(b"*-5")
        assert reply in (b"OK", None)
    finally:
        t.join(5)
        for conn in conns:
            conn.close()
        server.close()


def test_the_ledger_uses_it_and_a_hung_store_answers_503(fake, serve, blackhole_port):
    from ember.gateway import Budget, KeyLimits
    from ember.gateway.openai import mount_openai
    from tests.gateway.conftest import gateway_app

    url = f"redis://127.0.0.1:{blackhole_port}/0"
    app = gateway_app()
    gw = mount_openai(app, "gpt-4o-mini", api_keys={"k": "sk-lean-key-01"},
                      budget=Budget(tokens=10_000), limits=KeyLimits(rpm=100),
                      budget_store=url, limit_store=url)
    gw.ledger.timeout = 0.5
    base = serve(app)
    r = httpx.post(base + "/v1/chat/completions", timeout=GUARD,
                   headers={"authorization": "Bearer sk-lean-key-01"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "budget_store_unavailable"
    assert type(gw.ledger._client) is LeanRedis
    assert b"EVALSHA" in blackhole_port.received()


def test_the_ledger_scripts_are_what_redis_runs(redis_url):
    import hashlib

    import redis

    async def go():
        lean = lean_client(redis_url, 3.0)
        try:
            r = lean.register_script(_RESERVE)
            s = lean.register_script(_SETTLE)
            return r.sha, s.sha, await r(keys=["a:r", "a:t", "a:c"],
                                        args=[-1, -1, -1, 5, "rid", 60, 0])
        finally:
            await lean.aclose()

    rsha, ssha, out = run(go())
    assert rsha == hashlib.sha1(_RESERVE.encode()).hexdigest()
    assert ssha == hashlib.sha1(_SETTLE.encode()).hexdigest()
    assert out == [0, b"0", b"-1", b"-1", 0]
    assert redis.Redis.from_url(redis_url).script_exists(rsha) == [True]
