"""``/docs``: Swagger UI served from the installed ``docs`` extra, offline, in real Chromium."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from ember import Ember


def _app() -> Ember:
    app = Ember(title="Pets")

    @app.get("/pets/{pet_id:int}")
    async def get_pet(pet_id: int, verbose: bool = False):
        """Fetch one pet."""
        return {"id": pet_id}

    @app.post("/pets")
    async def create_pet(body: dict):
        return body

    return app


def test_operations_render_offline_in_chromium(serve, browser) -> None:
    base = serve(_app())
    page = browser.page()
    page.goto(base + "/docs")
    # NOTE: Swagger UI renders one .opblock per operation once it has fetched /openapi.json
    page.wait_for("document.querySelectorAll('.opblock').length === 2")
    text = page.evaluate("document.body.innerText")
    assert "/pets/{pet_id}" in text and "Fetch one pet." in text and "Pets" in text
    assert "POST" in text and "GET" in text
    # the page reached nothing but this server (chromium resolves no other host anyway)
    assert page.requests and all(u.startswith(base) or u.startswith("data:")
                                 for u in page.requests), page.requests
    assert page.console_errors == []


def test_assets_are_served_with_types_and_unknown_names_404(serve) -> None:
    base = serve(_app())
    with urllib.request.urlopen(base + "/docs") as r:
        html = r.read().decode()
    assert "/docs/assets/swagger-ui-bundle.js" in html and "unpkg" not in html
    assert "cdn" not in html.lower()
    with urllib.request.urlopen(base + "/docs/assets/swagger-ui-bundle.js") as r:
        assert r.headers["content-type"].startswith("text/javascript")
        assert b"SwaggerUIBundle" in r.read()
    with urllib.request.urlopen(base + "/docs/assets/swagger-ui.css") as r:
        assert r.headers["content-type"].startswith("text/css")
    for bad in ("../../../etc/passwd", "..%2F..%2Fapp.py", "swagger-ui.js", "LICENSE",
                "%00", "swagger-ui.css%00.js", "x" * 2000):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/docs/assets/" + bad)
        err.value.close()
        assert err.value.code == 404, bad
    # the docs routes stay out of the schema
    with urllib.request.urlopen(base + "/openapi.json") as r:
        assert b"/docs" not in r.read()


def test_missing_extra_names_it(serve, monkeypatch) -> None:
    from ember import openapi

    monkeypatch.setattr(openapi, "_assets_dir", lambda: None)
    base = serve(_app())
    with urllib.request.urlopen(base + "/docs") as r:
        html = r.read().decode()
    assert "pip install 'ember-api[docs]&gt;=0.2.0'" in html and "/openapi.json" in html
    assert 'pip install -e ".[docs]"' in html  # from a clone, as the README installs
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/docs/assets/swagger-ui-bundle.js")
    err.value.close()
    assert err.value.code == 404


def test_custom_docs_url_and_escaped_title(serve) -> None:
    app = Ember(title="<script>x</script>", docs_url="/api/docs/")
    base = serve(app)
    with urllib.request.urlopen(base + "/api/docs/") as r:
        html = r.read().decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "/api/docs/assets/swagger-ui.css" in html
    with urllib.request.urlopen(base + "/api/docs/assets/swagger-ui.css") as r:
        assert r.status == 200
