"""Which request headers carry a credential, for the route caches (SPEC §5).

A cached answer may only be shared between requests that would get the same answer.
A request carrying a credential may get an answer meant for its owner, so it either
bypasses the cache or, when the route opts in with ``per_credential=True``, gets its
own entry keyed by a hash of the credential.  Credential carriers are:

* ``Authorization`` and ``Cookie``, always;
* every header named in a ``credential_headers`` attribute of a middleware on the
  route's path — app middleware and the route's blueprint middleware — e.g.
  ``APIKeyMiddleware(header="x-api-key").credential_headers == ("x-api-key",)``.

A custom authentication middleware declares what it reads the same way::

    class TenantAuth:
        credential_headers = ("x-tenant-token",)
        async def __call__(self, request, call_next): ...

NOTE: a middleware's ``exclude_paths`` are not consulted: treating a header as a
credential on a path where it is not checked only costs a cache miss, never a leak.
"""

from __future__ import annotations

from typing import Any

#: carriers that are credentials whatever the middleware
DEFAULT_CREDENTIAL_HEADERS = ("authorization", "cookie")


def credential_headers(request: Any) -> tuple[str, ...]:
    """Lower-case names of the headers that carry a credential on ``request``'s route."""
    names = list(DEFAULT_CREDENTIAL_HEADERS)
    app = getattr(request, "app", None)
    route = getattr(request, "route", None)
    for mw in (*getattr(app, "middleware", ()), *getattr(route, "middleware", ())):
        declared = getattr(mw, "credential_headers", ())
        if isinstance(declared, str):
            declared = (declared,)
        for name in declared:
            name = str(name).lower()
            if name not in names:
                names.append(name)
    return tuple(names)


def request_credentials(request: Any) -> list[str]:
    """``"name=value"`` for each credential header present (empty: an anonymous request)."""
    headers = request.headers
    return [f"{name}={','.join(headers.getall(name))}" for name in credential_headers(request)
            if name in headers]
