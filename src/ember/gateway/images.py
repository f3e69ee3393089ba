"""The worst case of a request's images, per provider (never an undercount).

An image sent inline (a ``data:image/...;base64,`` URL, Anthropic's ``base64`` source)
is megabytes of text in the request body, but the provider bills it by its size in
pixels.  :func:`scan` finds the image parts of a request body (OpenAI chat
``image_url``, Responses ``input_image``, Anthropic ``image`` blocks), reads the
dimensions from the image's header only (PNG, JPEG, GIF, WebP: a few bytes decoded,
never the pixels) and bounds each with the provider's documented rule:

* **OpenAI**, tiles: fit in 2048x2048, shortest side down to 768, then ``base + tile``
  per 512-px tile (85 + 170 for GPT-4o/4.1; 2,833 + 5,667 for gpt-4o-mini; 75 + 150 for
  o1/o3; 70 + 140 for GPT-5); ``detail: "low"``: ``base``.  Patch models (gpt-4.1-mini/
  nano, gpt-5-mini/nano, o4-mini): 32-px patches, at most 1,536, times the model's
  multiplier.
* **Anthropic**: ``width * height / 750`` after the long edge is brought to 1,568 px,
  at most :data:`ANTHROPIC_MAX` (Anthropic scales larger images down to ~1,600 tokens).
* **Gemini**: 258 for an image within 384x384, else 258 per crop tile (the tile side is
  the shortest side / 1.5, between 256 and 768); Gemini 3: 1,120 (high resolution).

An image whose size is unknown (a URL, a file id, an unreadable header) counts as the
provider's largest image.  A provider without a documented rule (an OpenAI-compatible
server) keeps the bound of :mod:`ember.gateway.costing`: the image's bytes as text
(inline) or ``IMAGE_TOKENS`` (by URL).
"""

from __future__ import annotations

import binascii
import math
import struct
from typing import Any

#: Largest Anthropic image (~1,600 tokens documented; a margin, never under).
ANTHROPIC_MAX = 1750
#: Gemini 2.x image of unknown size: 16 tiles (a 3072x3072 image).
GEMINI_UNKNOWN = 16 * 258

_TILES = (("gpt-4o-mini", 2833, 5667), ("o1", 75, 150), ("o3", 75, 150),
          ("gpt-5", 70, 140), ("computer-use", 65, 129))
_PATCHES = (("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("gpt-5-mini", 1.62),
            ("gpt-5-nano", 2.46), ("o4-mini", 1.72))


_RULES: dict[str, tuple[float, int, int]] = {}  # bare model -> (patch multiplier, base, tile)


def _openai_rule(bare: str) -> tuple[float, int, int]:
    rule = _RULES.get(bare)
    if rule is None:
        rule = next(((mult, 0, 0) for prefix, mult in _PATCHES if bare.startswith(prefix)),
                    None) or next(((0.0, b, t) for prefix, b, t in _TILES
                                   if bare.startswith(prefix)), (0.0, 85, 170))
        if len(_RULES) < 1024:
            _RULES[bare] = rule
    return rule


def _openai(bare: str, dims: tuple[int, int] | None, low: bool) -> int:
    mult, base, tile = _openai_rule(bare)
    if mult:
        if dims is None:
            return math.ceil(1536 * mult)
        w, h = dims
        return math.ceil(min(1536, math.ceil(w / 32) * math.ceil(h / 32)) * mult)
    if low:
        return base
    if dims is None:
        return base + 8 * tile  # NOTE: 768x2048 after scaling: the most tiles (2 x 4)
    w, h = dims
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def _anthropic(dims: tuple[int, int] | None) -> int:
    if dims is None:
        return ANTHROPIC_MAX
    w, h = dims
    if max(w, h) > 1568:
        scale = 1568 / max(w, h)
        w, h = w * scale, h * scale
    return min(ANTHROPIC_MAX, math.ceil(w * h / 750))


def _google(bare: str, dims: tuple[int, int] | None) -> int:
    if bare.startswith("gemini-3"):
        return 1120
    if dims is None:
        return GEMINI_UNKNOWN
    w, h = dims
    if w <= 384 and h <= 384:
        return 258
    unit = min(768, max(256, math.floor(min(w, h) / 1.5)))
    return 258 * math.ceil(w / unit) * math.ceil(h / unit)


def image_tokens(provider: str, bare: str, dims: tuple[int, int] | None,
                 low: bool = False) -> int | None:
    """Tokens ``provider``/``bare`` bills at most for an image of ``dims`` (None: size
    unknown), or None when the provider documents no rule."""
    if provider in ("openai", "azure"):
        return _openai(bare, dims, low)
    if provider == "anthropic":
        return _anthropic(dims)
    if provider in ("google", "gemini", "vertex"):
        return _google(bare, dims)
    return None


# -- headers ---------------------------------------------------------------------------------
def dimensions(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first bytes of a PNG/JPEG/GIF/WebP, or None."""
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = head[12:16]
            if kind == b"VP8X":
                w = 1 + int.from_bytes(head[24:27], "little")
                h = 1 + int.from_bytes(head[27:30], "little")
            elif kind == b"VP8L" and head[20] == 0x2F:
                bits = int.from_bytes(head[21:25], "little")
                w, h = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            elif kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
                w, h = struct.unpack("<HH", head[26:30])
                w, h = w & 0x3FFF, h & 0x3FFF
            else:
                return None
        elif head[:2] == b"\xff\xd8":
            return _jpeg(head)
        else:
            return None
    except (struct.error, IndexError):
        return None
    return (w, h) if w > 0 and h > 0 else None


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # NOTE: fill bytes
            i += 1
            continue
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return (w, h) if w > 0 and h > 0 else None
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _decoded_dimensions(b64: str, start: int = 0) -> tuple[int, int] | None:
    """Dimensions of the base64 image at ``b64[start:]``, decoding (and copying) only as
    much as its header needs."""
    size = 64
    while True:
        chunk = b64[start:start + size]
        try:
            head = binascii.a2b_base64(chunk)
        except (binascii.Error, ValueError):
            return None
        found = dimensions(head)
        # NOTE: only a JPEG's SOF can sit far in (after EXIF); everything else is early
        if found is not None or head[:2] != b"\xff\xd8" or start + size >= len(b64):
            return found
        size *= 4  # NOTE: stays a multiple of 4 (whole base64 quanta)


# -- finding the images of a body ----------------------------------------------------------
#: One image part: (bytes of its inline payload in the body, dims or None, detail low)
Part = tuple[int, tuple[int, int] | None, bool]


def _data_url(url: str) -> tuple[int, tuple[int, int] | None]:
    if url.startswith("data:"):
        comma = url.find(",", 0, 200)
        if comma > 0 and url[5:comma].endswith(";base64"):
            return len(url), _decoded_dimensions(url, comma + 1)
        return len(url), None
    return 0, None


_NESTED = (dict, list)


def scan(node: Any, out: list[Part] | None = None, depth: int = 0) -> list[Part]:
    """The image parts anywhere in a decoded request body."""
    if out is None:
        out = []
    if depth > 64:
        return out
    if type(node) is dict:
        url = node.get("image_url")
        if url is not None:
            low = node.get("detail") == "low"
            if isinstance(url, dict):
                low = low or url.get("detail") == "low"
                url = url.get("url")
            size, dims = _data_url(url) if isinstance(url, str) else (0, None)
            out.append((size, dims, low))
            return out
        kind = node.get("type")
        if kind == "input_image":  # NOTE: by file id
            out.append((0, None, node.get("detail") == "low"))
            return out
        source = node.get("source")
        if kind == "image" and isinstance(source, dict):
            data = source.get("data")
            if source.get("type") == "base64" and isinstance(data, str):
                out.append((len(data), _decoded_dimensions(data), False))
            else:
                out.append((0, None, False))
            return out
        for value in node.values():
            if isinstance(value, _NESTED):
                scan(value, out, depth + 1)
    elif isinstance(node, _NESTED):
        for value in node:
            if isinstance(value, _NESTED):
                scan(value, out, depth + 1)
    return out


def bound(parts: list[Part], models: list[tuple[str, str]], unknown: int) -> tuple[int, int]:
    """``(inline bytes to stop counting as text, tokens for the images)`` for ``models``
    (a fallback list: the largest bound of each image).  A model without a rule keeps
    the inline bytes as text and ``unknown`` tokens for an image by reference."""
    skipped = tokens = 0
    for size, dims, low in parts:
        worst = 0
        ruled = True
        for provider, bare in models:
            got = image_tokens(provider, bare, dims, low)
            if got is None:
                ruled = False
                got = 0 if size else unknown
            worst = max(worst, got)
        if not models:
            ruled, worst = False, (0 if size else unknown)
        if ruled:
            skipped += size
        tokens += worst
    return skipped, tokens
