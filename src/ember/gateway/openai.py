"""An OpenAI-compatible API on an Ember app: ``app.mount_openai(models, prefix="/v1")``.

Serves ``POST {prefix}/chat/completions`` (plain and streaming, tools, ``n``, usage
with cost), ``POST {prefix}/embeddings`` and ``GET {prefix}/models`` /
``{prefix}/models/{id}`` in OpenAI's wire format, so the official OpenAI SDK works
against the app with ``base_url="http://host:port/v1"``; and, through the same pipeline,
``{prefix}/messages`` (Anthropic, :mod:`ember.gateway.messages`), ``{prefix}/responses``
(:mod:`ember.gateway.responses`, stored in ``response_store``) and ``{prefix}/completions``
(:mod:`ember.gateway.completions`).  Fields OpenAI-family upstreams take pass unchanged;
for translated providers what cannot be honoured is a 400, or with ``drop_params=True``
left out and named in ``x-ember-dropped-params``.

``models`` is a model id, a list of ids, a ``ModelRouter`` (any requested name is
routed), or a dict of public names to a model id, a list of ids (a fallback
``ModelRouter``) or a router: ``{"fast": "gpt-4o-mini", "smart": ["claude-sonnet-4-5",
"gpt-4o"]}``.  ``api_keys`` (a list of keys, or a dict of key name -> key) makes
``Authorization: Bearer <key>`` mandatory (constant-time comparison); without keys
the server refuses to start on a non-loopback address unless
``allow_unauthenticated=True``.  ``budget`` (see :mod:`ember.gateway.budgets`) caps
tokens or cost per key and period; ``max_in_flight`` caps concurrent requests per
worker (503 + ``Retry-After`` beyond it).  Requests are validated against OpenAI's
schema (:mod:`ember.gateway.schemas`); parameters reach each provider in its own
vocabulary or are refused (:mod:`ember.models.params`); every error is in OpenAI's
shape with a request id, and upstream error bodies never reach clients
(:mod:`ember.gateway.errors`).  The pipeline itself is :class:`ember.gateway.service.Gateway`.
"""

from __future__ import annotations

from typing import Any

from ember.gateway.errors import openai_error
from ember.gateway.service import FORWARD as _FORWARD  # noqa: F401  (the old name)

__all__ = ["mount_openai", "openai_error"]


def mount_openai(app: Any, models: Any, prefix: str = "/v1", api_keys: Any = None,
                 **options: Any) -> Any:
    """Register the OpenAI-compatible routes on ``app``; returns the
    :class:`~ember.gateway.service.Gateway` (see the module docstrings for ``options``).

    Raises ``ValueError`` for a malformed configuration; at server start, raises
    ``RuntimeError`` when bound to a non-loopback address without ``api_keys`` unless
    ``allow_unauthenticated=True``.
    """
    from ember.gateway.service import Gateway

    return Gateway(app, models, prefix, api_keys, **options).mount()
