"""AI primitives: conversation context, prompt templates, tools, model routing, caching.

Imports are lazy so that ``from ember import PromptTemplate`` pulls nothing heavy.
"""

from __future__ import annotations

from ember._lazy import lazy_exports

_EXPORTS = {
    "ConversationContext": "ember.ai.context",
    "ConversationStore": "ember.ai.context",
    "MemoryConversationStore": "ember.ai.context",
    "RedisConversationStore": "ember.ai.context",
    "MessageContentError": "ember.ai.context",
    "PromptTemplate": "ember.ai.templates",
    "PromptTemplateError": "ember.ai.templates",
    "ToolRegistry": "ember.ai.tools",
    "ToolError": "ember.ai.tools",
    "ToolExecutionError": "ember.ai.tools",
    "ModelRouter": "ember.ai.router",
    "SemanticCache": "ember.ai.semantic_cache",
    "MiniLMEmbedder": "ember.ai.embeddings",
    "SentenceTransformerEmbedder": "ember.ai.embeddings",
    "RedisVectorBackend": "ember.ai.semantic_cache",
    "hashed_trigram_embedder": "ember.ai.semantic_cache",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("ember.ai", _EXPORTS, globals())
