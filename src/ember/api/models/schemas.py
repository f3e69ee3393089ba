"""Response schemas of the model system."""

from __future__ import annotations

from ember.models.schemas import (
    ChatResponse,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    UsageStats,
    UsageSummary,
)

__all__ = ["ChatResponse", "StreamChunk", "ToolCall", "ToolCallDelta", "UsageStats", "UsageSummary"]
