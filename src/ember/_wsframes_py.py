# cython: annotation_typing=False
"""WebSocket fragment runs: the hot loop of a message sent in many small frames.

Pure-Python reference, compiled as ``_wsframes_c`` by Cython (issue 23: a 1 MiB
message in 1-byte fragments cost 1.7 s of CPU frame by frame in Python).
:func:`scan_fragments` takes only frames the general parser in
:mod:`ember.websockets` would treat exactly the same way, so what a handler
observes never depends on it; anything else is left to that parser.
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # pragma: no cover - pure install without Cython
    from ember import _cython_shim as cython

def scan_fragments(buf: bytearray, out: bytearray, limit: int, max_frames: int) -> int:
    """Unmask a run of small continuation frames from the start of ``buf`` into ``out``.

    Takes complete frames with FIN clear, no RSV bit, opcode 0 (continuation),
    masked, a payload of at most 125 bytes, while ``len(out)`` stays within
    ``limit``, at most ``max_frames`` of them (the caller's work budget); stops before anything else (a final or control frame, an
    incomplete frame, one that would pass ``limit``).  Returns the bytes taken
    from ``buf`` (the caller deletes them).  The caller must be inside a message.
    """
    if cython.compiled:
        return _c_scan(buf, out, limit, max_frames)  # noqa: F821 - defined in _wsframes_c.pxd
    pos = 0
    end = len(buf)
    total = len(out)
    frames = 0
    while pos + 6 <= end and frames < max_frames:
        if buf[pos] != 0 or not buf[pos + 1] & 0x80:
            break
        n = buf[pos + 1] & 0x7F
        if n > 125 or pos + 6 + n > end or total + n > limit:
            break
        # NOTE: byte by byte without slices: no allocation per frame
        for i in range(n):
            out.append(buf[pos + 6 + i] ^ buf[pos + 2 + (i & 3)])
        total += n
        pos += 6 + n
        frames += 1
    return pos
