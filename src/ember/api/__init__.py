"""The seed's import paths: ``from ember.api import models``.

``models`` is the module :mod:`ember.api.models` and is also callable::

    from ember.api import models
    models("gpt-4", "Hello").text
"""

from __future__ import annotations

from ember.api import exceptions, models

__all__ = ["exceptions", "models"]
