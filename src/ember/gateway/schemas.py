"""Request schemas of the OpenAI-compatible routes, as msgspec Structs.

The fields follow OpenAI's published API reference (openai-openapi,
``CreateChatCompletionRequest`` and ``CreateEmbeddingRequest``) for what the gateway
accepts; a request that does not fit is a 400 in OpenAI's error shape whose ``param``
names the field (``max_tokens``, ``messages[0].content``).  Unknown top-level fields
are not refused here: they pass unchanged to OpenAI-family upstreams and are translated
or refused (400 naming them) for the others, see :func:`ember.models.params.for_provider`.  :data:`CHAT_COMPLETIONS_OPENAPI` / :data:`EMBEDDINGS_OPENAPI` describe the
routes (request body and error responses) for the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# NOTE: integers are bounded to int64 as OpenAI publishes for ``seed``: the JSON object
# forwarded upstream is parsed by orjson, which reads larger integers as floats.
INT64_MAX = 2**63 - 1
NonNegInt = Annotated[int, Meta(ge=0, le=INT64_MAX)]
PosInt = Annotated[int, Meta(ge=1, le=INT64_MAX)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=INT64_MAX)]
Name = Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]


class _Base(Struct, omit_defaults=True, forbid_unknown_fields=False):
    pass


# -- message content parts --------------------------------------------------------------------
class TextPart(_Base, tag_field="type", tag="text"):
    text: str


class ImageURL(_Base):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Base, tag_field="type", tag="image_url"):
    image_url: ImageURL


class InputAudio(_Base):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(_Base, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FilePart(_Base, tag_field="type", tag="file"):
    file: dict[str, Any]


class RefusalPart(_Base, tag_field="type", tag="refusal"):
    refusal: str


UserContent = str | list[TextPart | ImagePart | AudioPart | FilePart]
AssistantContent = str | list[TextPart | RefusalPart] | None


class FunctionCall(_Base):
    name: str
    arguments: str


class ToolCall(_Base):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


# -- messages (tagged by role) ----------------------------------------------------------------
class SystemMessage(_Base, tag_field="role", tag="system"):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Base, tag_field="role", tag="developer"):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Base, tag_field="role", tag="user"):
    content: UserContent
    name: str | None = None


class AssistantMessage(_Base, tag_field="role", tag="assistant"):
    content: AssistantContent = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ToolMessage(_Base, tag_field="role", tag="tool"):
    content: str | list[TextPart]
    tool_call_id: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


# -- tools, formats -----------------------------------------------------------------------------
class FunctionDef(_Base):
    name: Name
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Base, tag_field="type", tag="function"):
    function: FunctionDef


class NamedFunction(_Base):
    name: str


class NamedToolChoice(_Base, tag_field="type", tag="function"):
    function: NamedFunction


class TextFormat(_Base, tag_field="type", tag="text"):
    pass


class JSONObjectFormat(_Base, tag_field="type", tag="json_object"):
    pass


class JSONSchemaSpec(_Base):
    name: Name
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JSONSchemaFormat(_Base, tag_field="type", tag="json_schema"):
    json_schema: JSONSchemaSpec


class StreamOptions(_Base):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ChatCompletionRequest(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """``POST /v1/chat/completions`` (the fields the gateway checks).

    NOTE: other top-level fields are not refused here: they pass unchanged to
    OpenAI-family upstreams (forward compatibility) and are translated or refused per
    provider (``ember.models.params.for_provider``).
    """

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PosInt | None = None
    max_completion_tokens: PosInt | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[int, Meta(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    seed: Int64 | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: TextFormat | JSONObjectFormat | JSONSchemaFormat | None = None
    reasoning_effort: Effort | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None


class EmbeddingRequest(Struct, omit_defaults=True, forbid_unknown_fields=True):
    """``POST /v1/embeddings`` (text inputs; token-id inputs are refused)."""

    model: Annotated[str, Meta(min_length=1)]
    input: Annotated[str, Meta(min_length=1)] | Annotated[
        list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PosInt | None = None
    user: str | None = None


_PATH = re.compile(r" - at `\$(.*)`$")
_UNKNOWN = re.compile(r"Object (?:contains unknown|missing required) field `([^`]*)`")


def error_param(message: str) -> str | None:
    """``max_tokens`` / ``messages[0].content`` from a msgspec validation message."""
    path = None
    m = _PATH.search(message)
    if m:
        path = m.group(1).replace("[...]", "").lstrip(".") or None
    unknown = _UNKNOWN.search(message)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
    return path


def decode(raw: bytes, type_: Any) -> Any:
    """Decode and validate; raises ``msgspec.ValidationError`` / ``DecodeError``."""
    return msgspec.json.decode(raw, type=type_)


# -- OpenAPI ----------------------------------------------------------------------------------
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]},
                       "code": {"type": ["string", "null"]}}}},
}


def request_schema(type_: Any) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) for one request Struct.

    NOTE: msgspec points at ``#/$defs/...`` of the schema's own root; inside an OpenAPI
    operation that root is the whole document, so the references are inlined here (and
    discriminators, whose mappings name ``$defs`` too, dropped: ``anyOf`` still decides).
    """
    schema = msgspec.json.schema(type_)
    defs = schema.pop("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref[len("#/$defs/"):]
                if name in seen:  # a recursive type: left open rather than unrolled
                    return {}
                return inline(defs[name], (*seen, name))
            # a discriminator's mapping names $defs too; anyOf alone validates the same
            return {k: inline(v, seen) for k, v in node.items() if k != "discriminator"}
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        return node

    return inline(schema, ())


_ERRORS = {
    400: "Invalid request (error.param names the field)",
    401: "Missing or wrong API key",
    404: "Unknown model (or stored response)",
    429: "Rate limited upstream or budget exhausted (Retry-After)",
    500: "Model configuration incomplete",
    502: "Upstream failure",
    503: "Gateway at capacity, upstream overloaded or store down (Retry-After)",
    504: "Upstream timeout",
}


#: Anthropic's error shape (``{prefix}/messages``).
ANTHROPIC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["type", "error"],
    "properties": {"type": {"const": "error"}, "error": {
        "type": "object", "required": ["type", "message"],
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}},
}


def _errors(*codes: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": schema or ERROR_SCHEMA}}}
    return {str(code): {"description": _ERRORS[code], **error} for code in codes}


def _openapi(type_: Any, ok: str, error_schema: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    return {
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": request_schema(type_)}}},
        "responses": {"200": {"description": ok}, **_errors(*_ERRORS, schema=error_schema)},
    }


def openapi_for(type_: Any, ok: str, error_schema: dict[str, Any] | None = None,
                properties: dict[str, Any] | None = None, required: tuple[str, ...] = ()
                ) -> dict[str, Any]:
    """``openapi_extra`` for a gateway route whose body is ``type_`` (a msgspec Struct);
    errors in OpenAI's shape unless ``error_schema`` says otherwise.

    ``properties`` / ``required`` publish what the endpoint's translator checks beyond the
    Struct (content blocks, values it refuses), so that the published schema never admits
    a request the endpoint rejects."""
    extra = _openapi(type_, ok, error_schema)
    if properties or required:
        schema = extra["requestBody"]["content"]["application/json"]["schema"]
        target = _resolve(extra, schema)
        target.setdefault("properties", {}).update(properties or {})
        if required:
            target["required"] = sorted(set(target.get("required", ())) | set(required))
    return extra


def _resolve(extra: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind ``schema`` (following one local ``$ref``)."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    name = ref.rsplit("/", 1)[-1]
    for defs in (schema.get("$defs"), extra.get("$defs"), schema.get("components")):
        if isinstance(defs, dict) and name in defs:
            return defs[name]
    return schema


#: ``openapi_extra`` for ``GET``/``DELETE {prefix}/responses/{id}``.
STORED_RESPONSE_OPENAPI = {"responses": _errors(401, 404, 503)}


#: ``openapi_extra`` for ``POST {prefix}/chat/completions`` (request body + error responses).
CHAT_COMPLETIONS_OPENAPI = _openapi(
    ChatCompletionRequest, "A chat.completion object, or with stream=true an SSE stream of "
    "chat.completion.chunk objects ending with data: [DONE]")
#: ``openapi_extra`` for ``POST {prefix}/embeddings``.
EMBEDDINGS_OPENAPI = _openapi(EmbeddingRequest, "A list of embedding objects")
#: ``openapi_extra`` for ``GET {prefix}/models``.
MODELS_OPENAPI = {"responses": _errors(401)}
#: ``openapi_extra`` for ``GET {prefix}/models/{model_id}``.
MODEL_OPENAPI = {"responses": _errors(401, 404)}
