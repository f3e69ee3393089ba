"""Payloads shaped exactly like the providers' documented responses."""

from __future__ import annotations

import re
from typing import Any

import orjson


def echo_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return f"Echo: {c}"
    return "Echo:"


def split_words(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text) or [text]


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else orjson.dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# -- OpenAI ---------------------------------------------------------------------------------
def openai_completion(text: str | None, model: str | None = "gpt-4", prompt_tokens: int = 12,
                      completion_tokens: int = 47, tool_calls: list[Any] | None = None,
                      finish: str = "stop") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None,
                               "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model or "gpt-4",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def openai_chunk(delta: dict[str, Any] | None, finish: str | None = None,
                 usage: Any = None, choices: bool = True) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None,
                     "finish_reason": finish}] if choices else [],
        "usage": usage,
    }


def openai_sse(pieces: list[str], usage: tuple[int, int] | None = (9, 7),
               done: bool = True) -> list[bytes | float]:
    frames: list[bytes | float] = [sse(openai_chunk({"role": "assistant", "content": ""}))]
    frames += [sse(openai_chunk({"content": p})) for p in pieces]
    frames.append(sse(openai_chunk({}, finish="stop")))
    if usage is not None:
        p, c = usage
        frames.append(sse(openai_chunk(None, usage={"prompt_tokens": p, "completion_tokens": c,
                                                    "total_tokens": p + c}, choices=False)))
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames


# -- Anthropic -------------------------------------------------------------------------------
def anthropic_message(text: str, model: str | None = "claude-3-opus", input_tokens: int = 10,
                      output_tokens: int = 25, tool_use: dict[str, Any] | None = None,
                      stop_reason: str = "end_turn") -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if tool_use:
        content.append({"type": "tool_use", **tool_use})
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": model or "claude-3-opus", "content": content, "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def anthropic_sse(pieces: list[str], model: str | None = "claude-3-opus", input_tokens: int = 25,
                  output_tokens: int = 15, stop: bool = True) -> list[bytes | float]:
    frames: list[bytes | float] = [
        sse({"type": "message_start", "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message",
            "role": "assistant", "content": [], "model": model or "claude-3-opus",
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}, "message_start"),
        sse({"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}}, "content_block_start"),
        sse({"type": "ping"}, "ping"),
    ]
    frames += [sse({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
               for p in pieces]
    frames.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    if stop:
        frames.append(sse({"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}, "message_delta"))
        frames.append(sse({"type": "message_stop"}, "message_stop"))
    return frames


# -- Gemini ----------------------------------------------------------------------------------
def gemini_response(text: str | None, finish: str | None = "STOP", prompt_tokens: int = 8,
                    output_tokens: int = 13, function_call: dict[str, Any] | None = None,
                    usage: bool = True) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text is not None else []
    if function_call:
        parts.append({"functionCall": function_call})
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.0-flash",
                           "responseId": "mAitaLmkKPPlz7IPvtfUqQ4"}
    if usage:
        out["usageMetadata"] = {"promptTokenCount": prompt_tokens,
                                "candidatesTokenCount": output_tokens,
                                "totalTokenCount": prompt_tokens + output_tokens,
                                "promptTokensDetails": [{"modality": "TEXT",
                                                         "tokenCount": prompt_tokens}]}
    return out


def gemini_sse(pieces: list[str], finish: str = "STOP", prompt_tokens: int = 8,
               ) -> list[bytes | float]:
    frames: list[bytes | float] = []
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        frames.append(b"data: " + orjson.dumps(gemini_response(
            p, finish if last else None, prompt_tokens, i + 1)) + b"\r\n\r\n")
    return frames
