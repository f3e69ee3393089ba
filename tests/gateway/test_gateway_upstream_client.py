"""The lean HTTP/1.1 client of the providers' one-shot POST (models/providers/_h1client)
answers what aiohttp answers: the same request bytes upstream, the same status, headers
and body back, the same exception types (and messages where aiohttp's are fixed) for
every kind of broken upstream.  Each case runs against a scripted socket server twice:
through the lean path and through aiohttp (the same adapter with the lean path off).
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable

import aiohttp
import pytest

from ember.models.providers._h1client import lean_for
from ember.models.providers._transport import AiohttpAsync
from ember.models.providers.openai import OpenAIProvider

GUARD = 30.0
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


class Upstream:
    """A socket server that answers every request with ``reply(n, request)``."""

    def __init__(self, reply: Callable[[int, bytes], list]) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                for part in self.reply(len(self.requests), request):
                    if part is None:
                        writer.close()
                        return
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                        continue
                    writer.write(part)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _both(reply, calls: int = 1, timeout: float | None = None, **kw):
    """``[(lean outcome, aiohttp outcome)]`` for ``calls`` sequential POSTs, plus the two
    upstreams (what each received)."""
    out = []
    ups = []
    for lean in (True, False):
        up = Upstream(reply)
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        provider = OpenAIProvider(api_key="sk-up-1", base_url=f"http://127.0.0.1:{port}/v1",
                                  **kw)
        client = AiohttpAsync(provider)
        assert client.lean is not None
        if not lean:
            client.lean = None
        got = []
        try:
            for i in range(calls):
                try:
                    status, headers, body = await client.post(
                        "/chat/completions", b'{"n":%d}' % i, timeout)
                    got.append((status, list(headers.items()), body))
                except Exception as exc:  # NOTE: the outcome is compared
                    got.append((type(exc), client.is_timeout(exc)))
        finally:
            await client.aclose()
            server.close()
        out.append(got)
        ups.append(up)
    return list(zip(*out, strict=True)), ups


def _portless(request: bytes) -> bytes:
    import re

    return re.sub(rb"Host: ([a-z0-9.]+):\d+\r\n", rb"Host: \1:PORT\r\n", request)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


CASES = {
    "length": [OK],
    "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: r1\r\n\r\n"
                b"4;ext=1\r\n{\"ok\r\n7\r\n\":true}\r\n0\r\nTrailer: x\r\n\r\n"],
    "byte by byte": [bytes([b]) for b in OK],
    "interim 100": [b"HTTP/1.1 100 Continue\r\n\r\n", OK],
    "gzip": [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
             % len(gzip.compress(b'{"z":1}')) + gzip.compress(b'{"z":1}')],
    "deflate": [b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
                % len(zlib.compress(b'{"d":1}')) + zlib.compress(b'{"d":1}')],
    "429 retry-after": [b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nretry-after-ms: 7000\r\n"
                        b"Content-Length: 2\r\n\r\n{}"],
    "no reason": [b"HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n"],
    "204": [b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"],
    "http/1.0 until close": [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", None],
    "close after": [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", None],
    "utf-8 header": [b"HTTP/1.1 200 OK\r\nX-N: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_replies_equal_aiohttp(case):
    pairs, ups = run(_both(lambda n, req: CASES[case], calls=3))
    for lean, ref in pairs:
        assert lean == ref
        assert isinstance(lean[0], int)
    # NOTE: byte for byte what aiohttp sends (the two upstreams' ports apart)
    assert [_portless(r) for r in ups[0].requests] == [_portless(r) for r in ups[1].requests]
    assert len(ups[0].requests) == 3


def test_keep_alive_reuses_one_connection_and_close_opens_another():
    _pairs, ups = run(_both(lambda n, req: [OK], calls=5))
    assert ups[0].connections == ups[1].connections == 1
    _pairs, ups = run(_both(lambda n, req: CASES["close after"], calls=3))
    assert ups[0].connections == ups[1].connections == 3


BROKEN = {
    "closed before reply": [None],
    "truncated body": [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"a\"", None],
    "truncated chunks": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", None],
    "truncated head": [b"HTTP/1.1 200 OK\r\nContent-Le", None],
    "garbage status": [b"SMTP ready\r\n\r\n"],
    "bad status code": [b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"],
    "bad header line": [b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n"],
    "bad chunk size": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"],
    "bad length": [b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"],
    "bad gzip": [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"],
    "huge head": [b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n"],
    "slow": [3.0, OK],
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_upstreams_fail_as_aiohttp_fails(case):
    pairs, _ups = run(_both(lambda n, req: BROKEN[case], timeout=0.5))
    (lean, ref), = pairs
    assert not isinstance(lean[0], int), lean
    assert issubclass(lean[0], aiohttp.ClientError | asyncio.TimeoutError)
    assert lean == ref or (issubclass(lean[0], aiohttp.ClientResponseError) and
                           issubclass(ref[0], aiohttp.ClientResponseError)), (lean, ref)


def test_connect_errors_are_aiohttp_s_with_its_message(closed_port):
    async def one(port: int, lean: bool) -> BaseException:
        provider = OpenAIProvider(api_key="k", base_url=f"http://127.0.0.1:{port}/v1",
                                  connect_timeout=0.3)
        client = AiohttpAsync(provider)
        if not lean:
            client.lean = None
        try:
            await client.post("/chat/completions", b"{}", 0.5)
        except Exception as exc:  # NOTE: compared below
            return exc
        finally:
            await client.aclose()
        raise AssertionError("no error")

    a, b = run(one(closed_port, True)), run(one(closed_port, False))
    assert isinstance(a, aiohttp.ClientConnectorError)
    assert (type(a), str(a)) == (type(b), str(b))


def test_a_cancelled_call_never_leaves_its_reply_for_the_next():
    async def go():
        up = Upstream(lambda n, req: [0.3, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                      % len(req.split(b"\r\n\r\n")[1]) +
                                      req.split(b"\r\n\r\n")[1]])
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AiohttpAsync(OpenAIProvider(api_key="k",
                                             base_url=f"http://127.0.0.1:{port}/v1"))
        try:
            first = asyncio.ensure_future(client.post("/c", b'{"who":"first"}', None))
            await asyncio.sleep(0.05)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            second = await client.post("/c", b'{"who":"second"}', None)
            return second, up.connections
        finally:
            await client.aclose()
            server.close()

    (status, _h, body), connections = run(go())
    assert (status, body, connections) == (200, b'{"who":"second"}', 2)


def test_many_concurrent_calls_keep_within_the_connection_limit():
    async def go():
        up = Upstream(lambda n, req: [0.01, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                                      % len(req.split(b"\r\n\r\n")[1]) +
                                      req.split(b"\r\n\r\n")[1]])
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AiohttpAsync(OpenAIProvider(api_key="k", max_connections=5,
                                             base_url=f"http://127.0.0.1:{port}/v1"))
        try:
            replies = await asyncio.gather(*(client.post("/c", b'{"i":%d}' % i, None)
                                             for i in range(200)))
            return [r[2] for r in replies], up.connections
        finally:
            await client.aclose()
            server.close()

    bodies, connections = run(go())
    assert bodies == [b'{"i":%d}' % i for i in range(200)]
    assert connections <= 5


@pytest.mark.parametrize("url,headers", [
    ("http://user:pw@h/v1", {}), ("ftp://h/v1", {}), ("http://h/v1?x=1", {}),
    ("http://h\u00e9.example/v1", {}), ("http://h:99999/v1", {}), ("http:///v1", {}),
    ("http://h/v1", {"x-bad": "a\r\nInjected: 1"}), ("http://h/v1", {"x-u": "caf\u00e9"})])
def test_what_it_leaves_to_aiohttp(url, headers):
    assert lean_for(url, headers, 10, None) is None


def test_host_header_as_aiohttp_writes_it():
    assert lean_for("http://H.example:80/v1", {}, 1, None).head.startswith("Host: h.example\r\n")
    assert lean_for("https://h:8443/v1", {}, 1, None).head.startswith("Host: h:8443\r\n")
    assert lean_for("http://[::1]:81/", {}, 1, None).head.startswith("Host: [::1]:81\r\n")


def test_a_proxy_keeps_aiohttp(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async def go():
        client = AiohttpAsync(OpenAIProvider(api_key="k",
                                             base_url="http://upstream.example/v1"))
        await client.aclose()
        return client.lean

    assert run(go()) is None


def test_new_ids_differ_in_a_forked_child():
    import os

    from ember.gateway.errors import new_id

    parent = new_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, new_id().encode())
        os._exit(0)
    os.close(w)
    child = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert len(child) == len(parent) == 24 and child[:12] != parent[:12]


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_upstream_answers_or_fails_as_aiohttp(tls_files, monkeypatch, trusted):
    import ssl

    from ember.models.providers import _transport

    cert, key = tls_files
    if trusted:
        monkeypatch.setattr(_transport, "_ssl_context", ssl.create_default_context(cafile=cert))
    else:
        monkeypatch.setattr(_transport, "_ssl_context", None)

    async def one(lean: bool):
        up = Upstream(lambda n, req: [OK])
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = AiohttpAsync(OpenAIProvider(api_key="k",
                                             base_url=f"https://localhost:{port}/v1"))
        assert client.lean is not None
        if not lean:
            client.lean = None
        try:
            status, headers, body = await client.post("/c", b"{}", 5.0)
            return status, list(headers.items()), body, up.requests
        except Exception as exc:  # NOTE: compared below
            return type(exc), str(exc).replace(str(port), "PORT")
        finally:
            await client.aclose()
            server.close()

    a, b = run(one(True)), run(one(False))
    if trusted:
        assert a[:3] == b[:3] == (200, a[1], b'{"ok":true}')
        assert [_portless(r) for r in a[3]] == [_portless(r) for r in b[3]]
    else:
        assert a == b and issubclass(a[0], aiohttp.ClientConnectorCertificateError), (a, b)


@pytest.mark.parametrize("middleware", [False, True])
def test_the_request_id_is_the_middleware_s_when_one_set_it(fake, serve, middleware):
    import httpx

    from ember.gateway.openai import mount_openai
    from tests.gateway.conftest import gateway_app

    app = gateway_app()
    if middleware:
        async def set_id(request, call_next):
            request.state.request_id = "mw-fixed-1"
            return await call_next(request)

        app.add_middleware(set_id)
    mount_openai(app, "gpt-4o-mini", api_keys={"k": "sk-rid-key-01"})
    url = serve(app)
    for auth in ("Bearer sk-rid-key-01", "Bearer wrong"):  # NOTE: served and refused
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": auth},
                       timeout=GUARD, json={"model": "gpt-4o-mini",
                                            "messages": [{"role": "user", "content": "hi"}]})
        rid = r.headers["x-request-id"]
        assert rid == "mw-fixed-1" if middleware else rid.startswith("req_"), (r.status_code,
                                                                              rid)


def test_rate_headers_once_on_served_refused_upstream_and_dropped_replies(fake, serve):
    import httpx

    from ember.gateway import KeyLimits
    from ember.gateway.openai import mount_openai
    from tests.gateway.conftest import gateway_app
    from tests.models._fake import Reply

    app = gateway_app()
    mount_openai(app, ["gpt-4o-mini", "claude-sonnet-4-5"], api_keys={"k": "sk-rate-key-01"},
                 limits=KeyLimits(rpm=100, tpm=100_000), drop_params=True)
    url = serve(app)

    def post(model: str, **extra) -> httpx.Response:
        return httpx.post(url + "/v1/chat/completions", timeout=GUARD,
                          headers={"authorization": "Bearer sk-rate-key-01"},
                          json={"model": model, "max_tokens": 10, **extra,
                                "messages": [{"role": "user", "content": "hi"}]})

    served = post("gpt-4o-mini")
    fake.queue("openai", Reply(status=400, body=b'{"error":{"message":"boom"}}'))
    failed = post("gpt-4o-mini")
    dropped = post("claude-sonnet-4-5", seed=3)
    assert (served.status_code, dropped.status_code) == (200, 200)
    assert failed.status_code == 400 and "upstream" in failed.text, failed.text
    assert dropped.headers["x-ember-dropped-params"] == "seed"
    for r in (served, failed, dropped):
        names = [k.lower() for k, _v in r.headers.raw]
        assert names.count(b"x-ratelimit-limit-requests") == 1, names
        assert names.count(b"x-ratelimit-remaining-tokens") == 1, names
        assert names.count(b"x-request-id") == 1, names


def test_a_connection_idle_past_the_keepalive_is_not_reused(monkeypatch):
    from ember.models.providers import _h1client

    async def go():
        up = Upstream(lambda n, req: [OK])
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = AiohttpAsync(OpenAIProvider(api_key="k",
                                             base_url=f"http://127.0.0.1:{port}/v1"))
        try:
            for _ in range(2):
                await client.post("/c", b"{}", None)
            monkeypatch.setattr(_h1client, "KEEPALIVE", 0.0)
            for _ in range(2):
                await client.post("/c", b"{}", None)
            return up.connections, client.lean.busy
        finally:
            await client.aclose()
            server.close()

    assert run(go()) == (3, 1)
