"""The compiled twins are really typed (the .pxd files were applied), when they are built."""

from __future__ import annotations

import importlib

import pytest

from ember._compat import NO_EXTENSIONS, is_compiled


def _compiled(name: str):
    module = importlib.import_module(name)
    if not is_compiled(module):
        pytest.skip(f"{name} is not compiled in this install")
    return module


class _Owner:
    def on_headers(self, *args):
        return False

    def on_body(self, chunk):
        pass

    def on_message_complete(self):
        pass


def test_parser_is_a_cdef_class():
    mod = _compiled("ember.http._parser_c")
    parser = mod.HttpRequestParser(_Owner())
    assert not hasattr(parser, "__dict__")  # typed attributes, no instance dict
    with pytest.raises(AttributeError):
        parser._state = 3  # a private C attribute: not reachable from Python
    assert parser.max_headers == 100  # the limits stay public
    parser.max_headers = 5
    assert parser.max_headers == 5
    with pytest.raises(TypeError):
        parser.max_headers = "many"


def test_router_is_a_cdef_class():
    mod = _compiled("ember.routing._router_c")
    router = mod.Router()
    assert not hasattr(router, "__dict__")
    router.add("/a/{x:int}", ["GET"], "r")
    assert router.match_request("GET", b"/a/7") == ("r", {"x": 7})
    with pytest.raises(TypeError):
        router.match_request("GET", "/a/7")  # raw paths are bytes


def test_writer_fast_paths_are_c_functions():
    mod = _compiled("ember.http._writer_c")
    for name in ("encode_simple", "encode_result", "encode_response"):
        assert type(getattr(mod, name)).__name__ == "builtin_function_or_method"


def test_protocol_state_and_cycle_are_cdef_classes():
    if NO_EXTENSIONS:
        pytest.skip("EMBER_NO_EXTENSIONS: the pure twins are selected")
    protocol = _compiled("ember.http._protocol_c")
    state_mod = _compiled("ember.http._state_c")
    cycle_mod = _compiled("ember.http._cycle_c")
    from ember.http.cycle import Cycle
    from ember.http.protocol import HttpProtocol, ServerState

    assert HttpProtocol is protocol.HttpProtocol and ServerState is state_mod.ServerState
    from ember.http.sinkbase import SinkBase

    assert issubclass(HttpProtocol, SinkBase)  # the exchange core calls it through C
    assert Cycle is cycle_mod.Cycle
    state = ServerState()
    assert not hasattr(state, "__dict__")
    state.fast_path = False  # public typed attributes stay settable (tests, the worker)
    with pytest.raises(TypeError):
        state.fast_routes = []  # typed: a dict
    cycle = Cycle()
    assert not hasattr(cycle, "__dict__")
    cycle.keep_alive = False
    assert cycle.keep_alive is False
    with pytest.raises(TypeError):
        cycle.state = "running"  # a C integer
