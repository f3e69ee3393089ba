"""An HTTP/2 connection's abuse bounds and request-body clocks (see docs/http2.md).

:class:`H2Limits` is mixed into :class:`ember.http.h2.H2Protocol`: the Rapid Reset
token bucket, the bound on control replies to a peer that does not read, GOAWAY, and
each stream's ``body_timeout`` and ``min_body_rate`` clocks (re-armed lazily).
"""

from __future__ import annotations

import logging
from typing import Any

from ember.http.cycle import BODY_OPEN
from ember.http.frames import _impl as _frames

logger = logging.getLogger("ember.server")


class H2Limits:
    """Abuse bounds and body clocks of :class:`~ember.http.h2.H2Protocol`."""

    def _charge_reset(self) -> None:
        """One stream reset by the client or refused by us: spend a token (Rapid Reset)."""
        now = self.loop.time()
        tokens = min(float(self.limits.http2_reset_burst),
                     self._reset_tokens + (now - self._reset_stamp) * self.limits.http2_reset_rate)
        self._reset_stamp = now
        if tokens < 1:
            logger.warning("HTTP/2 client %s reset or opened too many streams; GOAWAY "
                           "ENHANCE_YOUR_CALM", self.peer[0] if self.peer else "-")
            self._goaway(_frames.ENHANCE_YOUR_CALM)
            return
        self._reset_tokens = tokens - 1

    def _control_reply(self) -> None:
        """A control frame was queued for a peer; bound them while it does not read."""
        if self.write_paused:
            self._pending_control += 1
            if self._pending_control > self.limits.max_pending_control_frames:
                logger.warning("HTTP/2 client %s does not read its control replies; closing",
                               self.peer[0] if self.peer else "-")
                self.abort()

    def _goaway(self, code: int) -> None:
        """Send GOAWAY(code), cancel every stream and close the connection."""
        try:
            self.conn.close_connection(code)
        except self._errors:  # already closing
            pass
        self.flush()
        for stream in list(self.streams.values()):
            self._cancel(stream)
        self.streams.clear()
        self._close()

    def _body_progress(self, stream: Any) -> None:
        """Body bytes arrived (or are awaited): push back the body deadline."""
        timeout = getattr(self.limits, "body_timeout", None)
        if timeout is None:
            return
        stream.body_deadline = self.loop.time() + timeout
        if stream.body_timer is None:
            stream.body_timer = self.loop.call_at(stream.body_deadline, self._body_check,
                                                  stream)

    def _body_check(self, stream: Any) -> None:
        stream.body_timer = None
        if stream.gone or stream.cycle.body_state != BODY_OPEN:
            return
        if self.loop.time() < stream.body_deadline:  # NOTE: re-armed lazily, not per frame
            stream.body_timer = self.loop.call_at(stream.body_deadline, self._body_check,
                                                  stream)
            return
        if self.streams.get(stream.id) is stream:
            self._refuse(stream.id, 408, reason="request body not received in time",
                         head=stream.cycle.head_only)

    def _rate_start(self, stream: Any) -> None:
        """Start the ``min_body_rate`` clock of an unfinished body (checked after the grace)."""
        rate = getattr(self.limits, "min_body_rate", None)
        if rate is None:
            return
        stream.rate_start = self.loop.time()
        stream.rate_base = 0
        stream.rate_conn_base = self._body_bytes
        stream.rate_timer = self.loop.call_later(rate[1], self._rate_check, stream)

    def _rate_check(self, stream: Any) -> None:
        stream.rate_timer = None
        if stream.gone or stream.cycle.body_state != BODY_OPEN \
                or self.streams.get(stream.id) is not stream:
            return
        per_second = self.limits.min_body_rate[0]
        now = self.loop.time()
        need = per_second * (now - stream.rate_start)
        received = stream.cycle.received
        if stream.unacked:
            # NOTE: the window is held shut because the handler is not reading: the client
            # cannot send, so that time does not count against it.
            stream.rate_start = now
            stream.rate_base = received
            stream.rate_conn_base = self._body_bytes
        elif (received - stream.rate_base < need
              and self._body_bytes - stream.rate_conn_base < need):
            # NOTE: slow only if the whole connection is slow too: streams share the
            # connection window, so a busy connection may starve one stream for a while.
            logger.info("HTTP/2 stream %d: request body slower than %d bytes/s; 408",
                        stream.id, per_second)
            self._refuse(stream.id, 408, reason="request body sent too slowly",
                         head=stream.cycle.head_only)
            return
        stream.rate_timer = self.loop.call_later(1.0, self._rate_check, stream)

    @staticmethod
    def _body_done(stream: Any) -> None:
        if stream.body_timer is not None:
            stream.body_timer.cancel()
            stream.body_timer = None
        if stream.rate_timer is not None:
            stream.rate_timer.cancel()
            stream.rate_timer = None
