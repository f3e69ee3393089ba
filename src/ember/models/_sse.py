"""Incremental Server-Sent Events decoder (WHATWG ``text/event-stream`` rules).

Bytes go in as they arrive, in any split; complete events come out. Lines end
in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the
next are one line end); ``data:`` lines join with ``\\n``; comments (``:``) are
ignored; an event without data is dropped; a half event at EOF is discarded
(:meth:`SSEDecoder.pending` says whether one was left).
"""

from __future__ import annotations

from typing import NamedTuple


class SSEEvent(NamedTuple):
    """One dispatched event: ``event`` defaults to ``"message"``."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Feed bytes with :meth:`feed`; it returns the events completed so far."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
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
                if self._data:
                    events.append(
                        SSEEvent(
                            self._event or "message",
                            b"\n".join(self._data).decode("utf-8", "replace"),
                            self._id,
                        )
                    )
                self._data = []
                self._event = None
                continue
            if line[0] == 58:  # b":" comment / keep-alive
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id" and b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
            # "retry" and unknown fields are ignored
        return events

    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a truncated stream)."""
        return bool(self._buf.strip() or self._data)
