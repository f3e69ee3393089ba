"""Responses API input -> the gateway's internal chat request (OpenAI's vocabulary).

Input items (messages, ``function_call``, ``function_call_output``), function tools,
``tool_choice`` and ``text.format``; what has no faithful translation raises
:class:`~ember.gateway._endpoint.EndpointError` naming it.  Used by
:mod:`ember.gateway.responses`.
"""

from __future__ import annotations

from typing import Any

from ember.gateway._endpoint import EndpointError


def _where(i: int, j: int | None = None) -> str:
    return f"input[{i}]" + (f".content[{j}]" if j is not None else "")



def _content(content: Any, role: str, i: int) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise EndpointError(f"{_where(i)}.content: expected a string or a list of parts",
                            f"{_where(i)}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and role == "assistant" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and role == "user" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise EndpointError(f"{_where(i, j)}: a {kind!r} part cannot be translated by this "
                                "gateway (file ids and files are not available)", _where(i, j))
    if role != "user":
        return "".join(p["text"] for p in parts)
    return parts



def input_messages(items: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Responses input -> OpenAI chat messages (``function_call`` items grouped into one
    assistant message, ``function_call_output`` -> ``tool`` messages)."""
    if items is None:
        return []
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EndpointError(f"{_where(i)}: expected an object", _where(i))
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise EndpointError(f"{_where(i)}.role: expected user, assistant, system or "
                                    "developer", f"{_where(i)}.role")
            out.append({"role": role, "content": _content(item.get("content"), role, i)})
        elif kind == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                raise EndpointError(f"{_where(i)}: a function_call needs call_id, name and "
                                    "arguments strings", _where(i))
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = out[-1] if out else None
            if last and last["role"] == "assistant":
                # NOTE: text then calls of one turn are one assistant message in chat
                last.setdefault("tool_calls", []).append(call)
                if last["content"] == "":
                    last["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = _content(output, "tool", i)
            if not isinstance(item.get("call_id"), str) or not isinstance(output, str):
                raise EndpointError(f"{_where(i)}: a function_call_output needs a call_id and "
                                    "a text output", _where(i))
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "reasoning":
            continue  # NOTE: the model's own earlier reasoning: nothing to send elsewhere
        else:
            raise EndpointError(f"{_where(i)}.type: {kind!r} items cannot be translated by "
                                "this gateway", f"{_where(i)}.type")
    return out



def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise EndpointError(f"tools[{i}]: the built-in tool {kind!r} is not available "
                                "through this gateway; only function tools are",
                                f"tools[{i}].type")
        if not isinstance(tool.get("name"), str):
            raise EndpointError(f"tools[{i}].name: expected a string", f"tools[{i}].name")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict")
              if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out



def tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(
            choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise EndpointError("tool_choice: expected none, auto, required or a function",
                        "tool_choice")



def text_format(text: dict[str, Any], params: dict[str, Any],
                 extras: dict[str, Any]) -> None:
    fmt = text.get("format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_schema":
            if not isinstance(fmt.get("schema"), dict) or not isinstance(fmt.get("name"), str):
                raise EndpointError("text.format: json_schema needs a name and a schema",
                                    "text.format")
            spec = {k: fmt[k] for k in ("name", "schema", "strict", "description")
                    if fmt.get(k) is not None}
            params["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif kind in ("json_object", "text"):
            params["response_format"] = {"type": kind}
        else:
            raise EndpointError(f"text.format.type {kind!r} is not known", "text.format.type")
    if text.get("verbosity") is not None:
        extras["verbosity"] = text["verbosity"]



def output_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's output items as chat messages (the next turn's history)."""
    return input_messages([
        {"type": "message", "role": "assistant", "content": item["content"]}
        if item["type"] == "message" else
        {"type": "function_call", "call_id": item["call_id"], "name": item["name"],
         "arguments": item["arguments"]} for item in output])

