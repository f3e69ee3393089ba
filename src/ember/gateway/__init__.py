"""The OpenAI-compatible gateway: ``app.mount_openai(...)`` (see :mod:`ember.gateway.openai`)."""

from ember.gateway.budgets import Budget
from ember.gateway.limits import KeyLimits

__all__ = ["Budget", "KeyLimits"]
