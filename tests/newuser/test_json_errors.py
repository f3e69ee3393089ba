"""A body that is not UTF-8 is named as such, at the byte where it breaks (not "invalid
character at char 0"), and every JSON error is a ``JSONDecodeError`` (also a str with a
lone surrogate, which used to escape as ``UnicodeEncodeError``)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from ember import Ember, Request, _json


@pytest.mark.parametrize(("data", "pos"), [
    (b'{"a": "\xe9"}', 7),                 # latin-1, not UTF-8
    (b'{"a":"\xc3\xa9\xff"}', 7),          # valid "é", then a bad byte: position in characters
    (b"\xff\xfe{\x00", 0),                 # UTF-16 with a BOM
    ('{"a":"\udc80"}', 6),                 # a str with a lone surrogate
])
def test_invalid_utf8_is_named_with_its_position(data, pos):
    with pytest.raises(orjson.JSONDecodeError) as info:
        _json.loads(data)
    assert "invalid UTF-8" in str(info.value) and info.value.pos == pos, str(info.value)


@pytest.mark.parametrize(("data", "words"), [
    (b'{"a" 1}', "expected ':'"), (b"", "the body is empty"), (b'{"\xc3\xa9":1,}', "trailing"),
])
def test_other_json_errors_keep_their_message(data, words):
    with pytest.raises(orjson.JSONDecodeError) as info:
        _json.loads(data)
    assert words in str(info.value) and "UTF-8" not in str(info.value)


def test_request_json_answers_400_naming_utf8(serve):
    app = Ember(openapi_url=None)

    @app.post("/j")
    async def j(request: Request):
        return await request.json()

    url = serve(app)
    r = httpx.post(url + "/j", content=b'{"name": "Jos\xe9"}',
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert "invalid UTF-8" in r.json()["detail"] and "char 13" in r.json()["detail"], r.text
    assert httpx.post(url + "/j", json={"name": "José"}, timeout=30).json() == {"name": "José"}
