"""Gateways: serve model APIs from an Ember app (OpenAI-compatible today)."""
