"""The gateway's admin API: virtual keys and spend, behind the master key.

``POST {prefix}/admin/keys`` (create: the answer holds the secret, once),
``GET {prefix}/admin/keys`` (list), ``GET/PATCH/DELETE {prefix}/admin/keys/{id}``
(read, change, revoke), ``POST {prefix}/admin/keys/{id}/rotate`` (a new secret, same
key), ``GET {prefix}/admin/spend`` (see :mod:`ember.gateway.spend`).  Every call needs
``Authorization: Bearer <master key>`` (``mount_openai(master_key=...)`` or
``EMBER_GATEWAY_MASTER_KEY``), compared in constant time; without a master key these
routes are not served at all.  Bad input is a 400 naming the field.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

import orjson

from ember.gateway.failures import BadRequest, GatewayError, Unauthorized
from ember.gateway.keys import hash_secret, new_id, new_secret, public
from ember.responses import JSONResponse, Response

FIELDS = ("name", "models", "budget", "limits", "team", "owner", "metadata", "expires_at")
_MAX_TEXT = 200
_MAX_METADATA = 16_384


class NotFound(GatewayError):
    """404: no such key."""

    status = 404
    code = "key_not_found"


class StoreDown(GatewayError):
    """503: the key store is unavailable."""

    status = 503
    type_ = "server_error"
    code = "key_store_unavailable"

    def __init__(self) -> None:
        super().__init__("The gateway's key store is unavailable; retry shortly.",
                         headers={"retry-after": "2"})


class SpendDown(GatewayError):
    """503: the spend log's database is unavailable."""

    status = 503
    type_ = "server_error"
    code = "spend_log_unavailable"

    def __init__(self) -> None:
        super().__init__("The spend log's database is unavailable; retry shortly.",
                         headers={"retry-after": "2"})


def _text(field: str, value: Any, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT or \
            any(ord(c) < 32 for c in value):
        raise BadRequest(f"{field} must be a non-empty string of at most {_MAX_TEXT} "
                         f"printable characters", param=field, code="invalid_value")
    return value


def _budget(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("budget must be an object {tokens, cost, period}", param="budget",
                         code="invalid_value")
    unknown = set(value) - {"tokens", "cost", "period"}
    if unknown:
        name = sorted(unknown)[0]
        raise BadRequest(f"budget.{name} is not a budget field", param=f"budget.{name}",
                         code="invalid_value")
    from ember.gateway.budgets import Budget

    try:
        Budget(**value)
    except (ValueError, TypeError) as exc:
        name = next((f for f in ("tokens", "cost", "period") if f in str(exc).lower()), None)
        param = f"budget.{name}" if name else "budget"
        raise BadRequest(f"{param}: {exc}", param=param, code="invalid_value") from None
    return {"tokens": value.get("tokens"), "cost": value.get("cost"),
            "period": value.get("period", "day")}


def _limits(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("limits must be an object {rpm, tpm, max_concurrent}", param="limits",
                         code="invalid_value")
    from ember.gateway.limits import KeyLimits

    for name, item in value.items():
        if name not in ("rpm", "tpm", "max_concurrent"):
            raise BadRequest(f"limits.{name} is not a limit", param=f"limits.{name}",
                             code="invalid_value")
        try:
            KeyLimits(**{name: item})
        except ValueError as exc:
            raise BadRequest(f"limits.{name}: {exc}", param=f"limits.{name}",
                             code="invalid_value") from None
    return {k: value.get(k) for k in ("rpm", "tpm", "max_concurrent")}


def _models(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1000:
        raise BadRequest("models must be a list of public model names (or null: all)",
                         param="models", code="invalid_value")
    for i, item in enumerate(value):
        _text(f"models[{i}]", item, allow_none=False)
    return list(value)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(orjson.dumps(value)) > _MAX_METADATA:
        raise BadRequest(f"metadata must be a JSON object of at most {_MAX_METADATA} bytes",
                         param="metadata", code="invalid_value")
    return value


def _expires(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value <= 0:
        raise BadRequest("expires_at must be a Unix time in seconds (or null)",
                         param="expires_at", code="invalid_value")
    return float(value)


_CHECKS = {"name": _text, "team": _text, "owner": _text}


def validate(body: Any, *, partial: bool) -> dict[str, Any]:
    """The key fields of an admin request body (400 naming the first bad field)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise BadRequest(f"Unrecognized key field: {unknown[0]}", param=str(unknown[0]),
                         code="invalid_value")
    out: dict[str, Any] = {}
    for field in FIELDS:
        if partial and field not in body:
            continue
        value = body.get(field)
        if field in _CHECKS:
            out[field] = _CHECKS[field](field, value)
        elif field == "budget":
            out[field] = _budget(value)
        elif field == "limits":
            out[field] = _limits(value)
        elif field == "models":
            out[field] = _models(value)
        elif field == "metadata":
            out[field] = _metadata(value)
        else:
            out[field] = _expires(value)
    return out


class Admin:
    """The admin endpoints of one gateway (mounted only with a master key)."""

    def __init__(self, gateway: Any, master_key: str) -> None:
        self.gateway = gateway
        self.master = master_key.encode()

    def check(self, request: Any) -> None:
        """:class:`Unauthorized` unless the request carries the master key."""
        auth = request.headers.get("authorization") or ""
        scheme, _, token = auth.partition(" ")
        ok = hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"),
                                 self.master)
        if not (ok and scheme.lower() == "bearer"):
            raise Unauthorized("This endpoint needs the gateway's master key.")

    async def _body(self, request: Any) -> Any:
        raw = await request.body()
        try:
            return orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            from ember._json import explain

            raise BadRequest(f"The request body is not valid JSON: {explain(exc, raw)}") from None

    async def _store(self, call: Any) -> Any:
        from ember.gateway.keys import KeyStoreUnavailable

        try:
            return await call
        except KeyStoreUnavailable:
            raise StoreDown() from None

    async def _get(self, key_id: str) -> dict[str, Any]:
        doc = await self._store(self.gateway.key_store.get(key_id))
        if doc is None:
            raise NotFound(f"No key with id {key_id!r}.", param="id")
        return doc

    async def create(self, request: Any, rid: str) -> Response:
        """``POST /admin/keys``."""
        self.check(request)
        fields = validate(await self._body(request), partial=False)
        secret = new_secret()
        doc = {"id": new_id(), **fields, "prefix": secret[:12], "revoked": False,
               "created_at": time.time()}
        await self._store(self.gateway.key_store.put(doc, hash_secret(secret)))
        return JSONResponse({**public(doc), "key": secret}, 201, headers={"x-request-id": rid})

    async def list(self, request: Any, rid: str) -> Response:
        """``GET /admin/keys``."""
        self.check(request)
        docs = await self._store(self.gateway.key_store.all())
        return JSONResponse({"object": "list", "data": [public(d) for d in docs]})

    async def read(self, request: Any, rid: str, key_id: str) -> Response:
        """``GET /admin/keys/{id}``."""
        self.check(request)
        return JSONResponse(public(await self._get(key_id)))

    async def update(self, request: Any, rid: str, key_id: str) -> Response:
        """``PATCH /admin/keys/{id}``."""
        self.check(request)
        fields = validate(await self._body(request), partial=True)
        doc = await self._get(key_id)
        doc.update(fields)
        await self._store(self.gateway.key_store.put(doc, doc["hash"]))
        self.gateway.key_cache.forget(doc["hash"])
        return JSONResponse(public(doc))

    async def revoke(self, request: Any, rid: str, key_id: str) -> Response:
        """``DELETE /admin/keys/{id}``: the key stops working (its record stays, for spend)."""
        self.check(request)
        doc = await self._get(key_id)
        doc["revoked"] = True
        await self._store(self.gateway.key_store.put(doc, doc["hash"]))
        self.gateway.key_cache.forget(doc["hash"])
        return JSONResponse({"id": key_id, "object": "key", "deleted": True})

    async def rotate(self, request: Any, rid: str, key_id: str) -> Response:
        """``POST /admin/keys/{id}/rotate``: a new secret; the old one stops working."""
        self.check(request)
        doc = await self._get(key_id)
        if doc.get("revoked"):
            raise BadRequest(f"Key {key_id!r} is revoked.", param="id", code="key_revoked")
        secret = new_secret()
        old = doc["hash"]
        doc["prefix"] = secret[:12]
        await self._store(self.gateway.key_store.put(doc, hash_secret(secret), old))
        self.gateway.key_cache.forget(old)
        return JSONResponse({**public(doc), "key": secret})

    async def spend(self, request: Any, rid: str) -> Response:
        """``GET /admin/spend?key=&team=&model=&since=&until=&group_by=key,model,day&limit=``."""
        self.check(request)
        from ember.gateway.spend import parse_filters

        try:
            filters, group_by, limit = parse_filters(request.query_params)
        except ValueError as exc:
            raise BadRequest(f"Invalid spend query parameter: {exc}", param=str(exc),
                             code="invalid_value") from None
        try:
            rows = await self.gateway.spend.query(filters, group_by, limit)
        except Exception as exc:
            from ember.db.errors import DatabaseError

            if isinstance(exc, DatabaseError | OSError):
                raise SpendDown() from None
            raise
        return JSONResponse({"object": "list", "group_by": group_by, "data": rows})

    def mount(self, app: Any, prefix: str) -> None:
        """Register the admin routes (the gateway's :meth:`run` is the boundary)."""
        run = self.gateway.run
        base = f"{prefix}/admin/keys"

        async def keys(request: Any) -> Response:
            handler = self.create if request.method == "POST" else self.list
            return await run(handler, request)

        async def key(request: Any, key_id: str) -> Response:
            handler = {"GET": self.read, "PATCH": self.update, "DELETE": self.revoke}[
                request.method]
            return await run(handler, request, key_id=key_id)

        async def rotate(request: Any, key_id: str) -> Response:
            return await run(self.rotate, request, key_id=key_id)

        if self.gateway.spend is not None:
            async def spend(request: Any) -> Response:
                return await run(self.spend, request)

            app.add_route(f"{prefix}/admin/spend", spend, ["GET"], name="gateway_admin_spend",
                          include_in_schema=False)
        app.add_route(base, keys, ["GET", "POST"], name="gateway_admin_keys",
                      include_in_schema=False)
        app.add_route(f"{base}/{{key_id}}", key, ["GET", "PATCH", "DELETE"],
                      name="gateway_admin_key", include_in_schema=False)
        app.add_route(f"{base}/{{key_id}}/rotate", rotate, ["POST"],
                      name="gateway_admin_key_rotate", include_in_schema=False)
