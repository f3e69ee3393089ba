"""``tools/list`` and ``tools/call`` of the MCP server, and ``notifications/cancelled``.

Each ``tools/call`` of a session runs as its own task, registered under
``(session id, request id)`` so that the session's ``notifications/cancelled`` can
stop it (answered ``-32800``); results and errors are shaped by
:mod:`ember.mcp.results` (structured content, output schemas, redacted errors).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from ember.mcp.protocol import INVALID_PARAMS, REQUEST_CANCELLED, MCPError, version_at_least
from ember.mcp.results import error_result, output_schema, safe_error_text, tool_result

logger = logging.getLogger("ember.mcp")

#: (session id, JSON-RPC id) of the request being answered (for notifications/cancelled)
_request_key: contextvars.ContextVar[tuple[str, Any] | None] = contextvars.ContextVar(
    "ember_mcp_request", default=None)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


class ToolCalls:
    """The tools half of :class:`~ember.mcp.server.MCPServer`."""

    tools: Any
    _running: dict[tuple[str, Any], asyncio.Future[Any]]
    _schemas: dict[str, dict[str, Any] | None]

    def _output_schema(self, name: str) -> dict[str, Any] | None:
        if name not in self._schemas:
            tool = self.tools.get(name) if self.tools is not None else None
            self._schemas[name] = output_schema(tool.fn) if tool is not None else None
        return self._schemas[name]

    async def _tools_list(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        tools = list(self.tools.to_mcp()) if self.tools is not None else []
        if version_at_least(version, "2025-06-18"):
            for tool in tools:
                schema = self._output_schema(tool["name"])
                if schema is not None:
                    tool["outputSchema"] = schema
        return {"tools": tools}

    async def _tools_call(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise MCPError(INVALID_PARAMS, 'tools/call needs a string "name"')
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise MCPError(INVALID_PARAMS, '"arguments" must be an object')
        if self.tools is None or name not in self.tools:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {name}")
        key = _request_key.get()
        work = asyncio.ensure_future(self.tools.call(name, arguments))
        if key is not None:
            self._running[key] = work
        try:
            value = await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.cancelled() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                work.cancel()
                raise  # NOTE: this request itself is being cancelled (client gone)
            logger.info("MCP tool %r cancelled by the client", name)
            raise MCPError(REQUEST_CANCELLED, "Request cancelled") from None
        except Exception as exc:
            logger.info("MCP tool %r failed: %s", name, safe_error_text(exc))
            return error_result(exc)
        finally:
            if key is not None and self._running.get(key) is work:
                del self._running[key]
        return tool_result(value, version, self._output_schema(name) is not None)

    def cancel(self, session_id: str, request_id: Any) -> bool:
        """Stop the running ``tools/call`` ``request_id`` of ``session_id`` (True if one was)."""
        work = self._running.get((session_id, request_id))
        if work is None or work.done():
            return False
        work.cancel()
        return True

    def _notified(self, session_id: str, msg: Any) -> None:
        if msg.method == "notifications/cancelled" and isinstance(msg.params, dict):
            request_id = msg.params.get("requestId")
            if _valid_id(request_id) and self.cancel(session_id, request_id):
                logger.info("MCP: request %r cancelled (%s)", request_id,
                            safe_error_text(Exception(msg.params.get("reason") or "no reason")))
