"""``ember keys create|list|rotate|revoke``: the admin API of a running gateway.

    export EMBER_GATEWAY_MASTER_KEY=...           # or --master-key
    ember keys create --url http://gw:8000/v1 --name ci --models fast,smart \\
        --budget-cost 5 --budget-period month --rpm 60 --team search
    ember keys list --url http://gw:8000/v1
    ember keys rotate key_3f9c... ; ember keys revoke key_3f9c...

Prints the server's JSON answer (the secret of a created or rotated key is shown
once).  Errors (bad input, wrong master key, server down) exit with status 1 and the
server's reason; the master key is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000/v1"


def add_parser(sub: Any) -> None:
    """Register ``ember keys`` on the CLI's subparsers."""
    keys = sub.add_parser("keys", help="manage a running gateway's virtual keys")
    actions = keys.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("EMBER_GATEWAY_URL", DEFAULT_URL),
                        help="the gateway's prefix URL (default $EMBER_GATEWAY_URL or "
                             f"{DEFAULT_URL})")
    common.add_argument("--master-key", default=None,
                        help="default: $EMBER_GATEWAY_MASTER_KEY")
    create = actions.add_parser("create", parents=[common], help="create a key")
    create.add_argument("--name")
    create.add_argument("--models", help="comma-separated public model names (default: all)")
    create.add_argument("--team")
    create.add_argument("--owner")
    create.add_argument("--budget-tokens", type=int)
    create.add_argument("--budget-cost", type=float, help="USD")
    create.add_argument("--budget-period", default="day")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-concurrent", type=int)
    create.add_argument("--expires-at", type=float, help="Unix time in seconds")
    create.add_argument("--metadata", help="a JSON object")
    actions.add_parser("list", parents=[common], help="list keys")
    for name in ("rotate", "revoke"):
        one = actions.add_parser(name, parents=[common], help=f"{name} a key")
        one.add_argument("id", help="the key id (key_...)")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for field in ("name", "team", "owner", "expires_at"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.budget_tokens is not None or args.budget_cost is not None:
        body["budget"] = {"tokens": args.budget_tokens, "cost": args.budget_cost,
                          "period": args.budget_period}
    limits = {k: getattr(args, k) for k in ("rpm", "tpm", "max_concurrent")
              if getattr(args, k) is not None}
    if limits:
        body["limits"] = limits
    if args.metadata is not None:
        try:
            body["metadata"] = json.loads(args.metadata)
        except ValueError as exc:
            raise SystemExit(f"error: --metadata is not JSON: {exc}") from None
    return body


def run(args: argparse.Namespace) -> int:
    """Run one ``ember keys`` action; prints the answer."""
    import urllib.error  # NOTE: here, not at import: `ember --help` stays light (no ssl)
    import urllib.request

    master = args.master_key or os.environ.get("EMBER_GATEWAY_MASTER_KEY")
    if not master:
        raise SystemExit("error: no master key: pass --master-key or set "
                         "EMBER_GATEWAY_MASTER_KEY")
    base = args.url.rstrip("/") + "/admin/keys"
    if not base.startswith(("http://", "https://")):
        raise SystemExit(f"error: --url must be an http(s):// URL, got {args.url!r}")
    method, url, body = {
        "create": ("POST", base, None),
        "list": ("GET", base, None),
        "rotate": ("POST", f"{base}/{getattr(args, 'id', '')}/rotate", None),
        "revoke": ("DELETE", f"{base}/{getattr(args, 'id', '')}", None),
    }[args.action]
    if args.action == "create":
        body = _body(args)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {master}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
            reason = error["message"]
            if error.get("param") and error["param"] not in reason:
                reason = f"{error['param']}: {reason}"
        except Exception:
            reason = exc.reason
        raise SystemExit(f"error: {exc.code}: {reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot reach the gateway at {args.url}: {exc}") from None
    print(json.dumps(answer, indent=2))
    return 0
