"""The response writer's fast paths give exactly the bytes of the general path (both twins)."""

from __future__ import annotations

import importlib

import pytest

from ember._compat import is_compiled
from ember.datastructures import encode_header
from ember.responses import to_response

DATE = b"date: Mon, 30 Nov 2026 00:00:00 GMT\r\n"


def _twins() -> list:
    twins = [importlib.import_module("ember.http._writer_py")]
    compiled = importlib.import_module("ember.http._writer_c")
    if is_compiled(compiled):
        twins.append(compiled)
    return twins


@pytest.fixture(params=_twins(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def writer(request):
    return request.param


def _general(writer, result, keep_alive, minor, head_only) -> bytes:
    resp = to_response(result)
    return writer.encode_response(resp.status_code, resp.raw_headers, resp.body, keep_alive,
                                  minor, DATE, head_only)


RESULTS = ["Hello, World!", "", "ünïcødé ✓", b"\x00\xffraw", b"", {"message": "hi"}, [1, 2, 3],
           {}, [], {"nested": {"a": [1.5, None, True]}}, "x" * 100_000]


@pytest.mark.parametrize("result", RESULTS, ids=range(len(RESULTS)))
@pytest.mark.parametrize(("keep_alive", "minor"), [(True, 1), (False, 1), (True, 0), (False, 0)])
@pytest.mark.parametrize("head_only", [False, True])
def test_encode_result_equals_general_path(writer, result, keep_alive, minor, head_only):
    fast = writer.encode_result(result, keep_alive, minor, DATE, head_only)
    assert fast == _general(writer, result, keep_alive, minor, head_only)


@pytest.mark.parametrize("status", [100, 101, 200, 201, 204, 304, 404, 418, 500, 599])
def test_encode_simple_equals_encode_response(writer, status):
    body = b'{"id":42}'
    expected = writer.encode_response(status, [(b"content-type", b"application/json")], body,
                                      True, 1, DATE, False)
    assert writer.encode_simple(status, b"application/json", body, True, 1, DATE,
                                False) == expected


@pytest.mark.parametrize("length", [0, 1, 9, 10, 99, 100, 12345, 1_000_000])
def test_content_length_digits(writer, length):
    out = writer.encode_simple(200, b"text/plain", b"a" * length, True, 1, DATE, True)
    assert f"content-length: {length}\r\n".encode() in out and out.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("result", [None, ..., ("x", 201), bytearray(b"x"), 3, 1.5, object(),
                                    type("S", (str,), {})("sub"), type("D", (dict,), {})()])
def test_encode_result_declines_everything_else(writer, result):
    assert writer.encode_result(result, True, 1, DATE, False) is None


@pytest.mark.parametrize("status", [0, 99, 600, -1, "200", None])
def test_encode_simple_refuses_bad_status(writer, status):
    with pytest.raises((ValueError, TypeError)):
        writer.encode_simple(status, b"text/plain", b"x", True, 1, DATE, False)


@pytest.mark.parametrize(("ctype", "body", "date"), [("text/plain", b"x", DATE),
                                                     (b"text/plain", "x", DATE),
                                                     (b"text/plain", b"x", "date"),
                                                     (None, b"x", DATE),
                                                     (b"text/plain", bytearray(b"x"), DATE)])
def test_encode_simple_refuses_non_bytes(writer, ctype, body, date):
    with pytest.raises(TypeError, match="bytes"):
        writer.encode_simple(200, ctype, body, True, 1, date, False)


def test_encode_result_json_error_propagates(writer):
    with pytest.raises(TypeError):
        writer.encode_result({"x": object()}, True, 1, DATE, False)


def test_encode_head_api_unchanged(writer):
    parts = writer.encode_head(200, [encode_header("x-a", "1")], 5, True, 1, DATE, False)
    assert b"".join(parts) == (b"HTTP/1.1 200 OK\r\nserver: ember\r\n" + DATE
                               + b"x-a: 1\r\ncontent-length: 5\r\n\r\n")


@pytest.mark.parametrize("headers", [[], [(b"x-a", b"1")], [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                                            (b"content-type", b"text/html")]])
@pytest.mark.parametrize("status", [101, 200, 204, 304, 500])
@pytest.mark.parametrize(("keep_alive", "minor", "head_only"),
                         [(True, 1, False), (False, 1, False), (True, 0, True), (False, 0, False)])
def test_encode_response_equals_its_pieces(writer, headers, status, keep_alive, minor, head_only):
    body = b"0123456789" * 7
    no_body = status < 200 or status in (204, 304)
    parts = writer.encode_head(status, headers, -1 if no_body else len(body), keep_alive, minor,
                               DATE, False)
    expected = b"".join(parts) + (b"" if no_body or head_only else body)
    assert writer.encode_response(status, headers, body, keep_alive, minor, DATE,
                                  head_only) == expected


@pytest.mark.parametrize("headers", [[(b"x", "str")], [("x", b"v")], [(b"x",)], ((b"x", b"1"),),
                                     [[b"x", b"1"]]])
def test_encode_response_odd_header_shapes_follow_the_reference(headers):
    twins = _twins()
    results = []
    for w in twins:
        try:
            results.append(("ok", w.encode_response(200, headers, b"b", True, 1, DATE, False)))
        except Exception as exc:
            results.append(("err", type(exc)))
    assert all(r == results[0] for r in results)
