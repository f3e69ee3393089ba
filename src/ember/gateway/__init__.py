"""The OpenAI-compatible gateway: ``app.mount_openai(...)`` (see :mod:`ember.gateway.openai`)."""

from ember.gateway.budgets import Budget

__all__ = ["Budget"]
