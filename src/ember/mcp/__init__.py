"""Model Context Protocol server for Ember apps (streamable HTTP transport).

    from ember import Ember
    from ember.ai.tools import ToolRegistry

    tools = ToolRegistry()

    @tools.register
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    app = Ember()
    mcp = app.add_mcp("/mcp", tools=tools, name="calc", version="1.0.0")

    @app.mcp_resource("config://app", mime_type="application/json")
    def config() -> str:
        return '{"debug": false}'

    @app.mcp_prompt()
    def review(code: str) -> str:
        \"\"\"Review a piece of code.\"\"\"
        return f"Please review:\\n{code}"

Protocol revisions: 2025-03-26, 2025-06-18 and 2025-11-25 through ``initialize`` (with
``Mcp-Session-Id`` sessions) and 2026-07-28 through ``server/discover`` (per-request
``_meta`` envelope, no sessions). See docs/mcp.md.
"""

from ember.mcp.features import Prompt, Resource
from ember.mcp.protocol import (
    HANDSHAKE_VERSIONS,
    MODERN_VERSIONS,
    SUPPORTED_VERSIONS,
    MCPError,
)
from ember.mcp.server import MCPServer, add_mcp

__all__ = [
    "HANDSHAKE_VERSIONS",
    "MODERN_VERSIONS",
    "SUPPORTED_VERSIONS",
    "MCPError",
    "MCPServer",
    "Prompt",
    "Resource",
    "add_mcp",
]
