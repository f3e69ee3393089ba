"""Forms: urlencoded and streaming multipart, over real sockets and at the parser level."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
from typing import Any

import httpx
import pytest

from ember import Ember, FormData, Request, RouteLimits, UploadFile
from ember.datastructures import Headers
from ember.exceptions import HTTPException
from ember.forms import MultipartParser, parse_form, parse_options, sanitize_filename


async def _describe(form: FormData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            out.setdefault(key, []).append({
                "filename": value.filename, "raw": value.raw_filename, "size": value.size,
                "type": value.content_type, "sha": hashlib.sha256(data).hexdigest(),
                "head": data[:8].decode("latin-1"), "on_disk": not value.in_memory,
                "x-header": value.headers.get("x-note")})
        else:
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def url(serve):
    app = Ember()

    @app.post("/form", limits=RouteLimits(max_body_size=64 * 1024 * 1024))
    async def form(request: Request):
        async with await request.form() as data:
            return await _describe(data)

    @app.post("/limited", limits=RouteLimits(max_body_size=64 * 1024 * 1024))
    async def limited(request: Request):
        data = await request.form(max_files=2, max_fields=3, max_field_size=16,
                                  max_part_size=1000, spool_max_size=10)
        try:
            return await _describe(data)
        finally:
            await data.close()

    @app.post("/small-body")  # the server's default 1 MiB body limit
    async def small_body(request: Request):
        async with await request.form() as data:
            return {"n": len(data)}

    return serve(app)


def _multipart(parts: list[tuple[str, str]], boundary: str = "b0undary") -> bytes:
    """``parts``: (raw header lines, body) pairs, assembled verbatim."""
    out = b""
    for headers, body in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + body.encode("latin-1") + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _post(url: str, body: bytes, ctype: str = "multipart/form-data; boundary=b0undary",
          path: str = "/form") -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": ctype}, timeout=30)


# -- urlencoded -------------------------------------------------------------------------------


def test_urlencoded(url):
    r = httpx.post(url + "/form", content=b"a=1&b=x&b=y&empty=&flag&sp=a+b%20c&u=%C3%A9t%C3%A9"
                                          b"&&amp%3D=%26",
                   headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert r.status_code == 200, r.text
    assert r.json() == {"a": ["1"], "b": ["x", "y"], "empty": [""], "flag": [""],
                        "sp": ["a b c"], "u": ["été"], "amp=": ["&"]}
    assert httpx.post(url + "/form", data={}).json() == {}


@pytest.mark.parametrize("body,status", [
    (b"a=%ff%fe", 400),                       # not UTF-8 once decoded
    (b"a=\xff", 400),                          # raw bytes that are not UTF-8
    (b"&".join(b"k%d=v" % i for i in range(4)), 413),  # over max_fields=3
    (b"a=" + b"x" * 17, 413),                  # over max_field_size=16
    (b"k" * 17 + b"=1", 413),
])
def test_urlencoded_limits_and_errors(url, body, status):
    r = _post(url, body, "application/x-www-form-urlencoded", "/limited")
    assert r.status_code == status, r.text


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "", "multipart/mixed; "
                                   "boundary=x", "application/x-www-form-urlencodedx"])
def test_other_content_types_are_415(url, ctype):
    headers = {"content-type": ctype} if ctype else {}
    r = httpx.post(url + "/form", content=b"a=1", headers=headers)
    assert r.status_code == 415 and "form" in r.json()["detail"]


# -- multipart ----------------------------------------------------------------------------------


def test_multipart_fields_and_files(url):
    big = os.urandom(5 * 1024 * 1024 + 3)
    r = httpx.post(url + "/form", data={"title": "héllo", "tags": ["a", "b"]}, files=[
        ("doc", ("report.pdf", b"%PDF-1.7 data", "application/pdf")),
        ("big", ("big.bin", big, "application/octet-stream")),
        ("many", ("one.txt", b"1", "text/plain")),
        ("many", ("two.txt", b"22", "text/plain")),
        ("empty", ("empty.txt", b"", "text/plain")),
    ], timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == ["héllo"] and body["tags"] == ["a", "b"]
    doc = body["doc"][0]
    assert doc["filename"] == doc["raw"] == "report.pdf"
    assert (doc["size"], doc["type"], doc["head"], doc["on_disk"]) == (
        13, "application/pdf", "%PDF-1.7", False)
    assert body["big"][0]["size"] == len(big) and body["big"][0]["on_disk"] is True
    assert body["big"][0]["sha"] == hashlib.sha256(big).hexdigest()
    assert [f["filename"] for f in body["many"]] == ["one.txt", "two.txt"]
    assert body["empty"][0]["size"] == 0


def test_multipart_streamed_in_tiny_chunks(url):
    """A chunked request body in 1-7 byte pieces: every split point is exercised."""
    payload = os.urandom(3000) + b"\r\n--b0undar" + os.urandom(100)  # near-boundaries inside
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n"
            b"X-Note: hi\r\n\r\n" + payload + b"\r\n--b0undary\r\n"
            b"Content-Disposition: form-data; name=\"t\"\r\n\r\n\r\nline\r\n\r\n"
            b"--b0undary--\r\n")
    rng = random.Random(7)

    def pieces():
        pos = 0
        while pos < len(body):
            n = rng.randint(1, 7)
            yield body[pos:pos + n]
            pos += n

    r = httpx.post(url + "/form", content=pieces(),
                   headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["f"][0]["sha"] == hashlib.sha256(payload).hexdigest()
    assert got["f"][0]["x-header"] == "hi"
    assert got["t"] == ["\r\nline\r\n"]


def test_multipart_details(url):
    body = (
        b"preamble to ignore\r\n"
        b"--b0undary  \r\n"  # transport padding after a boundary is allowed
        b"content-disposition: form-data; name=\"utf\"; filename*=UTF-8''%E2%82%AC%20rates.txt;"
        b" filename=\"EUR rates.txt\"\r\ncontent-type: text/csv\r\n\r\n1,2\r\n"
        b"--b0undary\r\n"
        b"Content-Disposition: form-data; name=\"quoted\"; filename=\"a \\\"b\\\".txt\"\r\n\r\nq\r\n"
        b"--b0undary\r\n"
        b"Content-Disposition: form-data; name=\"raw\"; filename=\"caf\xc3\xa9.txt\"\r\n\r\nr\r\n"
        b"--b0undary\r\n"
        b"Content-Disposition: form-data; name=\"latin\"\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n\xe9t\xe9\r\n"
        b"--b0undary\r\n"
        b"Content-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n\r\n\r\n"
        b"--b0undary--\r\nepilogue to ignore"
    )
    r = _post(url, body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["utf"][0]["filename"] == "€ rates.txt" and got["utf"][0]["type"] == "text/csv"
    assert got["quoted"][0]["filename"] == "a b.txt"  # quotes are not kept in names
    assert got["quoted"][0]["raw"] == 'a "b".txt'
    assert got["raw"][0]["filename"] == "café.txt"
    assert got["latin"] == ["été"]
    assert got["nofile"][0]["filename"] == "" and got["nofile"][0]["size"] == 0


@pytest.mark.parametrize("filename,expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("C:\\Users\\x\\evil.exe", "evil.exe"),
    ("/abs/path.txt", "path.txt"),
    ("a\x01b\x7f.txt", "ab.txt"),
    ("..", "upload"),
    ("...", "upload"),
    ("/", "upload"),
    (".bashrc", "bashrc"),
    ("name.txt. . ", "name.txt"),
    ("CON.txt", "_CON.txt"),
    ("x<>:|?*.txt", "x.txt"),
])
def test_hostile_filenames(url, filename, expected):
    disposition = f'form-data; name="f"; filename="{filename}"'
    r = _post(url, _multipart([(f"Content-Disposition: {disposition}", "content")]))
    assert r.status_code == 200, r.text
    assert r.json()["f"][0]["filename"] == expected
    assert r.json()["f"][0]["raw"] == filename


def test_filename_nul_and_long_names():
    assert sanitize_filename("evil.php\x00.jpg") == "evil.php.jpg"
    long = "é" * 300 + ".tar.gz"
    clean = sanitize_filename(long)
    assert len(clean.encode()) <= 255 and clean.endswith(".gz")
    assert sanitize_filename("") == ""


@pytest.mark.parametrize("ctype,body", [
    ("multipart/form-data", b"--x\r\n\r\n"),                           # no boundary
    ("multipart/form-data; boundary=", b"--\r\n\r\n"),                # empty boundary
    ("multipart/form-data; boundary=" + "x" * 71, b""),               # boundary too long
    ('multipart/form-data; boundary="x', b""),                        # unterminated quote
    ("multipart/form-data; boundary=x", b""),                         # empty body
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data; "
     b'name="a"\r\n\r\nvalue'),                                       # truncated
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data; "
     b'name="a"\r\n\r\nvalue\r\n--x\r\n'),                            # no closing boundary
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data; na"),
    ("multipart/form-data; boundary=x", b"garbage" * 20000),          # never starts
    ("multipart/form-data; boundary=x", b"--xgarbage\r\n\r\n--x--"),  # junk after boundary
    ("multipart/form-data; boundary=x", b"--x\r\nbroken header\r\n\r\nv\r\n--x--"),
    ("multipart/form-data; boundary=x", b"--x\r\n: no name\r\n\r\nv\r\n--x--"),
    ("multipart/form-data; boundary=x", b"--x\r\nbad name: v\r\n\r\nv\r\n--x--"),
    ("multipart/form-data; boundary=x", b"--x\r\n folded: v\r\n\r\nv\r\n--x--"),
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data\r\n\r\n"
     b"v\r\n--x--"),                                                   # no name
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: attachment; "
     b'name="a"\r\n\r\nv\r\n--x--'),                                  # not form-data
    ("multipart/form-data; boundary=x", b"--x\r\n\r\nv\r\n--x--"),    # no headers at all
    ("multipart/form-data; boundary=x", b'--x\r\ncontent-disposition: form-data; name="a\r\n'
     b"\r\nv\r\n--x--"),                                               # unterminated quote
    ("multipart/form-data; boundary=x", b'--x\r\ncontent-disposition: form-data; name="a"\r\n'
     b"\r\n\xff\xfe\r\n--x--"),                                       # field not UTF-8
    ("multipart/form-data; boundary=x", b'--x\r\ncontent-disposition: form-data; name="a"\r\n'
     b"content-type: text/plain; charset=nope\r\n\r\nv\r\n--x--"),   # unknown charset
])
def test_malformed_multipart_is_400(url, ctype, body):
    r = _post(url, body, ctype)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


def test_multipart_limits(url):
    fields = _multipart([(f'Content-Disposition: form-data; name="f{i}"', "v") for i in range(4)])
    r = _post(url, fields, path="/limited")
    assert r.status_code == 413 and "fields" in r.json()["detail"]
    files = _multipart([(f'Content-Disposition: form-data; name="f{i}"; filename="{i}.txt"', "v")
                        for i in range(3)])
    r = _post(url, files, path="/limited")
    assert r.status_code == 413 and "files" in r.json()["detail"]
    field = _multipart([('Content-Disposition: form-data; name="a"', "x" * 17)])
    assert _post(url, field, path="/limited").status_code == 413
    upload = _multipart([('Content-Disposition: form-data; name="a"; filename="a"', "x" * 1001)])
    assert _post(url, upload, path="/limited").status_code == 413
    fits = _multipart([('Content-Disposition: form-data; name="a"; filename="a"', "x" * 1000),
                       ('Content-Disposition: form-data; name="b"', "x" * 16)])
    r = _post(url, fits, path="/limited")
    assert r.status_code == 200 and r.json()["a"][0]["on_disk"] is True  # spool_max_size=10
    many_headers = "\r\n".join(['Content-Disposition: form-data; name="a"']
                               + [f"X-{i}: v" for i in range(40)])
    assert _post(url, _multipart([(many_headers, "v")])).status_code == 413
    huge_header = 'Content-Disposition: form-data; name="a"\r\nX-Big: ' + "v" * 20000
    assert _post(url, _multipart([(huge_header, "v")])).status_code == 413


def test_body_over_the_route_limit_is_413(url):
    big = _multipart([('Content-Disposition: form-data; name="a"; filename="a"',
                       "x" * (2 * 1024 * 1024))])
    try:
        r = _post(url, big, path="/small-body")
    except httpx.TransportError:
        return  # the server may close before the whole upload was sent; that is fine too
    assert r.status_code == 413


def test_connection_survives_a_parsed_form(url):
    host, port = url.removeprefix("http://").split(":")
    body = _multipart([('Content-Disposition: form-data; name="a"', "1")])
    request = (b"POST /form HTTP/1.1\r\nHost: t\r\n"
               b"Content-Type: multipart/form-data; boundary=b0undary\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request + request)
        data = b""
        while data.count(b'{"a":["1"]}') < 2:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2


# -- parser and containers, in process ----------------------------------------------------------


class _FakeRequest:
    def __init__(self, ctype: str, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.headers = Headers([(b"content-type", ctype.encode())])
        self._chunks = chunks
        self._fail_after = fail_after

    async def stream(self):
        for i, chunk in enumerate(self._chunks):
            if self._fail_after is not None and i == self._fail_after:
                raise HTTPException(413, "request body too large")
            yield chunk

    async def body(self) -> bytes:
        return b"".join(self._chunks)


def _split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 30))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_parser_is_split_independent():
    rng = random.Random(1234)
    for _ in range(300):
        parts = []
        for i in range(rng.randint(0, 4)):
            payload = bytes(rng.choice(b"ab\r\n-x") for _ in range(rng.randint(0, 60)))
            parts.append((f'Content-Disposition: form-data; name="p{i}"; filename="f{i}"',
                          payload.decode("latin-1")))
        body = _multipart(parts, "ab-x")
        pieces = _split_randomly(body, rng)
        parser = MultipartParser(b"ab-x")
        got: list[bytes] = []
        for piece in pieces:
            for event in parser.feed(piece):
                if event[0] == "part":
                    got.append(b"")
                elif event[0] == "data":
                    got[-1] += event[1]
        parser.eof()
        assert parser.done
        assert got == [p[1].encode("latin-1") for p in parts]


def test_temp_files_are_closed_when_parsing_fails():
    created: list[UploadFile] = []
    original = UploadFile.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    body = _multipart([('Content-Disposition: form-data; name="a"; filename="a"', "x" * 5000),
                       ('Content-Disposition: form-data; name="b"; filename="b"', "y" * 5000)])
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    UploadFile.__init__ = spy  # type: ignore[method-assign]
    try:
        request = _FakeRequest("multipart/form-data; boundary=b0undary", chunks, fail_after=8)
        with pytest.raises(HTTPException) as info:
            asyncio.run(parse_form(request, spool_max_size=100))
    finally:
        UploadFile.__init__ = original  # type: ignore[method-assign]
    assert info.value.status_code == 413
    assert len(created) == 2 and all(u.closed for u in created)
    assert not created[0].in_memory  # it had spooled to disk before the failure


def test_formdata_api_and_close():
    async def main() -> None:
        body = _multipart([('Content-Disposition: form-data; name="a"', "1"),
                           ('Content-Disposition: form-data; name="f"; filename="x.txt"', "xyz"),
                           ('Content-Disposition: form-data; name="a"', "2")])
        form = await parse_form(_FakeRequest("multipart/form-data; boundary=b0undary", [body]))
        assert form["a"] == "1" and form.get("a") == "1" and form.getall("a") == ["1", "2"]
        assert form.get("missing", "d") == "d" and form.getall("missing") == []
        assert "f" in form and "zz" not in form and len(form) == 2 and list(form) == ["a", "f"]
        upload = form["f"]
        assert isinstance(upload, UploadFile) and form.files() == [upload]
        assert await upload.read() == b"xyz"
        await upload.seek(1)
        assert await upload.read(1) == b"y"
        assert [k for k, _ in form.multi_items()] == ["a", "f", "a"]
        assert dict(form.items()) == {"a": "1", "f": upload}
        async with form:
            pass
        assert upload.closed

    asyncio.run(main())


def test_parse_options():
    assert parse_options('form-data; name="a;b"; filename="c\\"d"; x=y ; flag') == (
        "form-data", {"name": "a;b", "filename": 'c"d', "x": "y"})
    assert parse_options('form-data; filename="C:\\dir\\f.txt"')[1]["filename"] == \
        "C:\\dir\\f.txt"
    with pytest.raises(ValueError):
        parse_options('form-data; name="open')
