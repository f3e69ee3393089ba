"""FileResponse, forms and SSE over real sockets (and the in-process client)."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from ember import (
    Ember,
    FileResponse,
    Request,
    RouteLimits,
    ServerSentEvent,
    SSEResponse,
    TokenStreamResponse,
    UploadFile,
    sse_stream,
)


@pytest.fixture
def files_app(tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"0123456789" * 10)
    (root / "caf\u00e9.txt").write_text("unicode name")
    (tmp_path / "secret.txt").write_text("top secret")
    app = Ember()

    @app.get("/static/{name:path}")
    async def static(name: str):
        return FileResponse(name, root=root)

    @app.get("/download")
    async def download():
        return FileResponse(root / "caf\u00e9.txt", filename="caf\u00e9 \"report\".txt")

    @app.get("/missing")
    async def missing():
        return FileResponse(root / "nope.txt")

    return app


def test_file_full_head_and_validators(serve, files_app):
    url = serve(files_app)
    r = httpx.get(url + "/static/hello.txt")
    assert r.status_code == 200 and r.content == b"0123456789" * 10
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["accept-ranges"] == "bytes" and r.headers["etag"].startswith('W/"')
    h = httpx.head(url + "/static/hello.txt")
    assert h.status_code == 200 and h.headers["content-length"] == "100" and h.content == b""
    r304 = httpx.get(url + "/static/hello.txt", headers={"if-none-match": r.headers["etag"]})
    assert r304.status_code == 304 and r304.content == b""
    r304 = httpx.get(url + "/static/hello.txt",
                     headers={"if-modified-since": r.headers["last-modified"]})
    assert r304.status_code == 304
    assert httpx.get(url + "/static/hello.txt",
                     headers={"if-none-match": '"other"'}).status_code == 200


@pytest.mark.parametrize("header,status,body", [
    ("bytes=0-9", 206, b"0123456789"),
    ("bytes=95-", 206, b"56789"),
    ("bytes=-3", 206, b"789"),
    ("bytes=90-200", 206, b"0123456789"),
    ("bytes=500-600", 416, b""),
    ("bytes=abc", 200, None),
    ("items=0-1", 200, None),
    ("bytes=5-2", 200, None),
])
def test_ranges(serve, files_app, header, status, body):
    url = serve(files_app)
    r = httpx.get(url + "/static/hello.txt", headers={"range": header})
    assert r.status_code == status
    if status == 206:
        assert r.content == body and r.headers["content-range"].startswith("bytes ")
    elif status == 416:
        assert r.headers["content-range"] == "bytes */100"
    else:
        assert len(r.content) == 100


def test_multi_range_and_if_range(serve, files_app):
    url = serve(files_app)
    r = httpx.get(url + "/static/hello.txt", headers={"range": "bytes=0-1,10-11"})
    assert r.status_code == 206
    assert r.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert b"content-range: bytes 0-1/100" in r.content and b"\r\n01\r\n" in r.content
    etag = httpx.get(url + "/static/hello.txt").headers["etag"]
    r = httpx.get(url + "/static/hello.txt", headers={"range": "bytes=0-1", "if-range": etag})
    assert r.status_code == 200  # weak validators never satisfy If-Range


@pytest.mark.parametrize("path", ["../secret.txt", "..%2Fsecret.txt", "%2e%2e/secret.txt",
                                  "sub/../../secret.txt", "/etc/passwd", "hello.txt%00.png",
                                  "."])
def test_path_traversal_is_impossible(serve, files_app, path):
    url = serve(files_app)
    r = httpx.get(url + "/static/" + path)
    assert r.status_code == 404 and b"secret" not in r.content


def test_download_name_and_missing_file(serve, files_app):
    url = serve(files_app)
    r = httpx.get(url + "/download")
    cd = r.headers["content-disposition"]
    assert cd.startswith("attachment;") and "filename*=UTF-8''caf%C3%A9" in cd
    assert '"report"' not in cd
    assert httpx.get(url + "/missing").status_code == 404


# -- forms ----------------------------------------------------------------------------------

def _form_app() -> Ember:
    app = Ember()

    @app.post("/form", limits=RouteLimits(max_body_size=16 * 1024 * 1024))
    async def form(request: Request):
        data = await request.form()
        out = {}
        for key in data:
            values = data.getall(key)
            out[key] = [
                {"filename": v.filename, "raw": v.raw_filename, "size": v.size,
                 "type": v.content_type, "head": (await v.read(5)).decode("latin-1"),
                 "on_disk": not v.in_memory}
                if isinstance(v, UploadFile) else v for v in values]
        await data.close()
        return out

    @app.post("/small")
    async def small(request: Request):
        data = await request.form(max_files=1, max_fields=2, max_field_size=10)
        return {"n": len(data)}

    return app


def test_urlencoded_and_multipart(serve):
    url = serve(_form_app())
    r = httpx.post(url + "/form", data={"a": "1", "b": ["x", "y"], "e": ""})
    assert r.json() == {"a": ["1"], "b": ["x", "y"], "e": [""]}
    big = os.urandom(3 * 1024 * 1024)
    r = httpx.post(url + "/form", data={"title": "hi"},
                   files={"doc": ("report.pdf", b"%PDF-1.7 data", "application/pdf"),
                          "big": ("big.bin", big, "application/octet-stream")})
    body = r.json()
    assert body["title"] == ["hi"]
    assert body["doc"][0] == {"filename": "report.pdf", "raw": "report.pdf", "size": 13,
                              "type": "application/pdf", "head": "%PDF-", "on_disk": False}
    assert body["big"][0]["size"] == len(big) and body["big"][0]["on_disk"] is True


@pytest.mark.parametrize("filename,expected", [
    ("../../etc/passwd", "passwd"), ("C:\\Windows\\system32\\evil.exe", "evil.exe"),
    ("/abs/path.txt", "path.txt"), ("a\x01b.txt", "ab.txt"), ("..", "upload"),
])
def test_hostile_filenames(serve, filename, expected):
    url = serve(_form_app())
    boundary = "XyZ"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="{filename}"'
            f"\r\n\r\ncontent\r\n--{boundary}--\r\n").encode("latin-1")
    r = httpx.post(url + "/form", content=body,
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200
    assert r.json()["f"][0]["filename"] == expected


@pytest.mark.parametrize("ctype,body,status", [
    ("multipart/form-data", b"--x\r\n\r\n", 400),                     # no boundary
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data; "
     b'name="a"\r\n\r\nvalue', 400),                                   # truncated
    ("multipart/form-data; boundary=x", b"garbage" * 20000, 400),      # never starts
    ("multipart/form-data; boundary=x", b"--x\r\nbroken header\r\n\r\nv\r\n--x--", 400),
    ("multipart/form-data; boundary=x", b"--x\r\ncontent-disposition: form-data\r\n\r\n"
     b"v\r\n--x--", 400),                                               # no name
    ("text/plain", b"a=1", 415),
    ("application/x-www-form-urlencoded", b"a=%ff%fe", 400),
])
def test_malformed_forms(serve, ctype, body, status):
    url = serve(_form_app())
    r = httpx.post(url + "/form", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text


def test_form_limits(serve):
    url = serve(_form_app())
    assert httpx.post(url + "/small", data={"a": "1"}).json() == {"n": 1}
    assert httpx.post(url + "/small", data={"a": "1", "b": "2", "c": "3"}).status_code == 413
    assert httpx.post(url + "/small", data={"a": "x" * 50}).status_code == 413
    r = httpx.post(url + "/small", files={"f1": ("a", b"1"), "f2": ("b", b"2")})
    assert r.status_code == 413


# -- SSE ----------------------------------------------------------------------------------------

def _sse_app(events: list) -> Ember:
    app = Ember()

    @app.get("/events")
    async def stream(request: Request):
        last = request.headers.get("last-event-id")

        async def gen():
            yield "plain"
            yield {"json": True}
            yield ServerSentEvent("line1\nline2", event="multi", id="7", retry=1500)
            yield f"last={last}"
        return sse_stream(gen())

    @app.get("/pings")
    async def pings():
        async def gen():
            await asyncio.sleep(0.35)
            yield "after pings"
        return SSEResponse(gen(), ping_interval=0.1)

    @app.get("/boom")
    async def boom():
        async def gen():
            yield "first"
            raise RuntimeError("upstream died")
        return sse_stream(gen())

    @app.get("/forever")
    async def forever():
        async def gen():
            try:
                while True:
                    yield "tick"
                    await asyncio.sleep(0.01)
            finally:
                events.append("finally")
        return sse_stream(gen())

    @app.get("/tokens")
    async def tokens():
        return TokenStreamResponse(iter(["Hel", "lo"]), model="ember-test")

    return app


def test_sse_framing_and_last_event_id():
    with _sse_app([]).test_client() as c:
        r = c.get("/events", headers={"last-event-id": "6"})
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no" and r.headers["cache-control"] == "no-cache"
        assert b"data: line1\ndata: line2\n" in r.content
        events = r.events()
        assert [e["data"] for e in events] == ["plain", '{"json":true}', "line1\nline2",
                                               "last=6"]
        assert events[2] == {"event": "multi", "id": "7", "retry": 1500,
                             "data": "line1\nline2"}


def test_sse_pings_and_error_event():
    with _sse_app([]).test_client() as c:
        text = c.get("/pings").content
        assert text.count(b": ping") >= 2 and text.endswith(b"data: after pings\n\n")
        events = c.get("/boom").events()
        assert events[0]["data"] == "first"
        assert events[-1]["event"] == "error" and "stream failed" in events[-1]["data"]


def test_sse_disconnect_runs_generator_finally(serve):
    events: list = []
    url = serve(_sse_app(events))
    with httpx.stream("GET", url + "/forever") as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    deadline = time.monotonic() + 3
    while "finally" not in events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["finally"]


def test_token_stream_is_openai_compatible(serve):
    openai = pytest.importorskip("openai")
    app = _sse_app([])

    @app.post("/v1/chat/completions")
    async def chat():
        return TokenStreamResponse(iter(["Hel", "lo", " there"]), model="ember-test")

    url = serve(app)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x")
    stream = client.chat.completions.create(model="ember-test", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello there"
    client.close()
