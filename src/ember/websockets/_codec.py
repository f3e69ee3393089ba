"""The RFC 6455 frame codec and permessage-deflate (RFC 7692), with no I/O.

Opcodes, the handshake's accept key, close codes and payloads, masking, frame
encoding, and :class:`Deflate` (negotiation, compression, bounded decompression).
:mod:`ember.websockets._protocol` parses frames with them; the compiled fragment
scanner lives in :mod:`ember.wsframes`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from typing import Any

from ember.websockets._errors import WebSocketError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def _close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the reason cut to 123 bytes on a UTF-8 boundary."""
    return struct.pack("!H", code) + reason.encode()[:123].decode("utf-8", "ignore").encode()


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 §7.4)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                    1014) or 3000 <= code <= 4999


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking key (C speed via big integers)."""
    n = len(data)
    if not n:
        return data
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little")


def encode_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked)."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


class Deflate:
    """permessage-deflate state for one connection (RFC 7692)."""

    def __init__(self, server_no_context: bool, client_no_context: bool, server_bits: int,
                 client_bits: int, level: int = 6) -> None:
        self.server_no_context = server_no_context
        self.client_no_context = client_no_context
        self.server_bits = server_bits
        self.client_bits = client_bits
        self.level = level
        self._compress: Any = None
        self._decompress: Any = None

    @classmethod
    def negotiate(cls, offer_header: str | None) -> tuple[Deflate | None, str | None]:
        """Pick the first acceptable permessage-deflate offer; (state, response header)."""
        if not offer_header:
            return None, None
        for offer in offer_header.split(","):
            parts = [p.strip() for p in offer.split(";")]
            if parts[0].lower() != "permessage-deflate":
                continue
            params: dict[str, str | None] = {}
            ok = True
            for p in parts[1:]:
                if not p:
                    continue
                name, _, value = p.partition("=")
                name = name.strip().lower()
                value = value.strip().strip('"') if value else None
                if name in params:
                    ok = False
                    break
                params[name] = value
            if not ok:
                continue
            server_bits, client_bits = 15, 15
            response = ["permessage-deflate"]
            unknown = set(params) - {"server_no_context_takeover", "client_no_context_takeover",
                                     "server_max_window_bits", "client_max_window_bits"}
            if unknown:
                continue
            if params.get("server_no_context_takeover") is not None:
                continue  # NOTE: these two parameters take no value (RFC 7692 §7.1)
            if params.get("client_no_context_takeover") is not None:
                continue
            if "server_max_window_bits" in params:
                v = params["server_max_window_bits"]
                if v is None or not v.isdigit() or not 8 <= int(v) <= 15:
                    continue
                if int(v) == 8:
                    # NOTE: zlib cannot compress with an 8-bit raw window and answering
                    # more than offered is a protocol error (RFC 7692 §7.1.2.1): decline
                    # this offer (the next one, or no compression).
                    continue
                server_bits = int(v)
                response.append(f"server_max_window_bits={server_bits}")
            if "client_max_window_bits" in params:
                v = params["client_max_window_bits"]
                if v is not None:
                    if not v.isdigit() or not 8 <= int(v) <= 15:
                        continue
                    # NOTE: accepted as offered (answering more is a protocol error);
                    # client_bits, used to inflate, is at least 9: a larger window always
                    # inflates, and zlib deflates "8" with 9 bits.
                    client_bits = max(9, int(v))
                    response.append(f"client_max_window_bits={int(v)}")
            server_nc = "server_no_context_takeover" in params
            client_nc = "client_no_context_takeover" in params
            if server_nc:
                response.append("server_no_context_takeover")
            if client_nc:
                response.append("client_no_context_takeover")
            return cls(server_nc, client_nc, server_bits, client_bits), "; ".join(response)
        return None, None

    def compress(self, data: bytes) -> bytes:
        """One outgoing message, compressed."""
        if self._compress is None or self.server_no_context:
            self._compress = zlib.compressobj(self.level, zlib.DEFLATED, -self.server_bits)
        out = self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_DEFLATE_TAIL) else out

    def decompress(self, data: bytes, max_size: int) -> bytes:
        """One incoming message; WebSocketError 1009 past ``max_size``, 1007 when corrupt."""
        if self._decompress is None or self.client_no_context:
            self._decompress = zlib.decompressobj(-self.client_bits)
        try:
            out = self._decompress.decompress(data + _DEFLATE_TAIL, max_size + 1)
        except zlib.error as exc:
            raise WebSocketError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > max_size or self._decompress.unconsumed_tail:
            raise WebSocketError(1009, "message too big")
        return out



__all__ = ["OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "Deflate",
           "accept_key", "encode_frame", "valid_close_code"]
