"""A local HTTP server that speaks the providers' wire formats, programmable per test.

One server answers all three APIs by path: ``/v1/chat/completions`` (OpenAI),
``/v1/messages`` (Anthropic), ``/v1beta/models/<m>:generateContent`` and
``:streamGenerateContent?alt=sse`` (Gemini). Queued :class:`Reply` objects are
served first (per API); otherwise a default handler answers like the real API.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.models import _strict, _wire


@dataclass
class Reply:
    """One programmed answer. ``body`` pieces: bytes to send, floats to sleep."""

    status: int = 200
    body: bytes | list[bytes | float] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    chunked: bool = False
    abort: bool = False  # drop the connection after the pieces (no final chunk)
    close: bool = False  # no length, no chunking: the body ends when the socket closes
    delay: float = 0.0  # wait before the status line (a hung upstream)


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def api_of(path: str) -> str:
    if path.endswith("/chat/completions") or "/chat/completions?" in path:
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return "google"
    if path.endswith("/embeddings") or ":batchEmbedContents" in path:
        return "embeddings"
    return "other"


def default_reply(seen: Seen) -> Reply:
    """Answer like the real API: echo the last user text, with usage."""
    api = api_of(seen.path)
    body = seen.body if isinstance(seen.body, dict) else {}
    if api == "openai":
        text = _wire.echo_text(body.get("messages", []))
        if body.get("stream"):
            return Reply(body=_wire.openai_sse(_wire.split_words(text), usage=(9, 7)),
                         content_type="text/event-stream", chunked=True)
        return Reply(body=orjson.dumps(_wire.openai_completion(text, body.get("model"), 12, 47)))
    if api == "anthropic":
        text = _wire.echo_text(body.get("messages", []))
        if body.get("stream"):
            return Reply(body=_wire.anthropic_sse(_wire.split_words(text), body.get("model")),
                         content_type="text/event-stream", chunked=True)
        return Reply(body=orjson.dumps(_wire.anthropic_message(text, body.get("model"))))
    if api == "google":
        parts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
        text = "Echo: " + (parts[-1] if parts else "")
        if ":streamGenerateContent" in seen.path:
            return Reply(body=_wire.gemini_sse(_wire.split_words(text)),
                         content_type="text/event-stream", chunked=True)
        return Reply(body=orjson.dumps(_wire.gemini_response(text)))
    if api == "embeddings":
        if seen.path.endswith("/embeddings"):
            inputs = body.get("input") or []
            data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.5, float(i)]}
                    for i, _ in enumerate(inputs)]
            return Reply(body=orjson.dumps({"object": "list", "data": data, "model": body.get(
                "model"), "usage": {"prompt_tokens": 4 * len(inputs),
                                    "total_tokens": 4 * len(inputs)}}))
        return Reply(body=orjson.dumps({"embeddings": [
            {"values": [0.25, float(i)]} for i, _ in enumerate(body.get("requests") or [])]}))
    return Reply(status=404, body=b'{"error": {"message": "no such route"}}')


def _refusal(api: str, body: Any) -> Reply | None:
    """The provider's own 400 for a request it would refuse, or None."""
    if api == "anthropic":
        problem = _strict.anthropic_problem(body)
        if problem:
            return Reply(status=400, body=orjson.dumps({"type": "error", "error": {
                "type": "invalid_request_error", "message": problem}}))
    elif api == "google":
        problem = _strict.gemini_problem(body)
        if problem:
            return Reply(status=400, body=orjson.dumps({"error": {
                "code": 400, "message": problem, "status": "INVALID_ARGUMENT"}}))
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        seen = Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.fake.take(seen)
        if reply.delay and self.server.fake.stopping.wait(reply.delay):
            return
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        pieces = reply.body if isinstance(reply.body, list) else [reply.body]
        if reply.chunked:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for piece in pieces:
                if isinstance(piece, float | int):
                    time.sleep(piece)
                    continue
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if reply.abort:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"0\r\n\r\n")
            return
        if reply.close:
            self.send_header("connection", "close")
            self.end_headers()
            for piece in pieces:
                if isinstance(piece, float | int):
                    time.sleep(piece)
                elif piece:
                    self.wfile.write(piece)
            self.close_connection = True
            return
        data = b"".join(p for p in pieces if isinstance(p, bytes))
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class FakeProvider:
    """The programmable fake; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self.queues: dict[str, deque[Reply]] = {}
        self.requests: list[Seen] = []
        self.handler: Callable[[Seen], Reply] | None = None
        self.strict = True  # answer 400 to what the real provider refuses (tests/models/_strict)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def queue(self, api: str, *replies: Reply) -> None:
        with self._lock:
            self.queues.setdefault(api, deque()).extend(replies)

    def take(self, seen: Seen) -> Reply:
        api = api_of(seen.path)
        with self._lock:
            self.requests.append(seen)
            if self.strict:
                refused = _refusal(api, seen.body)
                if refused is not None:
                    return refused
            q = self.queues.get(api)
            if q:
                return q.popleft()
        return (self.handler or default_reply)(seen)

    def reset(self) -> None:
        with self._lock:
            self.queues.clear()
            self.requests.clear()
            self.handler = None
            self.strict = True

    def last(self, api: str | None = None) -> Seen:
        with self._lock:
            return [r for r in self.requests if api is None or api_of(r.path) == api][-1]

    def count(self, api: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if api is None or api_of(r.path) == api)

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
