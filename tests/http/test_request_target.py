"""RFC 9112 §3 (request line, request-target forms, Host) rule by rule (issue 23).

Each MUST (and the SHOULDs we follow) is a test, over a real server and raw
sockets; the parser twins are covered by CI's compiled and pure runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ember import Ember, Request
from tests.conftest import RunningServer
from tests.http._raw import exchange as raw_exchange


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    app = Ember(openapi_url=None)

    @app.get("/where")
    async def where(request: Request):
        return {"url": request.url, "path": request.path,
                "query": request.query_string.decode()}

    @app.get("/")
    async def root(request: Request):
        return {"url": request.url, "path": request.path}

    @app.route("/{rest:path}", methods=["OPTIONS"])
    async def options(rest: str):
        return "options"

    srv = RunningServer(app)
    yield srv
    srv.stop()


def send(server: RunningServer, raw: bytes) -> tuple[int, bytes, bool]:
    """(status, body, closed) of the first response to ``raw``."""
    out, closed = raw_exchange(server.port, raw)
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head[9:12]), body, closed


def line(request_line: str, *headers: str) -> bytes:
    return ("\r\n".join([request_line, *headers]) + "\r\n\r\n").encode("latin-1")


# -- §3.2: Host --------------------------------------------------------------------------


def test_http11_without_host_is_400(server):
    # "A server MUST respond with a 400 ... to any HTTP/1.1 request ... that lacks a Host"
    status, _, closed = send(server, line("GET /where HTTP/1.1"))
    assert status == 400 and closed


def test_http10_without_host_is_served(server):
    assert send(server, line("GET /where HTTP/1.0"))[0] == 200


@pytest.mark.parametrize("minor", [0, 1])
def test_more_than_one_host_line_is_400(server, minor):
    # "... and to any request message that contains more than one Host header field line"
    status, _, closed = send(server, line(f"GET /where HTTP/1.{minor}", "Host: a", "Host: a"))
    assert status == 400 and closed


@pytest.mark.parametrize("value", ["a b", "user@example.com", "example.com:80:80", "ex/ample",
                                   "example.com:8x", "[::1", "ex\"ample", "exa{mple}",
                                   "\x80host", "a\\b", "host?q", "host#f"])
def test_host_with_an_invalid_value_is_400(server, value):
    # "... or a Host header field with an invalid field value"
    status, body, closed = send(server, line("GET /where HTTP/1.1", f"Host: {value}"))
    assert status == 400 and closed and b"Host" in body


@pytest.mark.parametrize("value", ["example.com", "example.com:8080", "127.0.0.1:1", "[::1]:80",
                                   "[::1]", "xn--bcher-kva.example", "a_b.example", "",
                                   "EXAMPLE.COM:", "%41.example"])
def test_valid_host_values_are_served(server, value):
    assert send(server, line("GET /where HTTP/1.1", f"Host: {value}"))[0] == 200


# -- §3.2.1 origin-form ------------------------------------------------------------------------


def test_origin_form(server):
    status, body, closed = send(server, line("GET /where?a=1&b HTTP/1.1", "Host: h.example"))
    assert status == 200 and not closed
    assert json.loads(body) == {"url": "http://h.example/where?a=1&b", "path": "/where",
                                "query": "a=1&b"}


# -- §3.2.2 absolute-form ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["http://t.example/where?x=1", "HTTP://t.example/where?x=1",
                                    "https://t.example/where?x=1"])
def test_absolute_form_is_accepted_and_its_authority_wins_over_host(server, target):
    # "A server MUST accept the absolute-form" / "MUST ignore the received Host header field
    # ... and instead use the host information of the request-target"
    status, body, _ = send(server, line(f"GET {target} HTTP/1.1", "Host: other.example"))
    assert status == 200
    got = json.loads(body)
    assert got["path"] == "/where" and got["query"] == "x=1"
    assert got["url"].endswith("://t.example/where?x=1")


def test_absolute_form_with_an_empty_path_is_the_root(server):
    status, body, _ = send(server, line("GET http://t.example HTTP/1.1", "Host: t.example"))
    assert status == 200 and json.loads(body)["path"] == "/"


@pytest.mark.parametrize("target", ["http:///where", "http://", "http://user@t.example/where",
                                    "http://u:p@t.example/", "http://t.example:8x/where",
                                    "http://t example/", "ftp://t.example/where",
                                    "http:/t.example/where"])
def test_invalid_absolute_forms_are_400(server, target):
    # RFC 9110 §4.2.1: an http URI with an empty host MUST be rejected; §4.2.4: userinfo
    status, _, closed = send(server, line(f"GET {target} HTTP/1.1", "Host: t.example"))
    assert status == 400 and closed


# -- §3.2.3 authority-form, §3.2.4 asterisk-form -------------------------------------------------


def test_authority_form_is_only_for_connect(server):
    status, _, closed = send(server, line("GET t.example:443 HTTP/1.1", "Host: t.example"))
    assert status == 400 and closed
    # CONNECT is not implemented: 501 (RFC 9110 §9.3.6 lets a server refuse it)
    status, _, closed = send(server, line("CONNECT t.example:443 HTTP/1.1",
                                          "Host: t.example:443"))
    assert status == 501 and closed


def test_connect_with_a_non_authority_target_is_400(server):
    status, _, _ = send(server, line("CONNECT /where HTTP/1.1", "Host: t.example"))
    assert status in (400, 501)
    status, _, _ = send(server, line("CONNECT a b:1 HTTP/1.1", "Host: t.example"))
    assert status == 400


def test_asterisk_form_is_for_options_only(server):
    status, body, closed = send(server, line("OPTIONS * HTTP/1.1", "Host: t.example"))
    assert status == 200 and body == b"options" and not closed
    for method in ("GET", "POST", "HEAD", "DELETE"):
        status, _, closed = send(server, line(f"{method} * HTTP/1.1", "Host: t.example"))
        assert status == 400 and closed


# -- §3: the request line ---------------------------------------------------------------------


@pytest.mark.parametrize("request_line,status", [
    ("GET  /where HTTP/1.1", 400), ("GET /where  HTTP/1.1", 400), ("GET\t/where HTTP/1.1", 400),
    ("GET /where HTTP/1.1 ", 400), (" GET /where HTTP/1.1", 400), ("GET /wh ere HTTP/1.1", 400),
    ("GET /where", 400), ("GET /where HTTP/1.1 extra", 400), ("get /where HTTP/1.1", 501),
    ("GET /where HTTP/2.0", 505), ("GET /where HTTP/1.2", 505), ("GET /where http/1.1", 400),
    ("GET /wh\x7fere HTTP/1.1", 400), ("GET /wh\x00ere HTTP/1.1", 400),
    ("GET where HTTP/1.1", 400), ("GET ?x HTTP/1.1", 400),
])
def test_invalid_request_lines(server, request_line, status):
    # "Recipients of an invalid request-line SHOULD respond with either a 400"; method is
    # case-sensitive (RFC 9110 §9.1); unknown versions 505
    got, _, closed = send(server, line(request_line, "Host: t.example"))
    assert got == status and closed


def test_long_target_is_414(server):
    status, _, closed = send(server, line("GET /" + "a" * 9000 + " HTTP/1.1", "Host: t.example"))
    assert status == 414 and closed


def test_empty_lines_before_the_request_line_are_ignored(server):
    # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line
    assert send(server, b"\r\n\r\n" + line("GET /where HTTP/1.1", "Host: t.example"))[0] == 200
