"""Features hook into the app through ``ember.features``, never imported by the app layer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ember import ConfigError, Ember, WebSocket
from ember.features import ENTRY_POINTS, entry_point


class _Attached:
    def __init__(self) -> None:
        self.apps: list[Ember] = []

    def attach(self, app: Ember) -> None:
        self.apps.append(app)

        @app.get("/feature")
        async def feature() -> dict:
            return {"attached": len(self.apps)}


def test_add_feature_keeps_and_attaches_once():
    app = Ember(openapi_url=None)
    feature = _Attached()
    assert app.add_feature("thing", feature) is feature
    assert app.features == {"thing": feature} and feature.apps == [app]
    plain = object()  # no attach(): kept, nothing else
    app.add_feature("plain", plain)
    assert app.features["plain"] is plain
    with app.test_client() as client:
        assert client.get("/feature").json() == {"attached": 1}


@pytest.mark.parametrize("name", [None, "", 3, b"mcp", ["x"]])
def test_add_feature_refuses_a_bad_name(name):
    app = Ember(openapi_url=None)
    with pytest.raises(ConfigError, match="non-empty name"):
        app.add_feature(name, object())
    assert app.features == {}


def test_unknown_entry_point_names_the_known_ones():
    with pytest.raises(LookupError, match=r"app\.add_mcp"):
        entry_point("app.nope")


def test_the_mcp_server_is_a_registered_feature():
    app = Ember(openapi_url=None)
    server = app.add_mcp(path="/tools")
    assert app.features["mcp"] is server and app._mcp_server is server


def test_building_an_app_imports_no_feature():
    """The app layer reaches features only when a method asks for them."""
    modules = sorted({spec.split(":")[0] for spec in ENTRY_POINTS.values()})
    code = (
        "import sys\n"
        "from ember import Ember\n"
        "app = Ember()\n"
        "@app.get('/x/{id:int}')\n"
        "async def x(id: int): return {'id': id}\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


class _AllowsFriend:
    """A middleware that lets one origin in, and says so by name (like CORSMiddleware)."""

    def __init__(self, answer: object = True) -> None:
        self.answer = answer

    def allows_origin(self, origin: str) -> object:
        return self.answer if origin == "https://friend.example" else False

    async def __call__(self, request, call_next):
        return await call_next(request)


@pytest.mark.parametrize("answer, opens", [(True, True), ("yes", False), (1, False)])
def test_websocket_default_origin_asks_middleware_by_name(serve, answer, opens):
    """Only a real True opens the socket: a truthy oddity from a middleware refuses."""
    app = Ember(openapi_url=None)
    app.add_middleware(_AllowsFriend(answer))

    @app.websocket("/ws")
    async def ws(ws: WebSocket):
        await ws.accept()
        await ws.send_text("hi")
        await ws.close()

    url = serve(app).replace("http://", "ws://") + "/ws"
    if opens:
        with connect(url, origin="https://friend.example", open_timeout=10) as client:
            assert client.recv(timeout=10) == "hi"
    else:
        with pytest.raises(InvalidStatus) as info:
            connect(url, origin="https://friend.example", open_timeout=10)
        assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as info:
        connect(url, origin="https://evil.example", open_timeout=10)
    assert info.value.response.status_code == 403
