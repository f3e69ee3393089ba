"""What the real providers refuse, checked by the fake before it answers.

Each rule is one the real API enforces (its 400 message is quoted where it helps):
a request our translation gets wrong fails here as it would upstream.
"""

from __future__ import annotations

import re
from typing import Any

_CLAUDE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_CLAUDE_BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking",
                  "redacted_thinking", "server_tool_use", "web_search_tool_result",
                  "search_result", "container_upload"}
_CLAUDE_MEDIA = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_GEMINI_PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse",
                     "thought", "thoughtSignature", "executableCode", "codeExecutionResult",
                     "videoMetadata"}
# NOTE: Gemini's Schema (OpenAPI subset) for functionDeclarations[].parameters
_GEMINI_SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "items",
                       "maxItems", "minItems", "properties", "required", "minProperties",
                       "maxProperties", "minLength", "maxLength", "pattern", "example",
                       "anyOf", "propertyOrdering", "minimum", "maximum", "default"}


def anthropic_problem(body: Any) -> str | None:
    """Why Anthropic's Messages API would answer 400, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "system: Input should be a valid string or list"
    tools = {t.get("name") for t in body.get("tools") or () if isinstance(t, dict)}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in tools:
        return "tool_choice.name: the named tool is not in tools"
    seen_ids: set[str] = set()
    pending: set[str] = set()
    for i, m in enumerate(body.get("messages") or ()):
        where = f"messages.{i}"
        if m.get("role") not in ("user", "assistant"):
            return f"{where}.role: Input should be 'user' or 'assistant'"
        content = m.get("content")
        if content == "" or content == []:
            return f"{where}: all messages must have non-empty content"
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        answered: set[str] = set()
        for j, b in enumerate(blocks):
            at = f"{where}.content.{j}"
            kind = b.get("type") if isinstance(b, dict) else None
            if kind not in _CLAUDE_BLOCKS:
                return (f"{at}.type: Input tag '{kind}' found using 'type' does not match any "
                        f"of the expected tags")
            if kind == "text" and not b.get("text"):
                return f"{at}: text content blocks must be non-empty"
            if kind == "image":
                src = b.get("source") or {}
                if src.get("type") == "base64":
                    if src.get("media_type") not in _CLAUDE_MEDIA or not src.get("data"):
                        return f"{at}.source: a base64 image needs media_type and data"
                elif src.get("type") == "url":
                    if not str(src.get("url", "")).startswith(("http://", "https://")):
                        return f"{at}.source.url: invalid URL"
                else:
                    return f"{at}.source.type: Input should be 'base64' or 'url'"
            if kind == "tool_use":
                tid = b.get("id")
                if not isinstance(tid, str) or not _CLAUDE_ID.match(tid):
                    return f"{at}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                if tid in seen_ids:
                    return f"{at}: `tool_use` ids must be unique"
                seen_ids.add(tid)
                pending.add(tid)
            if kind == "tool_result":
                tid = b.get("tool_use_id")
                if tid not in pending:
                    return (f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{tid}. Each `tool_result` block must have a corresponding "
                            f"`tool_use` block in the previous message.")
                answered.add(tid)
                if j and blocks[j - 1].get("type") != "tool_result":
                    return f"{at}: tool_result blocks must come first in the user turn"
        if m.get("role") == "user":
            if pending - answered:
                return (f"{where}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {sorted(pending - answered)[0]}. Each `tool_use` "
                        f"block must have a corresponding `tool_result` block in the next "
                        f"message.")
            pending = set()
    if pending and body.get("messages"):
        return ("messages: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {sorted(pending)[0]}")
    return None


def gemini_problem(body: Any) -> str | None:
    """Why Gemini's generateContent would answer 400, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for i, c in enumerate(body.get("contents") or ()):
        if c.get("role") not in ("user", "model"):
            return f"contents[{i}].role: Please use a valid role: user, model."
        parts = c.get("parts")
        if not parts:
            return f"contents[{i}].parts: contents.parts must not be empty."
        for j, part in enumerate(parts):
            extra = set(part) - _GEMINI_PART_KEYS
            if extra:
                name = sorted(extra)[0]
                return (f"Invalid JSON payload received. Unknown name \"{name}\" at "
                        f"'contents[{i}].parts[{j}]': Cannot find field.")
            if "inlineData" in part and not {"mimeType", "data"} <= set(part["inlineData"]):
                return f"contents[{i}].parts[{j}].inlineData: mimeType and data are required"
    for t, tool in enumerate(body.get("tools") or ()):
        for d, decl in enumerate(tool.get("functionDeclarations") or ()):
            problem = _schema_problem(decl.get("parameters"),
                                      f"tools[{t}].function_declarations[{d}].parameters")
            if problem:
                return problem
    return None


def _schema_problem(schema: Any, where: str) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return f"{where}: must be an object"
    for key, value in schema.items():
        if key not in _GEMINI_SCHEMA_KEYS:
            return (f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                    f"Cannot find field.")
        if key == "type" and not isinstance(value, str):
            return f"{where}.type: Proto field is not repeating, cannot start list."
        if key == "properties":
            for name, sub in value.items():
                problem = _schema_problem(sub, f"{where}.properties[{name}].value")
                if problem:
                    return problem
        if key == "items":
            problem = _schema_problem(value, f"{where}.items")
            if problem:
                return problem
        if key == "anyOf":
            for k, sub in enumerate(value):
                problem = _schema_problem(sub, f"{where}.any_of[{k}]")
                if problem:
                    return problem
        if key == "enum" and not all(isinstance(v, str) for v in value):
            return f"{where}.enum: Invalid value (only strings)"
    return None
