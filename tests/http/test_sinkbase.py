"""The typed sink base (issue 24): the compiled core calls a ``SinkBase`` through its C
vtable, and that path must behave exactly like a Python call — a Python subclass's
overrides run, a missing method says which, ``closed`` is read from the object."""

from __future__ import annotations

import asyncio

import pytest

from ember import Ember
from ember.http import exchange
from ember.http.cycle import DONE, ERROR, RUNNING, Cycle
from ember.http.protocol import HttpProtocol, ServerState
from ember.http.sinkbase import SinkBase
from ember.responses import PlainTextResponse


class _Recorder(SinkBase):
    """A Python subclass: every method the core calls is an override."""

    peer = None

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def send_result(self, cycle, result):
        self.calls.append(f"result {result!r}")
        return True

    def send_response(self, cycle, status, raw_headers, body, content_length):
        self.calls.append(f"response {status} {body!r} {content_length}")
        return None

    def send_error(self, cycle, status, reason):
        self.calls.append(f"error {status} {reason}")
        return 7

    def exchange_done(self, cycle):
        self.calls.append("done")


@pytest.fixture
def core():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield exchange.Exchange(Ember(), None, {}, ServerState())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_the_http1_connection_is_a_sink_base():
    assert issubclass(HttpProtocol, SinkBase)


def test_python_overrides_of_a_sink_base_are_called(core):
    sink = _Recorder()
    cycle = Cycle(sink)
    cycle.state = RUNNING
    core._respond(cycle, PlainTextResponse("hi", status_code=201))
    assert cycle.state == DONE
    assert sink.calls == ["response 201 b'hi' 2", "done"]
    failed = Cycle(sink)
    failed.state = RUNNING
    core.fail(failed, 504, "late")
    assert failed.state == ERROR and sink.calls[-1] == "error 504 late"
    assert core._state.total_requests == 2  # the finish and the error answer (size 7)


def test_closed_is_read_from_the_sink(core):
    sink = _Recorder()
    cycle = Cycle(sink)
    cycle.state = RUNNING
    cycle.request = None
    sink.closed = True
    assert exchange._impl._closed(sink) is True
    sink.closed = False
    assert exchange._impl._closed(sink) is False


@pytest.mark.parametrize("method", ["exchange_done", "send_error"])
def test_a_sink_base_missing_a_method_says_which(core, method):
    cycle = Cycle(SinkBase())
    cycle.state = RUNNING
    with pytest.raises(NotImplementedError, match=f"a sink implements {method}"):
        if method == "exchange_done":
            core.finish(cycle, 200, 0, None)
        else:
            core.fail(cycle, 500, "boom")
