"""Parameter markers with FastAPI's names: ``Query``, ``Path``, ``Header``, ``Cookie``,
``Body``, ``Form``, ``File`` and ``Depends``.

A marker says where a handler parameter comes from and what it must satisfy::

    async def items(page: int = Query(1, ge=1), x_token: str = Header(),
                    session: str | None = Cookie(None)): ...
    async def items(page: Annotated[int, Query(ge=1)] = 1): ...

Markers are read once, when the route is registered (:mod:`ember.dependencies`
turns them into the route's call plan); at request time only the plan runs.
Constraint failures are 422s in the usual shape (``loc`` names the location and
the name the client sent), and the constraints appear in the OpenAPI document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ember.exceptions import ConfigError

#: "no default": the parameter is required (FastAPI's ``...`` means the same)
Required: Any = Ellipsis

_NUMERIC = ("gt", "ge", "lt", "le")


class Param:
    """Base of the request-value markers (not used directly)."""

    #: the OpenAPI ``in`` / the 422 ``loc`` head
    location = ""

    __slots__ = ("alias", "convert_underscores", "default", "deprecated", "description",
                 "embed", "examples", "ge", "gt", "include_in_schema", "le", "lt",
                 "max_length", "media_type", "min_length", "pattern", "regex", "title")

    def __init__(
        self,
        default: Any = Required,
        *,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        regex: str | None = None,
        examples: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        embed: bool | None = None,
        convert_underscores: bool = True,
        media_type: str | None = None,
        default_factory: Callable[[], Any] | None = None,
    ) -> None:
        if default_factory is not None:
            raise ConfigError("default_factory= is not supported on parameter markers; give a "
                              "default value (or None) instead")
        if alias is not None and (not isinstance(alias, str) or not alias):
            raise ConfigError(f"alias= must be a non-empty string, got {alias!r}")
        for key, value in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise ConfigError(f"{key}= must be a finite number, got {value!r}")
        for key, value in (("min_length", min_length), ("max_length", max_length)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ConfigError(f"{key}= must be a non-negative int, got {value!r}")
        if pattern is None:
            pattern = regex  # NOTE: FastAPI's older name
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ConfigError(f"pattern= {pattern!r} is not a valid regular expression: "
                                  f"{exc}") from None
        self.default = default
        self.alias = alias
        self.title = title
        self.description = description
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self.regex = regex
        self.examples = examples
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.embed = embed
        self.convert_underscores = convert_underscores
        self.media_type = media_type

    @property
    def required(self) -> bool:
        """No default was given."""
        return self.default is Required

    def constraints(self) -> dict[str, Any]:
        """The constraint keywords that were given (``{"ge": 1, ...}``)."""
        out = {k: getattr(self, k) for k in (*_NUMERIC, "min_length", "max_length", "pattern")}
        return {k: v for k, v in out.items() if v is not None}

    def __repr__(self) -> str:
        shown = "" if self.required else repr(self.default)
        return f"{type(self).__name__}({shown})"


class Query(Param):
    """A query-string parameter: ``page: int = Query(1, ge=1, alias="p")``."""

    location = "query"
    __slots__ = ()


class Path(Param):
    """A path parameter (always required): ``item_id: int = Path(ge=1)``."""

    location = "path"
    __slots__ = ()


class Header(Param):
    """A request header: ``x_token: str = Header()`` reads ``x-token``.

    Underscores become hyphens unless ``convert_underscores=False``; ``alias``
    names the header exactly; a ``list[str]`` parameter takes every value.
    """

    location = "header"
    __slots__ = ()


class Cookie(Param):
    """A cookie: ``session_id: str | None = Cookie(None)``."""

    location = "cookie"
    __slots__ = ()


class Body(Param):
    """A JSON body value: the whole body, or with ``embed=True`` (or when a handler has
    several ``Body()`` parameters) the member of the body object with this name."""

    location = "body"
    __slots__ = ()


class Form(Param):
    """A form field (urlencoded or multipart): ``name: str = Form()``."""

    location = "body"
    __slots__ = ()


class File(Form):
    """An uploaded file: ``file: UploadFile = File()`` (or ``bytes`` for its content,
    ``list[UploadFile]`` for several files under one name)."""

    __slots__ = ()


class Depends:
    """``user: User = Depends(current_user)``: the value of ``current_user(...)``.

    The dependency may be a function (sync or ``async``), an (async) generator
    (its code after ``yield`` runs after the response is sent, also on errors and
    disconnects) or a class; its own parameters are injected like a handler's.
    Within one request a dependency runs once and its value is shared, unless
    ``use_cache=False``.  ``Depends()`` without a callable uses the parameter's
    annotation (a class).
    """

    __slots__ = ("dependency", "use_cache")

    def __init__(self, dependency: Callable[..., Any] | None = None, *,
                 use_cache: bool = True) -> None:
        if dependency is not None and not callable(dependency):
            raise ConfigError(f"Depends() expects a callable, got {dependency!r}")
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", self.dependency)
        return f"Depends({name}{'' if self.use_cache else ', use_cache=False'})"


# -- constraint checks -----------------------------------------------------------------


def checker(marker: Param, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` followed by ``marker``'s constraints; ValueError with pydantic's wording."""
    given = marker.constraints()
    if not given:
        return convert
    gt, ge, lt, le = (given.get(k) for k in _NUMERIC)
    min_len, max_len = given.get("min_length"), given.get("max_length")
    rx = re.compile(given["pattern"]) if "pattern" in given else None

    def check(raw: Any) -> Any:
        value = convert(raw)
        if gt is not None and not value > gt:
            raise ValueError(f"Input should be greater than {gt}")
        if ge is not None and not value >= ge:
            raise ValueError(f"Input should be greater than or equal to {ge}")
        if lt is not None and not value < lt:
            raise ValueError(f"Input should be less than {lt}")
        if le is not None and not value <= le:
            raise ValueError(f"Input should be less than or equal to {le}")
        if min_len is not None or max_len is not None:
            size = len(value)
            if min_len is not None and size < min_len:
                raise ValueError(f"{_sized(value)} should have at least {_count(min_len, value)}")
            if max_len is not None and size > max_len:
                raise ValueError(f"{_sized(value)} should have at most {_count(max_len, value)}")
        if rx is not None and (not isinstance(value, str) or rx.search(value) is None):
            raise ValueError(f"String should match pattern '{rx.pattern}'")
        return value
    return check


def _sized(value: Any) -> str:
    return "String" if isinstance(value, str) else "Value"


def _count(n: int, value: Any) -> str:
    unit = "character" if isinstance(value, str) else "byte" if isinstance(
        value, bytes) else "item"
    return f"{n} {unit}{'' if n == 1 else 's'}"


def schema_keywords(marker: Param) -> dict[str, Any]:
    """The JSON Schema keywords stating ``marker``'s constraints."""
    out: dict[str, Any] = {}
    names = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum",
             "le": "maximum", "min_length": "minLength", "max_length": "maxLength",
             "pattern": "pattern"}
    for key, value in marker.constraints().items():
        out[names[key]] = value
    if marker.title:
        out["title"] = marker.title
    if marker.examples:
        out["examples"] = list(marker.examples)
    return out


__all__ = ["Body", "Cookie", "Depends", "File", "Form", "Header", "Param", "Path", "Query",
           "checker", "schema_keywords"]
