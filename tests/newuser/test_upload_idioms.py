"""FastAPI's upload idioms: a bare ``file: UploadFile`` (no ``File()``), ``list[UploadFile]``,
and the test client's ``files=[(name, spec), ...]`` for several files under one name."""

from __future__ import annotations

from typing import Annotated

import httpx

from ember import Ember, Form, UploadFile


def _app() -> Ember:
    app = Ember(openapi_url=None)

    @app.post("/one")
    async def one(file: UploadFile, note: Annotated[str, Form()] = ""):
        return {"name": file.filename, "size": len(await file.read()), "note": note}

    @app.post("/maybe")
    async def maybe(file: UploadFile | None = None):
        return {"name": file.filename if file else None}

    @app.post("/many")
    async def many(files: list[UploadFile]):
        return [f.filename for f in files]

    return app


def test_bare_uploadfile_parameters_are_file_uploads():
    with _app().test_client() as client:
        r = client.post("/one", files={"file": ("a.txt", b"hello", "text/plain")},
                        data={"note": "n"})
        assert r.json() == {"name": "a.txt", "size": 5, "note": "n"}, r.text
        r = client.post("/one", data={"note": "n"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
        r = client.post("/one", json={"file": 1})
        assert r.status_code == 415, r.text
        assert client.post("/maybe", data={"x": "1"}).json() == {"name": None}
        assert client.post("/maybe", files={"file": ("b", b"1")}).json() == {"name": "b"}


def test_the_test_client_takes_a_list_of_files_under_one_name():
    with _app().test_client() as client:
        r = client.post("/many", files=[("files", ("a", b"1")), ("files", ("b", b"2", "x/y"))])
        assert r.json() == ["a", "b"], r.text


def test_the_same_over_a_real_socket_with_httpx(serve):
    url = serve(_app())
    r = httpx.post(url + "/many", files=[("files", ("a", b"1")), ("files", ("b", b"2"))],
                   timeout=30)
    assert r.json() == ["a", "b"], r.text
    r = httpx.post(url + "/one", files={"file": ("c.bin", b"\x00" * 10)}, timeout=30)
    assert r.json() == {"name": "c.bin", "size": 10, "note": ""}, r.text


def test_the_upload_parameter_is_documented_as_a_file_in_openapi():
    app = Ember()

    @app.post("/one")
    async def one(file: UploadFile):
        return {}

    with app.test_client() as client:
        doc = client.get("/openapi.json").json()
    body = doc["paths"]["/one"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body, body
