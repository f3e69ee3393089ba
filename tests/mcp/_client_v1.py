"""Run by test_sdk_v1.py in a subprocess whose PYTHONPATH puts an mcp 1.x install first.

Usage: python _client_v1.py URL PROTOCOL_VERSION; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import mcp.types
from mcp.client.streamable_http import streamable_http_client

import mcp
from mcp import ClientSession


async def main(url: str, version: str) -> dict[str, Any]:
    mcp.types.LATEST_PROTOCOL_VERSION = version  # the version the client offers
    out: dict[str, Any] = {"sdk": getattr(mcp, "__version__", None)}
    async with streamable_http_client(url) as (read, write, get_session_id), \
            ClientSession(read, write) as session:
        init = await session.initialize()
        out["protocol_version"] = init.protocolVersion
        out["server_info"] = [init.serverInfo.name, init.serverInfo.version]
        out["instructions"] = init.instructions
        out["session_id"] = get_session_id()
        await session.send_ping()
        out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
        res = await session.call_tool("add", {"a": 1, "b": 2})
        out["add"] = [res.content[0].text, res.isError]
        res = await session.call_tool("weather", {"city": "Oslo"})
        out["weather"] = res.structuredContent
        res = await session.call_tool("fail", {"reason": "v1"})
        out["fail"] = [res.isError, res.content[0].text]
        try:
            await session.call_tool("nope", {})
        except Exception as exc:  # McpError
            out["unknown_tool"] = exc.error.code  # type: ignore[attr-defined]
        out["resources"] = sorted(str(r.uri) for r in (await session.list_resources()).resources)
        templates = await session.list_resource_templates()
        out["templates"] = [t.uriTemplate for t in templates.resourceTemplates]
        res = await session.read_resource("config://app")  # type: ignore[arg-type]
        out["config"] = res.contents[0].text  # type: ignore[union-attr]
        res = await session.read_resource("data://logo")  # type: ignore[arg-type]
        out["logo"] = base64.b64decode(res.contents[0].blob).hex()  # type: ignore[union-attr]
        res = await session.read_resource("users://9/profile")  # type: ignore[arg-type]
        out["profile"] = res.contents[0].text  # type: ignore[union-attr]
        out["prompts"] = sorted(p.name for p in (await session.list_prompts()).prompts)
        res = await session.get_prompt("review", {"code": "print()"})
        out["review"] = [res.messages[0].role, res.messages[0].content.text]  # type: ignore[union-attr]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
