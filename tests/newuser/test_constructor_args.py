"""Bad ``Ember(...)`` arguments fail at construction with a message naming the argument."""

from __future__ import annotations

import pytest

from ember import Ember
from ember.exceptions import ConfigError


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"title": 5}, "title"),
    ({"title": None}, "title"),
    ({"title": b"api"}, "title"),
    ({"version": 1}, "version"),
    ({"version": 1.0}, "version"),
    ({"debug": "false"}, "debug"),
    ({"debug": 1}, "debug"),
    ({"lifespan": 5}, "lifespan"),
    ({"middleware": object()}, "middleware"),
    ({"openapi_url": 5}, "openapi_url"),
    ({"docs_url": 3}, "docs_url"),
])
def test_wrong_type_is_a_type_error_naming_the_argument(kwargs, named):
    with pytest.raises(TypeError, match=named) as info:
        Ember(**kwargs)
    assert isinstance(info.value, ConfigError)  # one except clause catches every bad setting


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"openapi_url": "openapi.json"}, "openapi_url"),
    ({"docs_url": "docs"}, "docs_url"),
])
def test_a_path_without_a_leading_slash_is_refused(kwargs, named):
    with pytest.raises(ConfigError, match=f"{named}.*must start with '/'"):
        Ember(**kwargs)


@pytest.mark.parametrize("value", [5, "10.0.0.1", {"10.0.0.1": 1}.keys()])
def test_trusted_proxies_not_a_list_is_refused(value):
    with pytest.raises(ConfigError, match="trusted_proxies must be a list"):
        Ember(trusted_proxies=value)


def test_sound_arguments_give_a_valid_openapi_info():
    app = Ember(title="Shop", version="2.1.0", debug=False, openapi_url="/spec.json",
                docs_url=None, middleware=[], lifespan=None)

    @app.get("/")
    async def index():
        return {}

    with app.test_client() as client:
        info = client.get("/spec.json").json()["info"]
    assert info == {"title": "Shop", "version": "2.1.0"}


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: __import__("ember").Response(b"", headers=5), TypeError, "must be a mapping"),
    (lambda: __import__("ember").Response(b"", headers=[("a", "b")]), TypeError,
     "must be a mapping"),
    (lambda: __import__("ember").Response(b"", headers={5: "a"}), TypeError,
     "header names must be str"),
    (lambda: __import__("ember").JSONResponse({}, headers={"x-id": None}), TypeError,
     "value is None"),
    (lambda: __import__("ember").ConversationContext(max_tokens="x"), ValueError, "max_tokens"),
    (lambda: __import__("ember").ConversationContext(max_tokens=0), ValueError, "max_tokens"),
    (lambda: __import__("ember").ConversationContext(max_completion_tokens=1.5), ValueError,
     "max_completion_tokens"),
    (lambda: __import__("ember").ConversationContext(model=4), TypeError, "model"),
    (lambda: __import__("ember").Blueprint(5), ConfigError, "name must be a str"),
    (lambda: __import__("ember").Blueprint("/admin"), ConfigError, "url_prefix='/admin'"),
])
def test_other_constructors_name_what_is_wrong(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_none_header_set_later_is_refused_too():
    from ember import JSONResponse

    response = JSONResponse({})
    with pytest.raises(TypeError, match="value is None"):
        response.headers["x-trace"] = None
    response.headers["x-count"] = 5  # other values are still str()-ed
    assert (b"x-count", b"5") in response.raw_headers
