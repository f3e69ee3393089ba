"""A client that sends what the handler did not ask for (JSON that does not parse, text
where binary was expected) gets a close code that says so (1007 / 1003, with the reason),
not 1011 "internal error"; a handler may catch it and go on."""

from __future__ import annotations

import asyncio
import logging

import pytest
import websockets
from websockets.asyncio.client import connect

from ember import Ember, WebSocket
from ember.websockets import InvalidMessage, _close_payload


def _app() -> Ember:
    app = Ember(openapi_url=None)

    @app.websocket("/json")
    async def json_echo(ws: WebSocket):
        await ws.accept()
        while True:
            await ws.send_json({"got": await ws.receive_json()})

    @app.websocket("/text")
    async def text(ws: WebSocket):
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    @app.websocket("/bytes")
    async def raw(ws: WebSocket):
        await ws.accept()
        await ws.send_bytes(await ws.receive_bytes())

    @app.websocket("/forgiving")
    async def forgiving(ws: WebSocket):
        await ws.accept()
        while True:
            try:
                data = await ws.receive_json()
            except InvalidMessage as exc:
                await ws.send_json({"error": exc.reason, "code": exc.code})
            else:
                await ws.send_json({"got": data})

    return app


def _ws(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


@pytest.mark.parametrize(("path", "message", "code", "words"), [
    ("/json", "{bad", 1007, "invalid JSON"),
    ("/json", b"\x00\x01", 1007, "invalid JSON"),
    ("/text", b"\x00\x01", 1003, "expected a text message"),
    ("/bytes", "text", 1003, "expected a binary message"),
])
def test_bad_messages_close_with_a_code_that_says_why(serve, caplog, path, message, code,
                                                       words):
    url = serve(_app())

    async def main():
        async with connect(_ws(url, path)) as ws:
            if path == "/json":
                await ws.send('{"a": 1}')
                assert await ws.recv() == '{"got":{"a":1}}'
            await ws.send(message)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code, ws.close_reason

    with caplog.at_level(logging.INFO, logger="ember"):
        got_code, reason = asyncio.run(main())
    assert got_code == code and words in reason, (got_code, reason)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_a_handler_can_catch_bad_json_and_go_on(serve):
    url = serve(_app())

    async def main():
        async with connect(_ws(url, "/forgiving")) as ws:
            await ws.send("nope")
            answer = await ws.recv()
            await ws.send("[1]")
            return answer, await ws.recv()

    answer, after = asyncio.run(main())
    assert '"code":1007' in answer and "invalid JSON" in answer
    assert after == '{"got":[1]}'


def test_the_wrong_type_is_still_a_type_error():
    exc = InvalidMessage(1007, "x")
    assert isinstance(exc, ValueError)
    from ember.websockets import _WrongType
    assert isinstance(_WrongType(1003, "x"), TypeError)


def test_a_long_close_reason_is_cut_on_a_utf8_boundary():
    payload = _close_payload(1007, "é" * 100)  # 200 bytes of UTF-8
    assert len(payload) <= 125
    payload[2:].decode("utf-8")  # a cut in the middle of "é" would raise (and 1007 the peer)
