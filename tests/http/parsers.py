"""Drive our parser twins and llhttp (httptools) over the same bytes."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from ember._compat import is_compiled
from ember.http.errors import HttpParserError
from tests._compiled import BUILD_HINT, extensions_expected


def parser_twins() -> list[Any]:
    """The pure module, plus the compiled one when it was built.

    Raises ``RuntimeError`` (a collection error, loud) when a C compiler and Cython
    are present but the compiled twin is missing or interpreted: a failed build.
    """
    twins = [importlib.import_module("ember.http._parser_py")]
    try:
        compiled = importlib.import_module("ember.http._parser_c")
    except ImportError:
        compiled = None
    if compiled is not None and is_compiled(compiled):
        twins.append(compiled)
    elif extensions_expected():
        raise RuntimeError("ember.http._parser_c was not built although Cython and a C "
                           f"compiler are present; {BUILD_HINT} (or set EMBER_NO_EXTENSIONS=1)")
    return twins


def twin_params() -> list[Any]:
    """``parser_twins()`` as pytest params: ids ``py``/``c``, the compiled one marked."""
    return [pytest.param(m, id="c", marks=pytest.mark.compiled) if is_compiled(m)
            else pytest.param(m, id="py") for m in parser_twins()]


class Recorder:
    """Owner of an Ember parser that records every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._cur: dict[str, Any] | None = None

    def on_headers(self, method: str, target: bytes, minor: int, headers: list, keep_alive: bool,
                   chunked: bool, content_length: int, upgrade: Any, expect: Any) -> bool:
        self._cur = {"method": method, "target": target, "minor": minor,
                     "headers": [(bytes(n), bytes(v)) for n, v in headers],
                     "keep_alive": keep_alive, "chunked": chunked,
                     "content_length": content_length, "body": b"", "complete": False}
        self.messages.append(self._cur)
        return False

    def on_body(self, chunk: bytes) -> None:
        assert self._cur is not None
        self._cur["body"] += bytes(chunk)

    def on_message_complete(self) -> None:
        assert self._cur is not None
        self._cur["complete"] = True


def run_ember(module: Any, data: bytes, splits: list[int] | None = None,
              **limits: Any) -> tuple[list[dict[str, Any]], HttpParserError | None]:
    """Feed ``data`` (cut at ``splits``) and return (messages, error)."""
    rec = Recorder()
    parser = module.HttpRequestParser(rec, **limits)
    pieces = _cut(data, splits)
    try:
        for piece in pieces:
            parser.feed_data(piece)
    except HttpParserError as exc:
        return rec.messages, exc
    return rec.messages, None


def _cut(data: bytes, splits: list[int] | None) -> list[bytes]:
    if not splits:
        return [data]
    points = sorted({s for s in splits if 0 < s < len(data)})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


class _LlhttpRecorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.cur: dict[str, Any] = {}
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parser: Any = None

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.cur = {"body": b"", "complete": False}

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.cur["method"] = self.parser.get_method().decode()
        self.cur["version"] = self.parser.get_http_version()
        self.cur["target"] = self.url
        self.cur["headers"] = self.headers
        self.headers = []  # NOTE: later on_header calls are trailers, which we drop
        self.messages.append(self.cur)

    def on_body(self, body: bytes) -> None:
        self.cur["body"] += body

    def on_message_complete(self) -> None:
        self.cur["complete"] = True


def run_llhttp(data: bytes, splits: list[int] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Feed llhttp; returns (messages with method/version, rejected?)."""
    import httptools

    rec = _LlhttpRecorder()
    parser = httptools.HttpRequestParser(rec)
    rec.parser = parser
    try:
        for piece in _cut(data, splits):
            parser.feed_data(piece)
    except httptools.HttpParserUpgrade:
        return rec.messages, False
    except httptools.HttpParserError:
        return rec.messages, True
    return rec.messages, False
