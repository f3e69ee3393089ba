"""Translations from OpenAI's chat vocabulary that Claude and Gemini accept.

- ``image_url`` parts (an ``https`` URL or a ``data:`` URI) -> Claude ``image`` blocks
  (``base64`` or ``url`` source) and Gemini ``inlineData`` / ``fileData`` parts;
- tool-call ids -> ids Claude accepts (``^[a-zA-Z0-9_-]+$``, at most 64 characters),
  unique across the whole conversation, with every ``tool`` result following its call;
- consecutive messages of one role -> one turn (Claude and Gemini alternate turns);
- JSON Schemas -> the OpenAPI subset Gemini's ``parameters`` accepts (``$ref`` /
  ``$defs`` inlined, ``additionalProperties``, ``$schema``, ``default``... removed,
  ``["string", "null"]`` -> ``nullable``, ``const`` -> ``enum``).

What cannot be translated raises :class:`~ember.models.params.UnsupportedParameterError`
(a 400 naming the field) instead of reaching the provider as a request it rejects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import re
from typing import Any

from ember.models import params as P

CLAUDE_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[^;,]*)*)(;base64)?,(.*)$",
                       re.S | re.I)
_CLAUDE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def image_source(provider: str, part: dict[str, Any]) -> tuple[str, str, str]:
    """``("base64", media type, data)`` or ``("url", media type guess, url)`` of an
    OpenAI ``image_url`` part."""
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise P.refuse(provider, "messages", "an image_url part needs image_url.url (a URL "
                       "or a data: URI)")
    if url[:5].lower() == "data:":
        match = _DATA_URI.match(url)
        if match is None or not match.group(3):
            raise P.refuse(provider, "messages", "an image data: URI must be base64 "
                           "(data:image/png;base64,...)")
        media = (match.group(1) or "").lower()
        data = re.sub(r"\s+", "", match.group(4))
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise P.refuse(provider, "messages", "the image data: URI is not valid "
                           "base64") from None
        return "base64", media, data
    if not url.lower().startswith(("https://", "http://")):
        raise P.refuse(provider, "messages", f"image_url.url must be http(s) or a data: URI, "
                       f"got {url[:40]!r}")
    guess = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return "url", guess, url


def claude_block(part: Any) -> dict[str, Any] | None:
    """One OpenAI content part as a Claude content block (None: nothing to send)."""
    if isinstance(part, str):
        return {"type": "text", "text": part} if part else None
    if not isinstance(part, dict):
        raise P.refuse("anthropic", "messages", f"content parts must be objects, got "
                       f"{type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return {"type": "text", "text": text} if text else None  # NOTE: empty text: a 400
    if kind == "image_url":
        source, media, data = image_source("anthropic", part)
        if source == "url":
            return {"type": "image", "source": {"type": "url", "url": data}}
        if media not in CLAUDE_IMAGE_TYPES:
            raise P.refuse("anthropic", "messages", f"Claude takes JPEG, PNG, GIF or WebP "
                           f"images, got {media or 'no media type'!r}")
        return {"type": "image", "source": {"type": "base64", "media_type": media,
                                            "data": data}}
    if kind in ("input_audio", "file"):
        raise P.refuse("anthropic", "messages", f"{kind} content parts have no Claude "
                       f"translation")
    return part  # already a Claude block (image, document, tool_result...)


def claude_content(content: Any) -> Any:
    """OpenAI message content -> Claude content (a string or a list of blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    return [b for b in (claude_block(p) for p in content) if b is not None]


def gemini_part(part: Any) -> dict[str, Any] | None:
    """One OpenAI content part as a Gemini part."""
    if isinstance(part, str):
        return {"text": part}
    if not isinstance(part, dict):
        raise P.refuse("google", "messages", f"content parts must be objects, got "
                       f"{type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        return {"text": part.get("text") or ""}
    if kind == "image_url":
        source, media, data = image_source("google", part)
        if source == "url":
            return {"fileData": {"mimeType": media, "fileUri": data}}
        if not media:
            raise P.refuse("google", "messages", "the image data: URI has no media type")
        return {"inlineData": {"mimeType": media, "data": data}}
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = str(audio.get("format") or "wav")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data", "")}}
    if kind is not None:
        raise P.refuse("google", "messages", f"{kind} content parts have no Gemini "
                       f"translation")
    return part  # already a Gemini part (text, inlineData, fileData, ...)


class ToolIds:
    """Tool-call ids a provider accepts: allowed characters, unique across turns.

    :meth:`call` renames the id of one assistant tool call (a repeated id in a later
    turn gets a new one); :meth:`result` gives the id a ``tool`` message answers (the
    latest call with that original id).
    """

    __slots__ = ("_latest", "_used")

    def __init__(self) -> None:
        self._latest: dict[str, str] = {}
        self._used: set[str] = set()

    def call(self, original: Any) -> str:
        raw = original if isinstance(original, str) and original else "call"
        new = raw if _CLAUDE_ID.match(raw) else _clean(raw)
        if new in self._used:
            n = 2
            while f"{new[:58]}_{n}" in self._used:
                n += 1
            new = f"{new[:58]}_{n}"
        self._used.add(new)
        self._latest[raw] = new
        return new

    def result(self, original: Any) -> str | None:
        """The id a ``tool`` message answers, or None when no call had it (an orphan)."""
        raw = original if isinstance(original, str) and original else "call"
        return self._latest.get(raw)


def _clean(raw: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", raw)
    if len(cleaned) > 64 or cleaned != raw:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:55]}_{digest}"
    return cleaned


def merge_turns(messages: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Consecutive messages of one role as one turn (their ``key`` lists concatenated)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            prev = out[-1]
            prev[key] = _as_list(prev[key]) + _as_list(m[key])
        else:
            out.append(m)
    return out


def _as_list(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [content]


# -- JSON Schema -> Gemini's OpenAPI subset -------------------------------------------------
_GEMINI_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "maxItems",
    "minItems", "properties", "required", "minProperties", "maxProperties", "minLength",
    "maxLength", "pattern", "example", "anyOf", "propertyOrdering", "minimum", "maximum",
})


def gemini_schema(schema: Any, where: str = "parameters") -> Any:
    """``schema`` rewritten for Gemini's ``parameters`` / ``responseSchema``."""
    if not isinstance(schema, dict):
        return schema
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _gemini(schema, defs, (), where)


def _gemini(node: Any, defs: dict[str, Any], seen: tuple[str, ...], where: str) -> Any:
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/") or name not in defs:
            raise P.refuse("google", "tools", f"{where}: $ref {ref!r} does not point into "
                           f"$defs/definitions")
        if name in seen:
            raise P.refuse("google", "tools", f"{where}: the schema is recursive ({ref}); "
                           f"Gemini takes no recursive schemas")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _gemini(merged, defs, (*seen, name), where)
    if "const" in node and "enum" not in node:
        node = {**node, "enum": [node["const"]]}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k} for k in kinds]
        elif kinds:
            out["type"] = kinds[0]
        if "null" in kind:
            out["nullable"] = True
    elif kind is not None:
        out["type"] = kind
    for key, value in node.items():
        if key == "type" or (key not in _GEMINI_KEYS and key not in ("oneOf", "allOf")):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _gemini(v, defs, seen, f"{where}.{k}") for k, v in value.items()}
        elif key == "items":
            out[key] = _gemini(value, defs, seen, f"{where}[]")
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            options = [_gemini(v, defs, seen, where) for v in value]
            nulls = [o for o in options if o == {"type": "null"}]
            options = [o for o in options if o != {"type": "null"}]
            if nulls:
                out["nullable"] = True
            if len(options) == 1:
                out.update(options[0])
            else:
                out["anyOf"] = options
        elif key == "allOf" and isinstance(value, list):
            for part in value:
                out.update(_gemini(part, defs, seen, where))
        elif key == "enum" and isinstance(value, list):
            if all(isinstance(v, str) for v in value) and out.get("type", "string") == "string":
                out[key] = value
                out["type"] = "string"
            else:  # NOTE: Gemini's enum holds strings only: say it in words instead
                allowed = ", ".join(map(str, value))
                out["description"] = f"{node.get('description') or ''} (one of: {allowed})"\
                    .strip()
        else:
            out[key] = value
    if out.get("nullable") and "type" not in out and "anyOf" not in out:
        out["type"] = "string"
    if "required" in out and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out
