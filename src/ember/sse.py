"""Server-sent events and token streams (SPEC §3).

``SSEResponse`` frames each item of an (async) iterable as an event: a ``str``
is data, a ``dict``/``list`` is JSON data, ``bytes`` go out as they are
(pre-encoded), and :class:`ServerSentEvent` sets every field.  Comment pings keep
idle streams open through proxies; ``X-Accel-Buffering: no`` stops nginx from
buffering.  An exception mid-stream is logged and ends the stream with an
``error`` event; a client that goes away cancels the stream and the generator's
``finally`` runs.  Nothing here buffers: each event is written (and drained)
as it is produced.

``TokenStreamResponse`` streams model tokens, by default in OpenAI's
``chat.completion.chunk`` format ending with ``data: [DONE]``, so OpenAI SDK
clients can read an Ember endpoint directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

import orjson

from ember.exceptions import ClientDisconnect
from ember.responses import StreamingResponse, _aclose

logger = logging.getLogger("ember.sse")

_FORMATS = ("openai", "sse", "text")


class ServerSentEvent:
    """One event: ``data`` (str, or JSON for dict/list), ``event``, ``id``, ``retry``, ``comment``.

    Multi-line data becomes one ``data:`` line per line (CRLF, CR and LF all split,
    as the SSE parser in browsers does).  ``event``, ``id`` and ``comment`` must be
    single lines: CR, LF or NUL in them raise ``ValueError`` (no event injection).
    """

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(self, data: Any = None, event: str | None = None, id: str | int | None = None,
                 retry: int | None = None, comment: str | None = None) -> None:
        for name, value in (("event", event), ("id", id), ("comment", comment)):
            if value is not None and any(c in str(value) for c in "\r\n\x00"):
                raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")
        if retry is not None and (type(retry) is not int or retry < 0):
            raise ValueError(f"SSE retry must be a non-negative int (ms), got {retry!r}")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def encode(self, sep: str = "\n") -> bytes:
        """The wire form, ending with the blank line that dispatches the event."""
        out: list[str] = []
        if self.comment is not None:
            out.append(f": {self.comment}")
        if self.event is not None:
            out.append(f"event: {self.event}")
        if self.id is not None:
            out.append(f"id: {self.id}")
        if self.retry is not None:
            out.append(f"retry: {self.retry}")
        if self.data is not None:
            data = self.data
            if isinstance(data, (dict, list, tuple)):
                text = orjson.dumps(data).decode()
            elif isinstance(data, (bytes, bytearray)):
                text = bytes(data).decode("utf-8")
            else:
                text = str(data)
            # NOTE: every line of the data gets its own "data:" field (CRLF, CR, LF).
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
                out.append(f"data: {line}")
        return (sep.join(out) + sep + sep).encode("utf-8")

    def __repr__(self) -> str:
        return (f"ServerSentEvent(data={self.data!r}, event={self.event!r}, id={self.id!r}, "
                f"retry={self.retry!r})")


def encode_event(item: Any, sep: str = "\n") -> bytes:
    """Frame one stream item as SSE bytes (``bytes`` are taken as already framed)."""
    if isinstance(item, ServerSentEvent):
        return item.encode(sep)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    return ServerSentEvent(item).encode(sep)


async def _aiter(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        # NOTE: a sync iterable runs on the event loop; it must not block.
        for item in source:
            yield item


class SSEResponse(StreamingResponse):
    """A ``text/event-stream`` response from an (async or sync) iterable of events.

    ``ping_interval`` (seconds, ``None`` to disable): a comment ping goes out when
    no event was produced for that long.  The pending step of the generator is
    never cancelled by a ping; it just keeps running while the ping is written.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterable[Any] | Iterable[Any], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, *, ping_interval: float | None = 15.0,
                 ping_message: bytes = b": ping\n\n", sep: str = "\n", background: Any = None,
                 debug: bool | None = None) -> None:
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError(f"ping_interval must be positive or None, got {ping_interval!r}")
        if sep not in ("\n", "\r\n", "\r"):
            raise ValueError(f"sep must be '\\n', '\\r\\n' or '\\r', got {sep!r}")
        base = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        if headers:
            base.update({k.lower(): v for k, v in headers.items()})
        super().__init__(content, status_code, base, None, background)
        self.ping_interval = ping_interval
        self.ping_message = ping_message
        self.sep = sep
        self.debug = debug

    @staticmethod
    def last_event_id(request: Any) -> str | None:
        """The ``Last-Event-ID`` a reconnecting client sent (``None`` when absent)."""
        value = request.headers.get("last-event-id")
        # NOTE: the SSE spec ignores ids containing NUL; so do we.
        return None if value is None or "\x00" in value else value

    def encode(self, item: Any) -> bytes:
        """Frame one item of the stream (override to change the wire format)."""
        return encode_event(item, self.sep)

    def error_frame(self, message: str) -> bytes:
        """What is written when the stream fails mid-way (an ``error`` event)."""
        return ServerSentEvent({"error": message}, event="error").encode(self.sep)

    async def stream_to(self, out: Any) -> None:
        """Write events as they come; pings while idle; an error event on failure."""
        source = self.body_iterator
        iterator = _aiter(source)
        interval = self.ping_interval
        # PERF: the generator runs in this task and one timer per stream watches for
        # idleness; a ping write (a short task) happens only when a ping is due, instead
        # of a task and a timeout per event.
        pinger = None if interval is None else _Pinger(out, self.ping_message, interval)
        try:
            out.start(self.status_code, self.raw_headers)
            if pinger is None:
                while True:
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    data = self.encode(item)
                    if data:
                        await out.write(data)
            else:
                pinger.start()
                while True:
                    pinger.waiting = True
                    try:
                        item = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        pinger.waiting = False
                        pinger.touch()
                    data = self.encode(item)
                    await pinger.wait()  # NOTE: a ping being written goes out first, whole
                    if data:
                        await out.write(data)
        except ClientDisconnect:
            raise
        except Exception as exc:
            request = out.request
            logger.exception("error in event stream for %s %s", request.method, request.path)
            debug = self.debug
            if debug is None:
                debug = bool(getattr(getattr(request, "app", None), "debug", False))
            message = f"{type(exc).__name__}: {exc}" if debug else "stream failed"
            frame = self.error_frame(message)
            if pinger is not None:
                await pinger.wait(raise_errors=False)
            if frame and not out.closed:
                await out.write(frame)
        finally:
            if pinger is not None:
                await pinger.stop()
            await _aclose(iterator)
            await _aclose(source)
        await out.end()


class _Pinger:
    """One idle timer per stream: writes ``message`` when nothing was sent for ``interval``.

    The timer re-arms itself at most once per interval (not per event); a ping is
    written by a short task only while the stream waits for its generator, and the
    stream awaits that write before its next one, so writes never interleave.
    """

    __slots__ = ("error", "handle", "interval", "last", "loop", "message", "out", "task",
                 "waiting")

    def __init__(self, out: Any, message: bytes, interval: float) -> None:
        self.out = out
        self.message = message
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.waiting = False
        self.last = 0.0

    def start(self) -> None:
        self.last = self.loop.time()
        self.handle = self.loop.call_at(self.last + self.interval, self._tick)

    def touch(self) -> None:
        self.last = self.loop.time()

    def _tick(self) -> None:
        now = self.loop.time()
        due = self.last + self.interval
        if now < due:
            self.handle = self.loop.call_at(due, self._tick)
            return
        task = self.task
        if self.waiting and (task is None or task.done()) and self.error is None \
                and not self.out.closed:
            self.task = self.loop.create_task(self._ping())
        self.last = now
        self.handle = self.loop.call_at(now + self.interval, self._tick)

    async def _ping(self) -> None:
        try:
            await self.out.write(self.message)
        except Exception as exc:  # NOTE: re-raised in the stream's task by wait()
            self.error = exc

    async def wait(self, raise_errors: bool = True) -> None:
        task = self.task
        if task is not None:
            self.task = None
            await task
        if self.error is not None and raise_errors:
            error, self.error = self.error, None
            raise error

    async def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass


def sse_stream(content: AsyncIterable[Any] | Iterable[Any], **kwargs: Any) -> SSEResponse:
    """``SSEResponse(content, **kwargs)``: the seed's one-liner for streaming events."""
    return SSEResponse(content, **kwargs)


def _token_text(token: Any) -> str:
    if isinstance(token, str):
        return token
    text = getattr(token, "text", None)
    if text is not None:
        return str(text)
    if isinstance(token, bytes):
        return token.decode("utf-8")
    return str(token)


class TokenStreamResponse(SSEResponse):
    """Model tokens as a stream: ``format="openai"`` (default), ``"sse"`` or ``"text"``.

    Tokens are ``str`` or objects with a ``.text`` attribute (model stream chunks).

    - ``openai``: OpenAI ``chat.completion.chunk`` events — a role delta first,
      content deltas, a final chunk with ``finish_reason: "stop"`` — then
      ``data: [DONE]`` when ``done``.  ``usage`` (a dict, an object with
      ``prompt_tokens``/``completion_tokens``/``total_tokens``, or a callable
      returning one once the stream ends) adds OpenAI's trailing usage chunk.
    - ``sse``: one ``data:`` event per token, and ``data: [DONE]`` when ``done``.
    - ``text``: a plain ``text/plain`` chunked body of the tokens, no pings.

    A failure mid-stream is logged and ends the stream: an OpenAI-style
    ``{"error": {...}}`` chunk (which the OpenAI SDK raises as ``APIError``), an
    ``error`` event for ``sse``, and nothing more for ``text``.
    """

    def __init__(self, tokens: AsyncIterable[Any] | Iterable[Any], *, model: str = "ember",
                 format: str = "openai", done: bool = True, id: str | None = None,
                 status_code: int = 200, headers: Mapping[str, str] | None = None,
                 ping_interval: float | None = 15.0, usage: Any = None) -> None:
        if format not in _FORMATS:
            raise ValueError(f"format must be 'openai', 'sse' or 'text', got {format!r}")
        self.model = model
        self.format = format
        self.done = done
        self.completion_id = id or f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.usage = usage
        super().__init__(self._frames(tokens), status_code, headers,
                         ping_interval=None if format == "text" else ping_interval)
        if format == "text":
            self._headers["content-type"] = "text/plain; charset=utf-8"

    def _encoder(self) -> Any:
        from ember._chunks import ChunkEncoder

        return ChunkEncoder(self.completion_id, self.model, self.created)

    def error_frame(self, message: str) -> bytes:
        if self.format == "text":
            return b""
        if self.format == "openai":
            error = {"error": {"message": message, "type": "server_error", "param": None,
                               "code": None}}
            return b"data: " + orjson.dumps(error) + b"\n\n"
        return super().error_frame(message)

    async def _frames(self, tokens: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[bytes]:
        fmt = self.format
        source = _aiter(tokens)
        try:
            if fmt == "text":
                async for token in source:
                    text = _token_text(token)
                    if text:
                        yield text.encode("utf-8")
                return
            if fmt == "sse":
                async for token in source:
                    yield ServerSentEvent(_token_text(token)).encode()
                if self.done:
                    yield b"data: [DONE]\n\n"
                return
            encoder = self._encoder()
            chunk = encoder.choice
            yield chunk(0, {"role": "assistant", "content": ""}, None)
            async for token in source:
                text = _token_text(token)
                if text:
                    yield chunk(0, {"content": text}, None)
            yield chunk(0, {}, "stop")
            usage = self.usage() if callable(self.usage) else self.usage
            if usage is not None:
                if not isinstance(usage, dict):
                    usage = {k: getattr(usage, k) for k in
                             ("prompt_tokens", "completion_tokens", "total_tokens")
                             if hasattr(usage, k)}
                yield encoder.usage(usage)
            if self.done:
                yield b"data: [DONE]\n\n"
        finally:
            await _aclose(source)
            await _aclose(tokens)
