"""The one incremental Server-Sent Events decoder (WHATWG ``text/event-stream`` rules).

It sits low in the package (it imports nothing of Ember) so that every layer that
reads SSE uses it: the model providers' streams (``ember.models.providers._stream``),
the test client's event API (``ember.testing``) and the token accounting of AI routes
(``ember.ai.routes``).

Bytes go in as they arrive, in any split; complete events come out. Lines end
in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the
next are one line end); ``data:`` lines join with ``\\n``; comments (``:``) are
ignored; a leading BOM is skipped; a half event at EOF is discarded
(:meth:`SSEDecoder.pending` says whether one was left, :meth:`SSEDecoder.flush`
returns it instead).

Two dispatch rules:

- the browser's (default): an event without data is dropped, ``id`` is the last
  event id seen (it carries over to later events), ``retry`` is ignored;
- ``blocks=True`` (what a test wants to see): every block with a field is an
  event, ``id`` and ``retry`` are only what that block set.
"""

from __future__ import annotations

from typing import NamedTuple


class SSEEvent(NamedTuple):
    """One dispatched event: ``event`` defaults to ``"message"``."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes with :meth:`feed`; it returns the events completed so far."""

    __slots__ = ("_block_id", "_blocks", "_buf", "_data", "_event", "_id", "_retry",
                 "_seen", "_skip_lf", "_started")

    def __init__(self, *, blocks: bool = False) -> None:
        self._blocks = blocks
        self._buf = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._block_id: str | None = None
        self._retry: int | None = None
        self._seen = False
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return every event it completes."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if not self._started and buf:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                self._skip_lf = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            self._line(line)
        return events

    def _line(self, line: bytes) -> None:
        if line[0] == 58:  # b":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\x00" not in value:
            self._id = self._block_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        else:
            return  # NOTE: unknown fields are ignored
        self._seen = True

    def _dispatch(self) -> SSEEvent | None:
        event: SSEEvent | None = None
        if self._blocks:
            if self._seen:
                event = SSEEvent(self._event or "message",
                                 b"\n".join(self._data).decode("utf-8", "replace"),
                                 self._block_id, self._retry)
        elif self._data:
            event = SSEEvent(self._event or "message",
                             b"\n".join(self._data).decode("utf-8", "replace"), self._id)
        self._data = []
        self._event = self._block_id = self._retry = None
        self._seen = False
        return event

    def flush(self) -> list[SSEEvent]:
        """End of input: the unterminated last event as if a blank line had followed."""
        tail, self._buf = self._buf, b""
        if tail:
            self._line(tail)
        event = self._dispatch()
        return [] if event is None else [event]

    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a truncated stream)."""
        return bool(self._buf.strip() or self._data or (self._blocks and self._seen))
