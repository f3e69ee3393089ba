"""AI primitives: conversation context, prompt templates, tools, model routing, caching.

Imports are lazy so that ``from ember import PromptTemplate`` pulls nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversationContext": "ember.ai.context",
    "MemoryConversationStore": "ember.ai.context",
    "RedisConversationStore": "ember.ai.context",
    "PromptTemplate": "ember.ai.templates",
    "ToolRegistry": "ember.ai.tools",
    "ToolError": "ember.ai.tools",
    "ModelRouter": "ember.ai.router",
    "SemanticCache": "ember.ai.semantic_cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.ai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
