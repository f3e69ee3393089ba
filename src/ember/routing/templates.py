"""What the rest of Ember reads from a path template, all from one parse.

:func:`~ember.routing.parse_template` (the router's own parser) splits a template
into static segments and ``(name, kind)`` parameters; the functions here derive,
without another regular expression:

* :func:`path_params` — ``{name: kind}`` (route checks, injection, OpenAPI);
* :func:`template_key` — the template with names erased, so ``/u/{id}`` and
  ``/u/{uid}`` are seen as the same route;
* :func:`openapi_path` — ``/u/{id:int}`` as OpenAPI writes it, ``/u/{id}``;
* :func:`expand` — the template filled with values (``app.url_for``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote

from ember.exceptions import ConfigError
from ember.routing.router import parse_template


@lru_cache(maxsize=4096)
def _segments(path: str) -> tuple[Any, ...]:
    # NOTE: templates are few and fixed at registration; the cache keeps OpenAPI and
    # url_for from re-reading them (a bad template raises and is not cached)
    return tuple(parse_template(path))


def path_params(path: str) -> dict[str, str]:
    """``{name: kind}`` of the template, in order (``kind``: ``str``, ``int``, ``float``,
    ``uuid`` or ``path``). ConfigError naming the fix for a malformed template."""
    return {seg[0]: seg[1] for seg in _segments(path) if type(seg) is tuple}


def template_key(path: str) -> str:
    """The template with parameter names erased: two routes with the same key collide."""
    return "/" + "/".join(seg if type(seg) is str else "{:" + seg[1] + "}"
                          for seg in _segments(path))


def openapi_path(path: str) -> str:
    """The template as OpenAPI writes it: parameters without their converter."""
    return "/" + "/".join(seg if type(seg) is str else "{" + seg[0] + "}"
                          for seg in _segments(path))


def expand(path: str, values: dict[str, Any]) -> str:
    """The template filled with ``values`` (percent-encoded; ``{x:path}`` keeps ``/``).

    ConfigError naming the missing parameters, never a KeyError.
    """
    segments = _segments(path)
    missing = [seg[0] for seg in segments if type(seg) is tuple and seg[0] not in values]
    if missing:
        raise ConfigError(f"url_for: missing path parameter(s) {missing} for {path!r}")
    return "/" + "/".join(
        seg if type(seg) is str
        else quote(str(values[seg[0]]), safe="/" if seg[1] == "path" else "")
        for seg in segments)
