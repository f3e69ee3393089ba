"""PEP 562 lazy exports shared by the packages whose pieces are optional or heavy."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # NOTE: not typing's: a lazy package must not import typing itself
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any


def lazy_exports(package: str, exports: dict[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name imports its module on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # PERF: later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
