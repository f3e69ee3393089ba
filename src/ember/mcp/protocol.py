"""Model Context Protocol constants: versions, error codes, header and ``_meta`` names."""

from __future__ import annotations

from typing import Any

# -- protocol versions ---------------------------------------------------------------

#: Revisions negotiated with the ``initialize`` handshake (``Mcp-Session-Id`` sessions).
#: 2024-11-05 used the older HTTP+SSE transport, so it is not served here.
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2025-03-26", "2025-06-18", "2025-11-25")
#: Revisions using the per-request ``_meta`` envelope (``server/discover``, no sessions).
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
#: Every revision this server speaks, oldest first.
SUPPORTED_VERSIONS: tuple[str, ...] = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
#: Handshake-era revisions a client may name (any of them routes to the handshake path).
KNOWN_HANDSHAKE_VERSIONS: frozenset[str] = frozenset({"2024-11-05", *HANDSHAKE_VERSIONS})
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

# -- JSON-RPC / MCP error codes ------------------------------------------------------------

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: Resource not found before SEP-2164 (2026-07-28 uses INVALID_PARAMS instead).
RESOURCE_NOT_FOUND_LEGACY = -32002
#: a request stopped by notifications/cancelled (the code the official SDK answers with)
REQUEST_CANCELLED = -32800
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

#: HTTP status for a JSON-RPC error on the 2026-07-28 wire (anything else is 200).
MODERN_ERROR_STATUS: dict[int, int] = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}

# -- HTTP headers (lowercase) -------------------------------------------------------------

SESSION_HEADER = "mcp-session-id"
PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
#: Methods whose target is mirrored in the ``Mcp-Name`` header (2026-07-28), by params key.
NAME_BEARING_METHODS: dict[str, str] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}

# -- reserved ``_meta`` keys (2026-07-28) ---------------------------------------------------

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"

#: 2026-07-28 methods whose results carry the ``ttlMs``/``cacheScope`` caching hints.
CACHEABLE_METHODS: frozenset[str] = frozenset({
    "server/discover", "tools/list", "prompts/list", "resources/list",
    "resources/templates/list", "resources/read",
})


class MCPError(Exception):
    """A JSON-RPC error to send back: ``code``, ``message`` and optional ``data``.

    Raise it from a resource or prompt function to answer with a specific error
    (for example ``MCPError(INVALID_PARAMS, "no such user")``).
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def version_at_least(version: str, minimum: str) -> bool:
    """Whether the known revision ``version`` is ``minimum`` or newer (unknown → False)."""
    order = ("2024-11-05", *SUPPORTED_VERSIONS)
    if version not in order:
        return False
    return order.index(version) >= order.index(minimum)
