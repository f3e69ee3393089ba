"""Prompt templates with required-variable checking."""

from __future__ import annotations

import string
from typing import Any


class PromptTemplateError(ValueError):
    """Missing or unknown template variables."""


class PromptTemplate:
    """``PromptTemplate("Summarise {text} in {n} words").format(text=..., n=3)``.

    ``{{`` and ``}}`` are literal braces.  Missing variables raise
    :class:`PromptTemplateError` naming them; ``strict=True`` also rejects unknown ones.
    """

    def __init__(self, template: str, *, strict: bool = False, **partials: Any) -> None:
        if not isinstance(template, str):
            raise TypeError(f"template must be a str, got {type(template).__name__}")
        names: list[str] = []
        try:
            for _, field, _spec, _conv in string.Formatter().parse(template):
                if field is None:
                    continue
                if not field or not field.split(".")[0].split("[")[0].isidentifier():
                    raise PromptTemplateError(
                        f"invalid placeholder {{{field}}}; use {{name}} (and {{{{ }}}} for "
                        "literal braces)")
                base = field.split(".")[0].split("[")[0]
                if base not in names:
                    names.append(base)
        except ValueError as exc:
            if isinstance(exc, PromptTemplateError):
                raise
            raise PromptTemplateError(f"malformed template: {exc}") from None
        self.template = template
        self.strict = strict
        self._names = names
        self._partials = dict(partials)

    @property
    def variables(self) -> list[str]:
        """Variables still to be supplied, in order of first use."""
        return [n for n in self._names if n not in self._partials]

    def partial(self, **values: Any) -> PromptTemplate:
        """A template with some variables fixed."""
        return PromptTemplate(self.template, strict=self.strict, **{**self._partials, **values})

    def format(self, **values: Any) -> str:
        """The filled prompt; PromptTemplateError when a variable is missing."""
        merged = {**self._partials, **values}
        missing = [n for n in self._names if n not in merged]
        if missing:
            raise PromptTemplateError(f"missing template variable(s): {', '.join(missing)}")
        if self.strict:
            unknown = sorted(set(values) - set(self._names))
            if unknown:
                raise PromptTemplateError(f"unknown template variable(s): {', '.join(unknown)}")
        return self.template.format(**merged)

    __call__ = format

    def to_messages(self, system: str | None = None, **values: Any) -> list[dict[str, str]]:
        """Chat messages: an optional system message, then the filled prompt as user."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": self.format(**values)})
        return messages

    def __repr__(self) -> str:
        return f"PromptTemplate({self.template!r})"
