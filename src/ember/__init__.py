"""Ember: an AI-API-first async HTTP framework with compiled hot paths.

Everything is exported lazily (PEP 562): ``import ember`` loads nothing heavy,
and ``from ember import RedisCache`` imports the cache module (not redis
itself, which loads on first use).
"""

from __future__ import annotations

import importlib

# NOTE: not typing.TYPE_CHECKING: importing typing (and with it re, enum...) costs ~8 ms
# in a clean interpreter, and `import ember` loads nothing it does not need.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    # application layer
    "Ember": "ember.app",
    "Blueprint": "ember.blueprints",
    "Request": "ember.requests",
    "Route": "ember.routes",
    "HTTPException": "ember.exceptions",
    "RequestValidationError": "ember.exceptions",
    "ClientDisconnect": "ember.exceptions",
    "ConfigError": "ember.exceptions",
    "State": "ember.datastructures",
    "Headers": "ember.datastructures",
    "QueryParams": "ember.datastructures",
    # responses and streaming
    "Response": "ember.responses",
    "JSONResponse": "ember.responses",
    "PlainTextResponse": "ember.responses",
    "HTMLResponse": "ember.responses",
    "RedirectResponse": "ember.responses",
    "StreamingResponse": "ember.responses",
    "FileResponse": "ember.files",
    "Depends": "ember.params",
    "Query": "ember.params",
    "Path": "ember.params",
    "Header": "ember.params",
    "Cookie": "ember.params",
    "Body": "ember.params",
    "Form": "ember.params",
    "File": "ember.params",
    "FormData": "ember.forms",
    "UploadFile": "ember.forms",
    "SSEResponse": "ember.sse",
    "ServerSentEvent": "ember.sse",
    "sse_stream": "ember.sse",
    "TokenStreamResponse": "ember.sse",
    # limits
    "ServerLimits": "ember.limits",
    "RouteLimits": "ember.limits",
    "TokenLimits": "ember.limits",
    # caches
    "StaticCache": "ember.cache",
    "RedisCache": "ember.cache",
    "MemcachedCache": "ember.cache",
    # middleware and rate limiting
    "CORSMiddleware": "ember.middleware",
    "BearerAuthMiddleware": "ember.middleware",
    "APIKeyMiddleware": "ember.middleware",
    "RateLimitMiddleware": "ember.middleware",
    "TokenBucket": "ember.middleware",
    "GlobalTokenBucket": "ember.middleware",
    # AI primitives
    "ConversationContext": "ember.ai",
    "PromptTemplate": "ember.ai",
    "ToolRegistry": "ember.ai",
    "ModelRouter": "ember.ai",
    "SemanticCache": "ember.ai",
    # sessions
    "SessionMiddleware": "ember.sessions",
    "MemorySessionStore": "ember.sessions",
    "RedisSessionStore": "ember.sessions",
    # observability
    "RequestIDMiddleware": "ember.observability",
    "Metrics": "ember.observability",
    # WebSocket
    "WebSocket": "ember.websockets",
    "WebSocketDisconnect": "ember.websockets",
    # testing
    "TestClient": "ember.testing",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # PERF: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ember.ai import (
        ConversationContext,
        ModelRouter,
        PromptTemplate,
        SemanticCache,
        ToolRegistry,
    )
    from ember.app import Ember
    from ember.blueprints import Blueprint
    from ember.cache import MemcachedCache, RedisCache, StaticCache
    from ember.datastructures import Headers, QueryParams, State
    from ember.exceptions import (
        ClientDisconnect,
        ConfigError,
        HTTPException,
        RequestValidationError,
    )
    from ember.files import FileResponse
    from ember.forms import FormData, UploadFile
    from ember.limits import RouteLimits, ServerLimits, TokenLimits
    from ember.middleware import (
        APIKeyMiddleware,
        BearerAuthMiddleware,
        CORSMiddleware,
        GlobalTokenBucket,
        RateLimitMiddleware,
        TokenBucket,
    )
    from ember.observability import Metrics, RequestIDMiddleware
    from ember.params import Body, Cookie, Depends, File, Form, Header, Path, Query
    from ember.requests import Request
    from ember.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
        StreamingResponse,
    )
    from ember.routes import Route
    from ember.sessions import MemorySessionStore, RedisSessionStore, SessionMiddleware
    from ember.sse import ServerSentEvent, SSEResponse, TokenStreamResponse, sse_stream
    from ember.testing import TestClient
    from ember.websockets import WebSocket, WebSocketDisconnect
