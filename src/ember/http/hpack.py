"""HPACK (RFC 7541): compiled twin when available (see :mod:`ember._compat`)."""

from __future__ import annotations

from ember._compat import load_twin

_impl = load_twin("ember.http", "hpack")
Decoder = _impl.Decoder
Encoder = _impl.Encoder
HPACKError = _impl.HPACKError
HeaderListTooLarge = _impl.HeaderListTooLarge
InvalidTableSize = _impl.InvalidTableSize
huffman_encode = _impl.huffman_encode
huffman_decode = _impl.huffman_decode

__all__ = ["Decoder", "Encoder", "HPACKError", "HeaderListTooLarge", "InvalidTableSize",
           "huffman_decode", "huffman_encode"]
