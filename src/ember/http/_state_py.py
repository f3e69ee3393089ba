# cython: annotation_typing=False
"""What the connections of one worker share (pure-Python reference).

Compiled by Cython as ``_state_c``: one :class:`ServerState` per worker, handed to
every connection (HTTP/1.1, HTTP/2, HTTP/3) and to the exchange core, which read its
fields as C struct members (the Date line of every response, the request counter,
the shutdown flag, the access-log switch).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from email.utils import formatdate
from typing import Any


def date_header() -> bytes:
    """``date: <IMF-fixdate>\\r\\n`` for now."""
    return b"date: " + formatdate(time.time(), usegmt=True).encode("ascii") + b"\r\n"


class ServerState:
    """What the connections of one worker share: registry, Date header, counters."""

    def __init__(self, access_log: bool = False) -> None:
        self.connections: set[Any] = set()
        self.waiting: deque[Any] = deque()
        self.tasks: set[asyncio.Task[Any]] = set()
        #: the ``Alt-Svc`` value every response carries (HTTP/3 on: ``h3=":PORT"...``),
        #: or b"": HTTP/1.1 gets it on the date line, HTTP/2 as its own field
        self.alt_svc = b""
        self.date_header = date_header()
        self.total_requests = 0
        self.shutting_down = False
        self.access_log = access_log
        # NOTE: the app's plan (route -> how its handler is called on the fast path, 0:
        # never; Ember._answer_plan) as the connections use it, for introspection.
        # fast_path False turns the fast path off (tests compare bytes).
        self.fast_routes: dict[Any, int] = {}
        self.fast_path = True

    def refresh_date(self) -> None:
        """Called once a second by the server so no request formats a date."""
        line = date_header()
        if self.alt_svc:
            line += b"alt-svc: " + self.alt_svc + b"\r\n"
        self.date_header = line
