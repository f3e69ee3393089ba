"""The request parser on its own: framing, limits and the smuggling corpus."""

from __future__ import annotations

import pytest

from tests.http.parsers import run_ember, twin_params

HEAD = b"POST /p HTTP/1.1\r\nHost: h\r\n"


@pytest.fixture(params=twin_params())
def parser(request):
    return request.param


def test_simple_get(parser):
    msgs, err = run_ember(parser, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: 1\r\nx-y: 2\r\n\r\n")
    assert err is None
    (m,) = msgs
    assert m["method"] == "GET" and m["target"] == b"/a?b=1" and m["complete"]
    assert m["headers"] == [(b"host", b"x"), (b"x-y", b"1"), (b"x-y", b"2")]


def test_empty_value_and_ows_stripped(parser):
    msgs, err = run_ember(parser, b"GET / HTTP/1.1\r\nHost: x\r\nA:\r\nB: \t v \t\r\n\r\n")
    assert err is None
    assert msgs[0]["headers"][1:] == [(b"a", b""), (b"b", b"v")]


def test_content_length_body_byte_by_byte(parser):
    data = HEAD + b"Content-Length: 5\r\n\r\nhello"
    msgs, err = run_ember(parser, data, list(range(len(data))))
    assert err is None and msgs[0]["body"] == b"hello" and msgs[0]["complete"]


def test_chunked_with_extensions_and_trailers(parser):
    data = (HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
            b"5;name=val\r\nhello\r\n6;q=\"a b\"\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    msgs, err = run_ember(parser, data, list(range(0, len(data), 3)))
    assert err is None and msgs[0]["body"] == b"hello world" and msgs[0]["complete"]


def test_pipelined_messages(parser):
    one = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    two = HEAD + b"Content-Length: 2\r\n\r\nok"
    msgs, err = run_ember(parser, one + two + one)
    assert err is None
    assert [m["target"] for m in msgs] == [b"/1", b"/p", b"/1"]
    assert msgs[1]["body"] == b"ok"


def test_http10_keep_alive_rules(parser):
    msgs, _ = run_ember(parser, b"GET / HTTP/1.0\r\n\r\n")
    assert msgs[0]["keep_alive"] is False
    msgs, _ = run_ember(parser, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert msgs[0]["keep_alive"] is True
    msgs, _ = run_ember(parser, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert msgs[0]["keep_alive"] is False


def test_absolute_form_and_asterisk(parser):
    msgs, err = run_ember(parser, b"GET http://h/x?y HTTP/1.1\r\nHost: h\r\n\r\n")
    assert err is None and msgs[0]["target"] == b"http://h/x?y"
    msgs, err = run_ember(parser, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert err is None and msgs[0]["target"] == b"*"


def test_leading_empty_lines_ignored(parser):
    msgs, err = run_ember(parser, b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert err is None and len(msgs) == 1


# -- the smuggling corpus: each must be refused with this status -------------------

SMUGGLING = {
    "CL.TE": (HEAD + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400),
    "TE.CL": (HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
    "TE xchunked": (HEAD + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    "TE chunked, identity": (HEAD + b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    "TE identity": (HEAD + b"Transfer-Encoding: identity\r\n\r\n", 400),
    "TE chunked trailing comma": (HEAD + b"Transfer-Encoding: chunked,\r\n\r\n", 400),
    "TE duplicated header": (HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    "TE chunked twice": (HEAD + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    "TE space before colon": (HEAD + b"Transfer-Encoding : chunked\r\n\r\n", 400),
    "TE tab before colon": (HEAD + b"Transfer-Encoding\t: chunked\r\n\r\n", 400),
    "TE obs-fold": (HEAD + b"Transfer-Encoding:\r\n chunked\r\n\r\n", 400),
    "TE vertical tab": (HEAD + b"Transfer-Encoding: \x0bchunked\r\n\r\n", 400),
    "CL duplicate same": (HEAD + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    "CL duplicate different": (HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
    "CL comma list": (HEAD + b"Content-Length: 1, 1\r\n\r\nx", 400),
    "CL plus sign": (HEAD + b"Content-Length: +1\r\n\r\nx", 400),
    "CL negative": (HEAD + b"Content-Length: -1\r\n\r\n", 400),
    "CL hex": (HEAD + b"Content-Length: 0x1\r\n\r\nx", 400),
    "CL empty": (HEAD + b"Content-Length: \r\n\r\n", 400),
    "CL overflow": (HEAD + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    "CL inner space": (HEAD + b"Content-Length: 1 1\r\n\r\n", 400),
    "bare LF request line": (b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
    "bare LF header": (b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),
    "bare LF end of head": (b"GET / HTTP/1.1\r\nHost: h\n\n", 400),
    "bare CR in header": (b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400),
    "NUL in value": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
    "NUL in name": (b"GET / HTTP/1.1\r\nHost: h\r\nX\x00: a\r\n\r\n", 400),
    "DEL in value": (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400),
    "empty header name": (b"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", 400),
    "space in header name": (b"GET / HTTP/1.1\r\nHost: h\r\nX Y: a\r\n\r\n", 400),
    "chunk size with space": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", 400),
    "chunk size 0x": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n", 400),
    "chunk size negative": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n", 400),
    "chunk size overflow": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n", 400),
    "chunk size huge": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400),
    "chunk size empty": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n\r\nx\r\n0\r\n\r\n", 400),
    "chunk data too long": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\nxx\r\n0\r\n\r\n", 400),
    "chunk bare LF after data": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n", 400),
    "chunk ext oversized": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"a" * 5000 + b"\r\n", 400),
    "chunk ext invalid": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n1;a b\r\nx\r\n0\r\n\r\n", 400),
    "lowercase method": (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    "unknown method": (b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
    "HTTP/1.2": (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
    "HTTP/2.1": (b"GET / HTTP/2.1\r\nHost: h\r\n\r\n", 505),
    "lowercase version": (b"GET / http/1.1\r\nHost: h\r\n\r\n", 400),
    "target without slash": (b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "URL with 0x80": (b"GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "URL with tab": (b"GET /\tx HTTP/1.1\r\nHost: h\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_corpus_refused(parser, name):
    data, status = SMUGGLING[name]
    msgs, err = run_ember(parser, data)
    assert err is not None, f"{name} was accepted: {msgs}"
    assert err.status == status, (name, err)
    # nothing after the refusal may be delivered as a request
    assert all(m["target"] != b"SMUGGLED" for m in msgs)


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_corpus_agrees_with_llhttp(name):
    pytest.importorskip("httptools")
    from tests.http.parsers import run_llhttp

    data, _ = SMUGGLING[name]
    _, rejected = run_llhttp(data + b"\r\n\r\n")
    assert rejected, f"llhttp accepts {name}; the corpus entry is not a smuggling case"


def test_limits(parser):
    _, err = run_ember(parser, b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", max_url_size=50)
    assert err.status == 414
    many = b"".join(b"X-%d: v\r\n" % i for i in range(20))
    _, err = run_ember(parser, b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", max_headers=10)
    assert err.status == 431
    big = b"X: " + b"v" * 500 + b"\r\n"
    _, err = run_ember(parser, b"GET / HTTP/1.1\r\nHost: h\r\n" + big + b"\r\n",
                       max_header_size=200)
    assert err.status == 431
    # refused before the head is complete: no unbounded buffering
    _, err = run_ember(parser, b"GET / HTTP/1.1\r\nX: " + b"v" * 1000, max_header_size=200)
    assert err.status == 431


def test_error_state_is_sticky(parser):
    from ember.http.errors import HttpParserError

    class Owner:
        def on_headers(self, *a):
            return False

        def on_body(self, b):
            pass

        def on_message_complete(self):
            pass

    p = parser.HttpRequestParser(Owner())
    with pytest.raises(HttpParserError):
        p.feed_data(b"BAD\n")
    with pytest.raises(HttpParserError):
        p.feed_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
