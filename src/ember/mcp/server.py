"""An MCP server on the streamable HTTP transport, mounted on an Ember app.

One endpoint (``POST``/``DELETE``, ``GET`` answers 405) speaks two eras of the protocol:

* the handshake era (2025-03-26, 2025-06-18, 2025-11-25): ``initialize`` issues an
  ``Mcp-Session-Id`` that every later request must carry, plus ``MCP-Protocol-Version``;
* the per-request era (2026-07-28): no sessions; every request carries its protocol
  version, client info and capabilities in ``params._meta`` and mirrors the version,
  method and target name in headers; ``server/discover`` replaces ``initialize``.

A POST whose ``MCP-Protocol-Version`` header names a 2026 revision takes the second path;
anything else takes the first. Every answer is a single ``application/json`` body (the
transport allows it in place of an SSE stream); notifications get ``202 Accepted``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ember.mcp.features import Prompt, Resource
from ember.mcp.protocol import (
    CACHEABLE_METHODS,
    CLIENT_CAPABILITIES_META_KEY,
    HANDSHAKE_VERSIONS,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    KNOWN_HANDSHAKE_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    METHOD_HEADER,
    METHOD_NOT_FOUND,
    MODERN_ERROR_STATUS,
    MODERN_VERSIONS,
    NAME_BEARING_METHODS,
    NAME_HEADER,
    PARSE_ERROR,
    PROTOCOL_VERSION_HEADER,
    PROTOCOL_VERSION_META_KEY,
    RESOURCE_NOT_FOUND_LEGACY,
    SERVER_INFO_META_KEY,
    SESSION_HEADER,
    UNSUPPORTED_PROTOCOL_VERSION,
    MCPError,
    version_at_least,
)
from ember.mcp.results import tool_result
from ember.mcp.security import HostOriginGuard, local_ip
from ember.mcp.sessions import Sessions as _Sessions
from ember.mcp.tool_calls import ToolCalls, _request_key
from ember.requests import Request
from ember.responses import Response

logger = logging.getLogger("ember.mcp")

_Handler = Callable[..., Any]
_NO_ID = object()


class _InvalidMessage(Exception):
    """A body that is JSON but not a JSON-RPC message we accept."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class _Message:
    """One decoded JSON-RPC message: a request, a notification or a (client) response."""

    __slots__ = ("id", "kind", "method", "params")

    def __init__(self, kind: str, id: Any = None, method: str = "",
                 params: Any = None) -> None:
        self.kind = kind
        self.id = id
        self.method = method
        self.params = params


def _valid_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _parse_message(obj: Any) -> _Message:
    """Classify one JSON value as a JSON-RPC 2.0 message (MCP rules: ids are str or int)."""
    if not isinstance(obj, dict):
        raise _InvalidMessage("a JSON-RPC message must be an object")
    raw_id = obj.get("id", _NO_ID)
    safe_id = raw_id if _valid_id(raw_id) else None
    if obj.get("jsonrpc") != "2.0":
        raise _InvalidMessage('"jsonrpc" must be "2.0"', safe_id)
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str) or not method:
            raise _InvalidMessage('"method" must be a non-empty string', safe_id)
        params = obj.get("params")
        if raw_id is _NO_ID:
            return _Message("notification", method=method, params=params)
        if not _valid_id(raw_id):
            raise _InvalidMessage('"id" must be a string or an integer')
        return _Message("request", raw_id, method, params)
    if raw_id is not _NO_ID and ("result" in obj) != ("error" in obj):
        return _Message("response", safe_id)
    raise _InvalidMessage("not a JSON-RPC request, notification or response", safe_id)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(obj), status, headers=headers, media_type="application/json")


def _error_body(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _error(request_id: Any, code: int, message: str, status: int = 400, data: Any = None,
           headers: dict[str, str] | None = None) -> Response:
    return _json(_error_body(request_id, code, message, data), status, headers)


def _request_ids(batch: list[Any]) -> list[Any]:
    """The ids of the well-formed requests of ``batch`` (what an error must answer)."""
    ids = []
    for item in batch:
        try:
            msg = _parse_message(item)
        except _InvalidMessage:
            continue
        if msg.kind == "request":
            ids.append(msg.id)
    return ids


def _errors(request_ids: Any, code: int, message: str, status: int = 400) -> Response:
    """The same error for one request id, or one per id of a batch (a list); ``id`` null
    when there is none (a notification, or a batch of notifications only)."""
    if isinstance(request_ids, list):
        if request_ids:
            return _json([_error_body(i, code, message) for i in request_ids], status)
        request_ids = None
    return _error(request_ids, code, message, status)


class MCPServer(ToolCalls):
    """Tools (a :class:`~ember.ai.tools.ToolRegistry`), resources and prompts over MCP.

    Usually made by :func:`add_mcp` / ``app.add_mcp(...)``; register resources and prompts
    with the :meth:`resource` and :meth:`prompt` decorators.
    """

    def __init__(self, tools: Any = None, name: str | None = None, version: str | None = None,
                 instructions: str | None = None, path: str = "/mcp", *,
                 allowed_hosts: list[str] | None = None,
                 allowed_origins: list[str] | None = None,
                 session_secret: bytes | None = None) -> None:
        self.tools = tools
        self.name = name or "ember-mcp"
        self.version = version or "0.1.0"
        self.instructions = instructions
        self.path = path
        #: ``Host`` names served besides loopback ones (421 for others; ``["*"]`` = any)
        self.allowed_hosts = allowed_hosts
        #: ``Origin`` values accepted from browsers (None = loopback origins; 403 for
        #: others; ``["*"]`` = any); a request without ``Origin`` passes. Never compared
        #: with ``Host`` (a DNS-rebinding page controls both). See ember.mcp.security.
        self.allowed_origins = allowed_origins
        self._guard = HostOriginGuard(allowed_hosts, allowed_origins)
        self.resources: dict[str, Resource] = {}
        self.templates: dict[str, Resource] = {}
        self.prompts: dict[str, Prompt] = {}
        self._sessions = _Sessions(session_secret)
        #: tools/call runs by (session, request id): what notifications/cancelled stops
        self._running: dict[tuple[str, Any], asyncio.Future[Any]] = {}
        self._schemas: dict[str, dict[str, Any] | None] = {}

    # -- registration --------------------------------------------------------------------

    def resource(self, uri: str, name: str | None = None, description: str | None = None,
                 mime_type: str | None = "text/plain") -> Callable[[_Handler], _Handler]:
        """``@server.resource("config://app")``: the function's str (text) or bytes (blob).

        A URI with ``{variables}`` makes a resource template; the function receives the
        variables as keyword arguments.
        """
        def decorator(fn: _Handler) -> _Handler:
            self.add_resource(Resource(uri, fn, name, description, mime_type))
            return fn
        return decorator

    def add_resource(self, resource: Resource) -> None:
        """Register a :class:`Resource` (or template)."""
        table = self.templates if resource.is_template else self.resources
        if resource.uri in table:
            raise ValueError(f"a resource with URI {resource.uri!r} is already registered")
        table[resource.uri] = resource

    def prompt(self, name: str | None = None,
               description: str | None = None) -> Callable[[_Handler], _Handler]:
        """``@server.prompt()``: typed string arguments in; a str or messages out."""
        if callable(name):  # bare @server.prompt
            fn, name = name, None
            self.add_prompt(Prompt(fn, None, description))
            return fn  # type: ignore[return-value]

        def decorator(fn: _Handler) -> _Handler:
            self.add_prompt(Prompt(fn, name, description))
            return fn
        return decorator

    def add_prompt(self, prompt: Prompt) -> None:
        """Register a :class:`Prompt`."""
        if prompt.name in self.prompts:
            raise ValueError(f"a prompt named {prompt.name!r} is already registered")
        self.prompts[prompt.name] = prompt

    # -- protocol ------------------------------------------------------------------------

    @property
    def server_info(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}

    def capabilities(self) -> dict[str, Any]:
        caps: dict[str, Any] = {}
        if self.tools is not None:
            caps["tools"] = {"listChanged": False}
        if self.resources or self.templates:
            caps["resources"] = {"subscribe": False, "listChanged": False}
        if self.prompts:
            caps["prompts"] = {"listChanged": False}
        return caps

    def initialize_result(self, requested: str) -> dict[str, Any]:
        version = requested if requested in HANDSHAKE_VERSIONS else LATEST_HANDSHAKE_VERSION
        result: dict[str, Any] = {"protocolVersion": version,
                                  "capabilities": self.capabilities(),
                                  "serverInfo": self.server_info}
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    async def dispatch(self, method: str, params: Any, version: str) -> dict[str, Any]:
        """Run one request at ``version``; raises :class:`MCPError` for JSON-RPC errors."""
        modern = version in MODERN_VERSIONS
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise MCPError(INVALID_PARAMS, '"params" must be an object')
        if method == "ping" and not modern:
            return {}
        if method == "server/discover" and modern:
            result: dict[str, Any] = {"supportedVersions": list(MODERN_VERSIONS),
                                      "capabilities": self.capabilities(),
                                      "_meta": {SERVER_INFO_META_KEY: self.server_info}}
            if self.instructions:
                result["instructions"] = self.instructions
            return result
        handler = _METHODS.get(method)
        if handler is None:
            raise MCPError(METHOD_NOT_FOUND, f"Method not found: {method}")
        if method.endswith("/list") and params.get("cursor") is not None:
            raise MCPError(INVALID_PARAMS, "Invalid cursor (this server does not paginate)")
        return await handler(self, params, version)

    async def _resources_list(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        return {"resources": [r.describe() for r in self.resources.values()]}

    async def _templates_list(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        return {"resourceTemplates": [t.describe() for t in self.templates.values()]}

    async def _resources_read(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise MCPError(INVALID_PARAMS, 'resources/read needs a string "uri"')
        resource = self.resources.get(uri)
        variables: dict[str, str] | None = {} if resource is not None else None
        if resource is None:
            for template in self.templates.values():
                variables = template.match(uri)
                if variables is not None:
                    resource = template
                    break
        if resource is None or variables is None:
            code = RESOURCE_NOT_FOUND_LEGACY if version in HANDSHAKE_VERSIONS else INVALID_PARAMS
            raise MCPError(code, f"Resource not found: {uri}", {"uri": uri})
        try:
            return {"contents": await resource.read(uri, variables)}
        except MCPError:
            raise
        except Exception:
            logger.exception("MCP resource %r failed", uri)
            raise MCPError(INTERNAL_ERROR, f"Error reading resource {uri}") from None

    async def _prompts_list(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        return {"prompts": [p.describe() for p in self.prompts.values()]}

    async def _prompts_get(self, params: dict[str, Any], version: str) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise MCPError(INVALID_PARAMS, 'prompts/get needs a string "name"')
        prompt = self.prompts.get(name)
        if prompt is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {name}")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise MCPError(INVALID_PARAMS, '"arguments" must be an object')
        try:
            return await prompt.render(arguments)
        except MCPError:
            raise
        except Exception:
            logger.exception("MCP prompt %r failed", name)
            raise MCPError(INTERNAL_ERROR, f"Error rendering prompt {name}") from None

    async def _answer(self, msg: _Message, version: str) -> dict[str, Any]:
        """The JSON-RPC response object for request ``msg``."""
        try:
            result = await self.dispatch(msg.method, msg.params, version)
        except MCPError as exc:
            return _error_body(msg.id, exc.code, exc.message, exc.data)
        except Exception:
            logger.exception("MCP %s failed", msg.method)
            return _error_body(msg.id, INTERNAL_ERROR, "Internal error")
        if version in MODERN_VERSIONS:
            result.setdefault("resultType", "complete")
            if msg.method in CACHEABLE_METHODS:
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
        return {"jsonrpc": "2.0", "id": msg.id, "result": result}

    # -- HTTP ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """The Ember endpoint for ``path`` (POST, GET, DELETE)."""
        refused = self._check_origin(request)
        if refused is not None:
            return refused
        if request.method == "POST":
            return await self._post(request)
        if request.method == "DELETE":
            return self._delete(request)
        return Response(b"", 405, headers={"Allow": "POST, DELETE"})

    def _check_origin(self, request: Request) -> Response | None:
        host = request.headers.get("host")
        if not self._guard.host_ok(host, local_ip(request)):
            logger.debug("MCP: refused Host %r (add it to allowed_hosts if it is this "
                           "server's public name)", host)
            return _error(None, INVALID_REQUEST, "Misdirected Request: invalid Host header "
                          "(not in allowed_hosts)", 421)
        origin = request.headers.get("origin")
        if not self._guard.origin_ok(origin):
            return _error(None, INVALID_REQUEST, "Forbidden: Origin not allowed "
                          "(not in allowed_origins)", 403)
        return None

    def _delete(self, request: Request) -> Response:
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return _error(None, INVALID_REQUEST, "Bad Request: missing Mcp-Session-Id header")
        if self._sessions.version(session_id) is None:
            return _error(None, INVALID_REQUEST, "Not Found: unknown or ended session", 404)
        self._sessions.end(session_id)
        return Response(b"", 200)

    async def _post(self, request: Request) -> Response:
        accept = (request.headers.get("accept") or "").lower()
        if accept and not any(t in accept for t in ("application/json", "*/*", "application/*")):
            return _error(None, INVALID_REQUEST,
                          "Not Acceptable: the client must accept application/json", 406)
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _error(None, INVALID_REQUEST,
                          "Unsupported Media Type: Content-Type must be application/json", 415)
        body = await request.body()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(None, PARSE_ERROR, f"Parse error: {exc}")
        version_header = request.headers.get(PROTOCOL_VERSION_HEADER)
        session_id = request.headers.get(SESSION_HEADER)
        if version_header is not None and version_header not in KNOWN_HANDSHAKE_VERSIONS and (
                version_header in MODERN_VERSIONS or not session_id):
            return await self._post_modern(request, payload, version_header)
        return await self._post_handshake(payload, version_header, session_id)

    # handshake era -----------------------------------------------------------------------

    def _session(self, session_id: str | None, version_header: str | None,
                 request_ids: Any = None) -> tuple[str | None, Response | None]:
        """The session's version, or the refusal: one error per request id (JSON-RPC 2.0:
        ``"id": null`` only when there is no id to answer); ``request_ids`` is the id of
        a single request or a list of a batch's request ids."""
        if not session_id:
            return None, _errors(request_ids, INVALID_REQUEST, "Bad Request: missing "
                                 "Mcp-Session-Id header (send initialize first)")
        version = self._sessions.version(session_id)
        if version is None:
            return None, _errors(request_ids, INVALID_REQUEST,
                                 "Not Found: unknown or ended session", 404)
        if version_header is not None and version_header != version:
            return None, _errors(request_ids, INVALID_REQUEST,
                                f"Bad Request: MCP-Protocol-Version {version_header!r} does not "
                                f"match the session's negotiated version {version!r}")
        return version, None

    async def _post_handshake(self, payload: Any, version_header: str | None,
                              session_id: str | None) -> Response:
        if isinstance(payload, list):
            return await self._batch(payload, version_header, session_id)
        try:
            msg = _parse_message(payload)
        except _InvalidMessage as exc:
            return _error(exc.request_id, INVALID_REQUEST, f"Invalid Request: {exc.message}")
        if msg.kind == "request" and msg.method == "initialize":
            return self._initialize(msg)
        version, refused = self._session(session_id, version_header,
                                         msg.id if msg.kind == "request" else None)
        if refused is not None:
            return refused
        assert version is not None and session_id is not None
        headers = {"Mcp-Session-Id": session_id}
        if msg.kind != "request":
            if msg.kind == "notification":
                self._notified(session_id, msg)
            return Response(b"", 202, headers=headers)
        token = _request_key.set((session_id, msg.id))
        try:
            return _json(await self._answer(msg, version), headers=headers)
        finally:
            _request_key.reset(token)

    def _initialize(self, msg: _Message) -> Response:
        params = msg.params
        requested = params.get("protocolVersion") if isinstance(params, dict) else None
        if not isinstance(requested, str):
            return _json(_error_body(msg.id, INVALID_PARAMS,
                                     'initialize needs params.protocolVersion (a string)'))
        result = self.initialize_result(requested)
        session_id = self._sessions.issue(result["protocolVersion"])
        return _json({"jsonrpc": "2.0", "id": msg.id, "result": result},
                     headers={"Mcp-Session-Id": session_id})

    async def _batch(self, batch: list[Any], version_header: str | None,
                     session_id: str | None) -> Response:
        if not batch:
            return _error(None, INVALID_REQUEST, "Invalid Request: empty batch")
        ids = _request_ids(batch)
        version, refused = self._session(session_id, version_header, ids)
        if refused is not None:
            return refused
        assert version is not None and session_id is not None
        if version_at_least(version, "2025-06-18"):
            # NOTE: one error, id null: at this version a batch is not a message at all
            return _error(None, INVALID_REQUEST,
                          f"Invalid Request: JSON-RPC batches are not supported at protocol "
                          f"version {version}")
        answers: list[dict[str, Any]] = []
        for item in batch:
            try:
                msg = _parse_message(item)
            except _InvalidMessage as exc:
                answers.append(_error_body(exc.request_id, INVALID_REQUEST,
                                           f"Invalid Request: {exc.message}"))
                continue
            if msg.kind != "request":
                if msg.kind == "notification":
                    self._notified(session_id, msg)
                continue
            if msg.method == "initialize":
                answers.append(_error_body(msg.id, INVALID_REQUEST,
                                           "Invalid Request: initialize must not be batched"))
                continue
            answers.append(await self._answer(msg, version))
        headers = {"Mcp-Session-Id": session_id}
        if not answers:
            return Response(b"", 202, headers=headers)
        return _json(answers, headers=headers)

    # 2026-07-28 ---------------------------------------------------------------------------

    async def _post_modern(self, request: Request, payload: Any, version_header: str) -> Response:
        if isinstance(payload, dict) and "id" not in payload:
            try:
                _parse_message(payload)
            except _InvalidMessage as exc:
                return _error(None, INVALID_REQUEST, f"Invalid Request: {exc.message}")
            if version_header not in MODERN_VERSIONS:
                return self._unsupported(None, version_header)
            return Response(b"", 202)
        try:
            msg = _parse_message(payload)
            if msg.kind != "request":
                raise _InvalidMessage("the body must be one JSON-RPC request or notification",
                                      msg.id)
        except _InvalidMessage as exc:
            return _error(exc.request_id, INVALID_REQUEST, f"Invalid Request: {exc.message}")
        rejection = self._check_envelope(request, msg, version_header)
        if rejection is not None:
            return rejection
        answer = await self._answer(msg, version_header)
        status = 200
        if "error" in answer:
            status = MODERN_ERROR_STATUS.get(answer["error"]["code"], 200)
        return _json(answer, status)

    def _unsupported(self, request_id: Any, requested: Any) -> Response:
        return _error(request_id, UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                      data={"supported": list(MODERN_VERSIONS), "requested": requested})

    def _check_envelope(self, request: Request, msg: _Message,
                        version_header: str) -> Response | None:
        """The 2026-07-28 per-request checks: ``_meta`` envelope, headers, version."""
        for header in (PROTOCOL_VERSION_HEADER, METHOD_HEADER, NAME_HEADER):
            if len(request.headers.getall(header)) > 1:
                return _error(msg.id, HEADER_MISMATCH, f"{header} header appears more than once")
        params = msg.params
        meta = params.get("_meta") if isinstance(params, dict) else None
        if not isinstance(meta, dict):
            return _error(msg.id, INVALID_PARAMS, "params._meta must be an object carrying "
                          f"{PROTOCOL_VERSION_META_KEY!r} and {CLIENT_CAPABILITIES_META_KEY!r}")
        missing = [k for k in (PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY)
                   if k not in meta]
        if missing:
            return _error(msg.id, INVALID_PARAMS,
                          f"params._meta is missing the required key(s): {', '.join(missing)}")
        version = meta[PROTOCOL_VERSION_META_KEY]
        if version_header != version:
            return _error(msg.id, HEADER_MISMATCH, "MCP-Protocol-Version header does not match "
                          "the request's _meta protocol version")
        if request.headers.get(METHOD_HEADER) != msg.method:
            return _error(msg.id, HEADER_MISMATCH,
                          "Mcp-Method header does not match the request's method")
        name_key = NAME_BEARING_METHODS.get(msg.method)
        if name_key is not None and isinstance(params, dict):
            value = params.get(name_key)
            if value is not None and _decode_header(request.headers.get(NAME_HEADER)) != value:
                return _error(msg.id, HEADER_MISMATCH,
                              f"Mcp-Name header does not match the request's {name_key!r}")
        if not isinstance(version, str):
            return _error(msg.id, INVALID_PARAMS, "the _meta protocol version must be a string")
        if version not in MODERN_VERSIONS:
            return self._unsupported(msg.id, version)
        return None


def _decode_header(value: str | None) -> str | None:
    """Undo the ``=?base64?...?=`` wrapping clients use for non-ASCII header values."""
    if value is None or not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    try:
        return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


_tool_result = tool_result  # NOTE: the old private name


_METHODS: dict[str, Callable[..., Any]] = {
    "tools/list": MCPServer._tools_list,
    "tools/call": MCPServer._tools_call,
    "resources/list": MCPServer._resources_list,
    "resources/templates/list": MCPServer._templates_list,
    "resources/read": MCPServer._resources_read,
    "prompts/list": MCPServer._prompts_list,
    "prompts/get": MCPServer._prompts_get,
}


def add_mcp(app: Any, path: str = "/mcp", tools: Any = None, name: str | None = None,
            version: str | None = None, instructions: str | None = None,
            **options: Any) -> MCPServer:
    """Serve an MCP server at ``path`` on ``app`` and return it (also as ``app.features["mcp"]``).

    ``options`` go to :class:`MCPServer` (``allowed_hosts``, ``allowed_origins``,
    ``session_secret``); see :mod:`ember.mcp.security` for the Host/Origin rules.
    """
    server = MCPServer(tools, name=name, version=version, instructions=instructions,
                       path=path, **options)

    async def mcp_endpoint(request: Request) -> Response:
        return await server.handle(request)

    app.add_route(path, mcp_endpoint, ["GET", "POST", "DELETE"], name=f"mcp:{path}",
                  include_in_schema=False)
    app.add_feature("mcp", server)
    return server
