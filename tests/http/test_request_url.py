"""``request.url``: still a ``str``, with Starlette's attributes (``.path``, ``.port``...).

Over a real server (compiled Request, or the pure twin under EMBER_NO_EXTENSIONS=1),
with garbage Host headers that must never turn into a 500.
"""

from __future__ import annotations

import pickle
import socket

import httpx
import orjson
import pytest

from ember import Ember, Request
from ember.datastructures import URL


def url_app() -> Ember:
    app = Ember(openapi_url=None)

    @app.get("/{rest:path}")
    async def parts(request: Request):
        u = request.url
        return {"str": u, "is_str": isinstance(u, str), "scheme": u.scheme,
                "netloc": u.netloc, "hostname": u.hostname, "port": u.port, "path": u.path,
                "query": u.query, "startswith": u.startswith("http://"),
                "fstring": f"{u}", "replaced": u.replace(path="/other"),
                "with_page": u.include_query_params(page=2)}

    return app


def test_request_url_has_parts_and_stays_a_str(serve):
    url = serve(url_app())
    r = httpx.get(url + "/a/b%20c?x=1&y=2", headers={"host": "Api.Example.com:8443"})
    assert r.status_code == 200
    assert r.json() == {
        "str": "http://Api.Example.com:8443/a/b%20c?x=1&y=2", "is_str": True,
        "scheme": "http", "netloc": "Api.Example.com:8443", "hostname": "api.example.com",
        "port": 8443, "path": "/a/b%20c", "query": "x=1&y=2", "startswith": True,
        "fstring": "http://Api.Example.com:8443/a/b%20c?x=1&y=2",
        "replaced": "http://Api.Example.com:8443/other?x=1&y=2",
        "with_page": "http://Api.Example.com:8443/a/b%20c?x=1&y=2&page=2"}


def _raw_get(url: str, target: bytes, host: bytes) -> tuple[int, bytes]:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nhost: " + host + b"\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(("host", "hostname", "port"), [
    (b"h:abc", "h", None), (b"h:99999", "h", None), (b"h:", "h", None),
    (b"[::1]:8080", "::1", 8080), (b"[::1", "::1", None), (b"u:p@h:81", "h", 81),
    (b"h:-1", "h", None), (b"h:\xd9\xa3", "h\xd9", None),
])
def test_garbage_host_never_a_500(serve, host, hostname, port):
    url = serve(url_app())
    status, body = _raw_get(url, b"/x", host)
    if status == 400:  # refused by the wire: fine too (a reason, no 500)
        return
    assert status == 200, body
    got = orjson.loads(body)
    assert got["port"] == port
    assert got["hostname"] is None or got["hostname"].startswith(hostname[:1])


def test_absolute_form_target_wins_over_host(serve):
    url = serve(url_app())
    status, body = _raw_get(url, b"http://proxy.example:81/p?q=1", b"other")
    assert status == 200
    got = orjson.loads(body)
    assert (got["netloc"], got["port"], got["path"], got["query"]) == (
        "proxy.example:81", 81, "/p", "q=1")


def test_url_class():
    u = URL.build("HTTPS", "Ex.com", "/a", "b=1")
    assert u == "HTTPS://Ex.com/a?b=1" and u.scheme == "https" and u.is_secure
    assert (u.hostname, u.port, u.path, u.query, u.fragment) == ("ex.com", None, "/a", "b=1", "")
    parsed = URL("http://user:pw@[::1]:9/p?q#f")
    assert (parsed.username, parsed.password, parsed.hostname, parsed.port, parsed.path,
            parsed.query, parsed.fragment) == ("user", "pw", "::1", 9, "/p", "q", "f")
    assert URL("/relative?x").path == "/relative" and URL("/relative?x").scheme == ""
    assert u.replace(hostname="::1", port=8) == "https://[::1]:8/a?b=1"
    assert u.replace(port=80) == "https://Ex.com:80/a?b=1"
    with pytest.raises(TypeError):
        u.replace(host="x")
    with pytest.raises(AttributeError):
        u.path = "/x"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(u)).query == "b=1"
    assert orjson.dumps({"u": u}) == b'{"u":"HTTPS://Ex.com/a?b=1"}'
    assert repr(u) == "URL('HTTPS://Ex.com/a?b=1')"
    assert {u: 1}["HTTPS://Ex.com/a?b=1"] == 1


def test_the_url_is_built_only_when_read(monkeypatch, serve):
    """No per-request cost: a request that never reads request.url never builds one."""
    built = []
    original = URL.build.__func__

    def counting(cls, *args, **kwargs):
        built.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(URL, "build", classmethod(counting))
    app = Ember(openapi_url=None)

    @app.get("/plain")
    async def plain(request: Request):
        return {"path": request.path}

    @app.get("/reads")
    async def reads(request: Request):
        return {"port": request.url.port}

    url = serve(app)
    assert httpx.get(url + "/plain").status_code == 200
    assert built == []
    assert httpx.get(url + "/reads", headers={"host": "h:5"}).json() == {"port": 5}
    assert built == [("http", "h:5", "/reads", "")]
