"""FileResponse over real sockets: full, HEAD, ranges, validators, traversal, names."""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import time

import httpx
import pytest

from ember import Ember, FileResponse, Request
from ember.files import content_disposition, parse_ranges, safe_join

BIG = 3 * 1024 * 1024 + 17


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "public"
    root.mkdir()
    (root / "ten.txt").write_bytes(b"0123456789" * 10)
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (root / "empty.dat").write_bytes(b"")
    (root / "page.html").write_text("<h1>hi</h1>")
    (root / "sub").mkdir()
    (root / "sub" / "deep.json").write_text('{"ok": true}')
    (root / "na\u00efve r\u00e9sum\u00e9.txt").write_text("unicode")
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "inner-link").symlink_to(root / "ten.txt")
    return root


@pytest.fixture
def url(serve, tree):
    app = Ember()

    @app.get("/files/{name:path}")
    async def files(name: str):
        return FileResponse(name, root=tree)

    @app.get("/safe")
    async def safe(request: Request):
        return FileResponse.safe(tree, request.query_params.get("p", ""))

    @app.get("/download")
    async def download(request: Request):
        return FileResponse(tree / "ten.txt", filename=request.query_params["name"],
                            content_disposition_type=request.query_params.get("type",
                                                                              "attachment"))

    @app.get("/custom")
    async def custom():
        return FileResponse(tree / "ten.txt", media_type="application/x-custom",
                            headers={"cache-control": "max-age=60"}, chunk_size=7)

    @app.get("/absent")
    async def absent():
        return FileResponse(tree / "nope.txt")

    @app.get("/dir")
    async def directory():
        return FileResponse(tree / "sub")

    return serve(app)


def test_full_file_and_headers(url, tree):
    r = httpx.get(url + "/files/big.bin")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == \
        hashlib.sha256((tree / "big.bin").read_bytes()).digest()
    assert r.headers["content-length"] == str(BIG)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('W/"')
    mtime = int((tree / "big.bin").stat().st_mtime)
    assert email.utils.parsedate_to_datetime(r.headers["last-modified"]).timestamp() == mtime
    assert httpx.get(url + "/files/page.html").headers["content-type"] == \
        "text/html; charset=utf-8"
    assert httpx.get(url + "/files/sub/deep.json").json() == {"ok": True}
    empty = httpx.get(url + "/files/empty.dat")
    assert empty.status_code == 200 and empty.content == b""
    assert empty.headers["content-length"] == "0"


def test_custom_media_type_headers_and_small_chunks(url):
    r = httpx.get(url + "/custom")
    assert r.content == b"0123456789" * 10
    assert r.headers["content-type"] == "application/x-custom"
    assert r.headers["cache-control"] == "max-age=60"


def test_head_sends_headers_only(url):
    sock_url = url.removeprefix("http://")
    host, port = sock_url.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"HEAD /files/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /files/ten.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert f"content-length: {BIG}".encode() in first.lower()
    # nothing of the big file follows: the next bytes are the pipelined GET's answer
    assert rest.startswith(b"HTTP/1.1 200")
    assert rest.endswith(b"0123456789" * 10)


def test_keep_alive_across_many_file_responses(url):
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(url + "/files/ten.txt").content == b"0123456789" * 10
            r = client.get(url + "/files/ten.txt", headers={"range": "bytes=0-0,5-5"})
            assert r.status_code == 206


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-9", (0, 10)),
    ("bytes=95-", (95, 100)),
    ("bytes=-3", (97, 100)),
    ("bytes=-500", (0, 100)),
    ("bytes=90-200", (90, 100)),
    ("BYTES = 10-19", (10, 20)),
    ("bytes=0-0", (0, 1)),
    ("bytes=99-99", (99, 100)),
    ("bytes=0-4,3-9", (0, 10)),  # overlapping ranges are merged into one
    ("bytes=0-4,5-9", (0, 10)),  # and adjacent ones too
    ("bytes=,0-9,", (0, 10)),
])
def test_single_range(url, header, expected):
    r = httpx.get(url + "/files/ten.txt", headers={"range": header})
    start, end = expected
    assert r.status_code == 206, header
    assert r.content == (b"0123456789" * 10)[start:end]
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/100"
    assert r.headers["content-length"] == str(end - start)


def test_range_of_a_big_file(url, tree):
    data = (tree / "big.bin").read_bytes()
    r = httpx.get(url + "/files/big.bin", headers={"range": "bytes=1000000-2999999"})
    assert r.status_code == 206 and r.content == data[1000000:3000000]


def _parts(r: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("boundary=", 1)[1].encode()
    body = r.content
    assert body.endswith(b"--" + boundary + b"--\r\n")
    assert int(r.headers["content-length"]) == len(body)
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        head, _, payload = chunk[2:-2].partition(b"\r\n\r\n")
        headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n"))
        parts.append((headers, payload))
    return parts


def test_multiple_ranges_are_multipart_byteranges(url, tree):
    r = httpx.get(url + "/files/ten.txt", headers={"range": "bytes=50-52, 0-1, -2"})
    assert r.status_code == 206
    parts = _parts(r)
    assert [(h["content-range"], p) for h, p in parts] == [
        ("bytes 0-1/100", b"01"), ("bytes 50-52/100", b"012"), ("bytes 98-99/100", b"89")]
    assert all(h["content-type"].startswith("text/plain") for h, _ in parts)
    data = (tree / "big.bin").read_bytes()
    r = httpx.get(url + "/files/big.bin", headers={"range": "bytes=0-99999,3000000-"})
    assert [p for _, p in _parts(r)] == [data[:100000], data[3000000:]]


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=500-600", "bytes=100-100,200-"])
def test_unsatisfiable_range_is_416(url, header):
    r = httpx.get(url + "/files/ten.txt", headers={"range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */100"
    empty = httpx.get(url + "/files/empty.dat", headers={"range": "bytes=0-"})
    assert empty.status_code == 416 and empty.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", [
    "bytes=abc", "bytes=5-2", "items=0-1", "bytes", "bytes=", "bytes=1-2-3", "bytes=-",
    "bytes=0x10-20", "bytes=+1-2", b"bytes=\xd9\xa1-2", b"bytes=\xb2-3", "=0-1", "bytes=0-1;x",
    "bytes=" + ",".join(f"{i}-{i}" for i in range(100)),  # too many ranges: a DoS pattern
])
def test_malformed_range_is_ignored(url, header):
    r = httpx.get(url + "/files/ten.txt", headers={"range": header})
    assert r.status_code == 200 and r.content == b"0123456789" * 10
    assert "content-range" not in r.headers


def test_range_is_only_for_get(url):
    r = httpx.head(url + "/files/ten.txt", headers={"range": "bytes=0-1"})
    assert r.status_code == 200 and r.headers["content-length"] == "100"


def test_conditional_requests(url, tree):
    r = httpx.get(url + "/files/ten.txt")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    for inm in (etag, etag.removeprefix("W/"), f'"zzz", {etag}', "*"):
        r304 = httpx.get(url + "/files/ten.txt", headers={"if-none-match": inm})
        assert r304.status_code == 304, inm
        assert r304.content == b"" and "content-length" not in r304.headers
        assert r304.headers["etag"] == etag and r304.headers["last-modified"] == modified
    assert httpx.head(url + "/files/ten.txt",
                      headers={"if-none-match": etag}).status_code == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
    r = httpx.get(url + "/files/ten.txt",
                  headers={"if-none-match": '"other"', "if-modified-since": modified})
    assert r.status_code == 200
    assert httpx.get(url + "/files/ten.txt",
                     headers={"if-modified-since": modified}).status_code == 304
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert httpx.get(url + "/files/ten.txt",
                     headers={"if-modified-since": later}).status_code == 304
    earlier = email.utils.formatdate(time.time() - 86400 * 365, usegmt=True)
    assert httpx.get(url + "/files/ten.txt",
                     headers={"if-modified-since": earlier}).status_code == 200
    for junk in ("yesterday", "", "Mon, 99 Foo 2020 99:99:99 GMT"):
        assert httpx.get(url + "/files/ten.txt",
                         headers={"if-modified-since": junk}).status_code == 200
    # a changed file gets a new validator
    past = time.time() - 10
    os.utime(tree / "ten.txt", (past, past))
    r = httpx.get(url + "/files/ten.txt", headers={"if-none-match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag


def test_if_range(url):
    r = httpx.get(url + "/files/ten.txt")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    ok = httpx.get(url + "/files/ten.txt", headers={"range": "bytes=0-1", "if-range": modified})
    assert ok.status_code == 206 and ok.content == b"01"
    stale = email.utils.formatdate(time.time() - 86400 * 365, usegmt=True)
    for validator in (stale, etag, etag.removeprefix("W/"), "junk"):
        r = httpx.get(url + "/files/ten.txt", headers={"range": "bytes=0-1",
                                                        "if-range": validator})
        assert r.status_code == 200 and len(r.content) == 100, validator


@pytest.mark.parametrize("path", [
    "../secret.txt", "..%2Fsecret.txt", "%2e%2e/secret.txt", "%2E%2E%2Fsecret.txt",
    "sub/../../secret.txt", "sub/%2e%2e/%2e%2e/secret.txt", "..%5Csecret.txt",
    "sub%5C..%5C..%5Csecret.txt", "%2Fetc%2Fpasswd", "/etc/passwd", "//etc/passwd",
    "ten.txt%00.png", "%00", "escape", "sub/../escape", ".", "sub", "", "~/secret.txt",
])
def test_path_traversal_is_impossible(url, path):
    r = httpx.get(url + "/files/" + path)
    assert r.status_code == 404, path  # never a hint that something is outside
    assert b"secret" not in r.content and b"root:" not in r.content


@pytest.mark.parametrize("path", [
    "../secret.txt", "/etc/passwd", "ten.txt\x00", "..\\secret.txt", "C:\\secret.txt",
    "escape", "sub/../../secret.txt",
])
def test_safe_constructor_rejects_escapes(url, path):
    r = httpx.get(url + "/safe", params={"p": path})
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_inside_root_is_served(url):
    assert httpx.get(url + "/safe", params={"p": "sub/../ten.txt"}).status_code == 200
    assert httpx.get(url + "/safe", params={"p": "inner-link"}).content == b"0123456789" * 10
    assert httpx.get(url + "/files/na%C3%AFve%20r%C3%A9sum%C3%A9.txt").text == "unicode"


def test_missing_file_and_directory_are_404(url):
    for path in ("/absent", "/dir", "/files/nope.txt", "/files/sub/"):
        r = httpx.get(url + path)
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}, path


def test_fifo_loop_and_long_names_are_404_without_hanging(url, tree):
    os.mkfifo(tree / "pipe")
    (tree / "loop").symlink_to(tree / "loop")
    for path in ("pipe", "loop", "x" * 5000):
        r = httpx.get(url + "/files/" + path, timeout=5)
        assert r.status_code == 404, path


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_403(url, tree):
    (tree / "locked.txt").write_text("x")
    (tree / "locked.txt").chmod(0)
    assert httpx.get(url + "/files/locked.txt").status_code == 403


@pytest.mark.parametrize("name,expected", [
    ("report.pdf", 'attachment; filename="report.pdf"'),
    ("na\u00efve r\u00e9sum\u00e9.txt",
     "attachment; filename=\"na_ve r_sum_.txt\"; "
     "filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"),
    ('say "hi".txt', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
    ("a\\b.txt", 'attachment; filename="b.txt"'),
    ("../../etc/passwd", 'attachment; filename="passwd"'),
    ("\u6587\u4ef6.txt", "attachment; filename=\"__.txt\"; "
                         "filename*=UTF-8''%E6%96%87%E4%BB%B6.txt"),
])
def test_content_disposition(url, name, expected):
    r = httpx.get(url + "/download", params={"name": name})
    assert r.headers["content-disposition"] == expected
    assert r.content == b"0123456789" * 10


def test_header_injection_through_a_filename_is_impossible(url):
    r = httpx.get(url + "/download", params={"name": "x.txt\r\nSet-Cookie: a=b"})
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert "\r" not in r.headers["content-disposition"]
    r = httpx.get(url + "/download", params={"name": "x.txt", "type": "inline"})
    assert r.headers["content-disposition"] == 'inline; filename="x.txt"'


def test_helpers():
    assert parse_ranges("bytes=0-1", 0) == []
    assert parse_ranges("bytes=-0", 10) == []
    assert parse_ranges("bytes=0-", 10) == [(0, 10)]
    assert parse_ranges("bytes=1-2,4-5", 10) == [(1, 3), (4, 6)]
    assert parse_ranges("bytes=a-b", 10) is None
    assert content_disposition("") == 'attachment; filename="download"'
    assert safe_join("/srv", "../etc") is None and safe_join("/srv", "a/b") == "/srv/a/b"
    with pytest.raises(ValueError):
        FileResponse("x", content_disposition_type="evil")
    with pytest.raises(ValueError):
        FileResponse("x", chunk_size=0)


def test_files_over_http2(serve, tree):
    pytest.importorskip("h2")
    app = Ember()

    @app.get("/files/{name:path}")
    async def files(name: str):
        return FileResponse(name, root=tree)

    url = serve(app, http2=True)
    data = (tree / "big.bin").read_bytes()
    with httpx.Client(http1=False, http2=True, base_url=url, timeout=30) as c:
        r = c.get("/files/big.bin")
        assert r.http_version == "HTTP/2" and r.content == data
        r = c.get("/files/ten.txt", headers={"range": "bytes=2-4"})
        assert r.status_code == 206 and r.content == b"234"
        r = c.get("/files/ten.txt", headers={"range": "bytes=0-0,9-9"})
        assert r.status_code == 206 and b"\r\n0\r\n" in r.content
        assert c.head("/files/big.bin").headers["content-length"] == str(BIG)
        etag = r.headers["etag"]
        assert c.get("/files/ten.txt", headers={"if-none-match": etag}).status_code == 304
        assert c.get("/files/../secret.txt").status_code == 404
