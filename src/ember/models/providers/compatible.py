"""Any OpenAI-compatible server by base URL: vLLM, Ollama, LM Studio, Azure-style.

``models("ollama/llama3", ...)`` works when ``OLLAMA_BASE_URL`` is set (e.g.
``http://localhost:11434/v1``): an explicit ``name/model`` whose provider is
not registered but whose ``<NAME>_BASE_URL`` exists speaks Chat Completions
there, with ``<NAME>_API_KEY`` as optional bearer token. For fixed settings
(Azure deployment paths, ``api-key`` header, ``api-version`` query) register
:func:`compatible_provider`::

    register_provider("azure", compatible_provider(
        "azure", base_url="https://x.openai.azure.com/openai/deployments/gpt4",
        api_key_header="api-key", query={"api-version": "2024-10-21"},
        api_key_env="AZURE_OPENAI_API_KEY"))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

from ember.models.exceptions import ModelProviderError
from ember.models.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    """Chat Completions at an arbitrary base URL; the key is optional."""

    requires_api_key: ClassVar[bool] = False
    vocabulary: ClassVar[str] = "compatible"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        name: str = "compatible",
        base_url: str | None = None,
        api_key_env: str | None = None,
        api_key_header: str = "authorization",
        chat_path: str = "/chat/completions",
        query: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.name = name  # type: ignore[misc]
        env_name = f"{name.upper().replace('-', '_')}_BASE_URL"
        base_url = base_url or os.environ.get(env_name)
        if not base_url:
            raise ModelProviderError(
                f"provider {name!r} has no base URL: set {env_name}",
                context={"reason": "missing_base_url", "env_vars": [env_name]},
            )
        key_env = api_key_env or f"{name.upper().replace('-', '_')}_API_KEY"
        self.api_key_env = (key_env,)  # type: ignore[misc]
        self._key_header = api_key_header.lower()
        self.chat_path = chat_path + (  # type: ignore[misc]
            "?" + urlencode(dict(query)) if query else ""
        )
        self._extra_headers = dict(extra_headers or {})
        super().__init__(api_key, base_url=base_url, **options)

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            if self._key_header == "authorization":
                headers["authorization"] = f"Bearer {self.api_key}"
            else:
                headers[self._key_header] = self.api_key
        headers.update(self._extra_headers)
        return headers


def compatible_provider(name: str, **settings: Any) -> Callable[[str | None], OpenAICompatibleProvider]:
    """A factory for :func:`register_provider` with fixed settings (``api_key`` optional)."""

    fixed_key = settings.pop("api_key", None)

    def factory(api_key: str | None = None) -> OpenAICompatibleProvider:
        return OpenAICompatibleProvider(fixed_key or api_key, name=name, **settings)

    factory.__name__ = f"{name}_provider"
    return factory
