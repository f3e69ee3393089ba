"""The one encoder of OpenAI ``chat.completion.chunk`` SSE frames.

Used by :class:`ember.sse.TokenStreamResponse` and the OpenAI gateway, so both send
byte-identical frames: ``data: {"id", "object", "created", "model",
"system_fingerprint", "choices": [...]}`` then, when asked, a usage chunk with
``"choices": []`` and ``data: [DONE]``.

PERF: the constant head of every frame is serialised once per stream; the bytes are
the same as ``orjson.dumps`` of the whole object (a test compares them).
"""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


class ChunkEncoder:
    """Frames of one streamed completion (one ``id``/``created``/``model``)."""

    __slots__ = ("_head", "completion_id", "created", "model")

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        head = orjson.dumps({"id": completion_id, "object": "chat.completion.chunk",
                             "created": created, "model": model,
                             "system_fingerprint": None})
        self._head = b"data: " + head[:-1] + b',"choices":['

    def choice(self, index: int, delta: dict[str, Any], finish: str | None = None,
               logprobs: Any = None) -> bytes:
        """A frame with one choice's ``delta`` (and ``finish_reason``)."""
        return self._head + orjson.dumps({"index": index, "delta": delta, "logprobs": logprobs,
                                          "finish_reason": finish}) + b"]}\n\n"

    def usage(self, usage: dict[str, Any]) -> bytes:
        """The trailing usage frame (``choices: []``)."""
        return self._head + b'],"usage":' + orjson.dumps(usage) + b"}\n\n"
