"""``Response.set_cookie``: no attribute can smuggle another attribute or header
(issue 23).  CR, LF, ``;``, control characters and non-ASCII in any attribute raise
ValueError naming the attribute; valid cookies go over a real server unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from ember import Ember, Response

BAD_TEXT = ["/; Domain=evil.example", "/\r\nX-Evil: 1", "/\n", "/\r", "/\x00", "/\x7f",
            "/\x1b[31m", "/é", "/\u2028", "/;", "a;b"]


@pytest.mark.parametrize("value", BAD_TEXT)
@pytest.mark.parametrize("attr", ["path", "domain", "expires"])
def test_invalid_characters_in_an_attribute_name_it(attr, value):
    with pytest.raises(ValueError, match=f"cookie {attr}"):
        Response().set_cookie("sid", "v", **{attr: value})


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\x00", "\x7f", "é", "x\x1by"])
def test_invalid_characters_in_the_value(value):
    with pytest.raises(ValueError, match="cookie value"):
        Response().set_cookie("sid", value)


@pytest.mark.parametrize("key", ["a b", "a;b", "a=b", "a\r\nb", "", "é", "a,b"])
def test_invalid_key(key):
    with pytest.raises(ValueError, match="cookie key"):
        Response().set_cookie(key, "v")


@pytest.mark.parametrize("domain", ["evil example", "a,b", "a/b", "a:b", ".", "..", "-a.",
                                    "a..b/", "[::1]"])
def test_domain_must_be_a_host_name(domain):
    with pytest.raises(ValueError, match="cookie domain"):
        Response().set_cookie("sid", "v", domain=domain)


@pytest.mark.parametrize("kwargs,attr", [
    ({"max_age": "1; Domain=evil"}, "max_age"), ({"max_age": 1.5}, "max_age"),
    ({"max_age": True}, "max_age"), ({"expires": 1.5}, "expires"),
    ({"expires": object()}, "expires"), ({"samesite": "lax; Secure"}, "samesite"),
    ({"samesite": 1}, "samesite"), ({"path": 5}, "path"), ({"domain": b"x.y"}, "domain"),
])
def test_wrong_types_and_injections_elsewhere(kwargs, attr):
    with pytest.raises(ValueError, match=attr):
        Response().set_cookie("sid", "v", **kwargs)


def test_a_value_with_a_semicolon_is_escaped_not_split():
    r = Response()
    r.set_cookie("sid", "a;b")
    (header,) = [v for k, v in r.raw_headers if k == b"set-cookie"]
    assert header == b'sid="a\\073b"; Path=/; SameSite=lax'


def test_nothing_is_added_when_refused():
    r = Response()
    with pytest.raises(ValueError):
        r.set_cookie("sid", "v", path="/", domain="evil; x")
    assert not [k for k, _ in r.raw_headers if k == b"set-cookie"]


def test_valid_cookies_over_a_real_server(serve):
    app = Ember(openapi_url=None)

    @app.get("/c")
    async def c():
        r = Response("ok")
        r.set_cookie("sid", "abc", path="/app", domain=".example.com", max_age=60,
                     secure=True, httponly=True, samesite="strict")
        r.set_cookie("when", "x", expires=datetime(2030, 1, 1, tzinfo=UTC))
        r.set_cookie("later", "y", expires="Wed, 01 Jan 2031 00:00:00 GMT")
        r.delete_cookie("old", path="/p", domain="sub.example.com")
        return r

    url = serve(app)
    got = httpx.get(url + "/c").headers.get_list("set-cookie")
    assert got[0] == ("sid=abc; Domain=.example.com; HttpOnly; Max-Age=60; Path=/app; "
                      "SameSite=strict; Secure")
    assert got[1] == "when=x; expires=Tue, 01 Jan 2030 00:00:00 GMT; Path=/; SameSite=lax"
    assert got[2] == "later=y; expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/; SameSite=lax"
    assert got[3].startswith('old=""; Domain=sub.example.com; expires=')
    assert "Max-Age=0; Path=/p" in got[3]
