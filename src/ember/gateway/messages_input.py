"""Anthropic Messages requests -> the gateway's internal chat request (OpenAI's vocabulary).

Blocks without a faithful translation raise :class:`~ember.gateway._endpoint.EndpointError`
naming them (a 400 in Anthropic's shape).  Used by :mod:`ember.gateway.messages`.
"""

from __future__ import annotations

from typing import Any

import orjson

from ember.gateway._endpoint import EndpointError


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(
            block.get("text"), str):
        raise EndpointError(f"{where}: expected a text block", where)
    return block["text"]



def system_text(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    return "\n\n".join(_text(b, f"system[{i}]") for i, b in enumerate(system)) or None



def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise EndpointError(f"{where}.source: expected an object", f"{where}.source")
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(
            source.get("media_type"), str):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise EndpointError(f"{where}.source: only base64 and url images can be translated",
                            f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}



def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(block.get("tool_use_id"), str):
        raise EndpointError(f"{where}.tool_use_id: expected a string", f"{where}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "image":
                raise EndpointError(f"{where}.content[{j}]: images in tool results have no "
                                    "equivalent in OpenAI tool messages", f"{where}.content")
            texts.append(_text(part, f"{where}.content[{j}]"))
        content = "".join(texts)
    elif not isinstance(content, str):
        raise EndpointError(f"{where}.content: expected a string or text blocks",
                            f"{where}.content")
    if block.get("is_error"):
        # NOTE: OpenAI tool messages have no error flag: it becomes part of the text
        content = f"[tool error] {content}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}



def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise EndpointError(f"{where}.role: expected 'user' or 'assistant'", f"{where}.role")
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise EndpointError(f"{where}.content: expected a string or a list of blocks",
                                f"{where}.content")
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": _text(block, at)})
            elif kind == "image" and role == "user":
                parts.append(_image(block, at))
            elif kind == "tool_result" and role == "user":
                out.append(_tool_result(block, at))
            elif kind == "tool_use" and role == "assistant":
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise EndpointError(f"{at}: tool_use needs an id and a name", at)
                calls.append({"id": block["id"], "type": "function", "function": {
                    "name": block["name"],
                    "arguments": orjson.dumps(block.get("input") or {}).decode()}})
            elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                continue  # NOTE: the model's own earlier reasoning: nothing to send elsewhere
            else:
                raise EndpointError(f"{at}: a {kind!r} block in a {role} message cannot be "
                                    "translated by this gateway", at)
        if role == "assistant":
            text = "".join(p["text"] for p in parts)
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            if text or calls:
                out.append(message)
        elif parts:
            out.append({"role": "user", "content": parts})
    return out



def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise EndpointError(f"tools[{i}]: the server tool {kind!r} cannot be translated; "
                                "only custom (function) tools can", f"tools[{i}].type")
        if not isinstance(tool.get("name"), str):
            raise EndpointError(f"tools[{i}].name: expected a string", f"tools[{i}].name")
        fn: dict[str, Any] = {"name": tool["name"],
                              "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out



def tool_choice(choice: dict[str, Any], params: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str):
        params["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "any", "none"):
        params["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise EndpointError("tool_choice.type: expected auto, any, tool (with a name) or none",
                            "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        params["parallel_tool_calls"] = False



def output_config(config: dict[str, Any], params: dict[str, Any]) -> None:
    """``output_config``: ``format`` (a JSON schema) and ``effort``."""
    for name in config:
        if name not in ("format", "effort"):
            raise EndpointError(f"output_config.{name} cannot be translated",
                                f"output_config.{name}")
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(
                fmt.get("schema"), dict):
            raise EndpointError("output_config.format: expected {\"type\": \"json_schema\", "
                                "\"schema\": {...}}", "output_config.format")
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": fmt["schema"], "strict": True}}
    effort = config.get("effort")
    if effort is not None:
        if effort not in ("low", "medium", "high", "xhigh"):
            raise EndpointError(f"output_config.effort {effort!r} has no equivalent elsewhere "
                                "(low, medium, high, xhigh do)", "output_config.effort")
        params["reasoning_effort"] = effort

