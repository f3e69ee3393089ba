"""Multi-valued, case-insensitive containers for headers and query strings.

Headers arrive from the parser as ``(lowercase_name, value)`` byte pairs and are
decoded (latin-1, as RFC 9110 §5.5 allows) only when someone asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from ember.http.errors import HttpHeaderInjection

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_MISSING: Any = object()


class Address(NamedTuple):
    """The peer of a connection: ``host`` (an IP address string) and ``port``."""

    host: str
    port: int

    @property
    def ip(self) -> str:
        """Alias of :attr:`host`."""
        return self.host


def encode_header(name: str | bytes, value: Any) -> tuple[bytes, bytes]:
    """Validate and encode one response header; CR, LF or NUL raise (no injection)."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    elif not isinstance(name, str):
        raise TypeError(f"header names must be str, got {type(name).__name__} {name!r}")
    if not _TOKEN.match(name):
        raise HttpHeaderInjection(f"invalid header name {name!r}")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif not isinstance(value, str):
        if value is None:  # NOTE: str(None) would send the header "None"
            raise TypeError(f"header {name!r} value is None; leave the header out instead")
        value = str(value)
    if _BAD_VALUE.search(value):
        raise HttpHeaderInjection(f"header {name!r} value contains CR, LF or NUL")
    return name.lower().encode("latin-1"), value.encode("latin-1")


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive, multi-valued request headers.

    ``headers["x"]`` and ``.get("x")`` give the first value, ``.getall("x")`` all
    of them, in the order they were received.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] | Mapping[str, str] | None = None) -> None:
        # PERF: exact-type checks first; the parser hands over a list of byte pairs per
        # request, and isinstance(raw, Mapping) goes through ABCMeta.__instancecheck__.
        if type(raw) is list:
            self._raw: list[tuple[bytes, bytes]] = raw[:]
        elif raw is None:
            self._raw = []
        elif type(raw) is dict or isinstance(raw, Mapping):
            self._raw = [encode_header(k, v) for k, v in raw.items()]
        else:
            self._raw = list(raw)

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The ``(lowercase_name, value)`` byte pairs, in wire order."""
        return self._raw

    def __getitem__(self, key: str) -> str:
        k = key.lower().encode("latin-1")
        for name, value in self._raw:
            if name == k:
                return value.decode("latin-1")
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        # PERF: no exception on a miss (middleware probes absent headers per request)
        k = key.lower().encode("latin-1")
        for name, value in self._raw:
            if name == k:
                return value.decode("latin-1")
        return default

    def getall(self, key: str, default: Any = _MISSING) -> list[str]:
        """All values of ``key``; ``[]`` when absent unless a default is given."""
        k = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for n, v in self._raw if n == k]
        if not values and default is not _MISSING:
            return default
        return values

    getlist = getall

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = key.lower().encode("latin-1")
        return any(n == k for n, _ in self._raw)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for n, _ in self._raw:
            seen.setdefault(n.decode("latin-1"), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({n for n, _ in self._raw})

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every ``(name, value)`` pair, repeated names included."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._raw) == sorted(other._raw)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"


class MutableHeaders(Headers):
    """Response headers: set, add and delete, with injection checks on every write."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        name, encoded = encode_header(key, value)
        raw = self._raw
        for n, _ in raw:
            if n == name:
                self._raw = raw = [(n, v) for n, v in raw if n != name]
                break
        raw.append((name, encoded))

    def __delitem__(self, key: str) -> None:
        k = key.lower().encode("latin-1")
        self._raw = [(n, v) for n, v in self._raw if n != k]

    def add(self, key: str, value: Any) -> None:
        """Append a value without replacing existing ones (``Set-Cookie``, ``Vary``)."""
        self._raw.append(encode_header(key, value))

    append = add

    def setdefault(self, key: str, value: Any) -> str:  # type: ignore[override]
        if key not in self:
            self[key] = value
        return self[key]

    def update(self, other: Mapping[str, Any]) -> None:
        """Set every header of ``other``."""
        for k, v in other.items():
            self[k] = v

    def add_vary(self, value: str) -> None:
        """Add a token to ``Vary`` unless it is already there."""
        if not any(n == b"vary" for n, _ in self._raw):
            self._raw.append(encode_header("vary", value))  # PERF: the common case
            return
        current = [t.strip().lower() for t in ",".join(self.getall("vary")).split(",") if t.strip()]
        if value.lower() not in current and "*" not in current:
            joined = ", ".join([*self.getall("vary"), value]) if current else value
            self["vary"] = joined


class QueryParams(Mapping[str, str]):
    """Multi-valued query string: ``get`` gives the first value, ``getall`` all."""

    __slots__ = ("_dict", "_list")

    def __init__(self, query: str | bytes | Iterable[tuple[str, str]] | Mapping[str, Any] = "") -> None:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if isinstance(query, str):
            pairs = parse_qsl(query, keep_blank_values=True) if query else []
        elif isinstance(query, Mapping):
            pairs = [(str(k), str(v)) for k, v in query.items()]
        else:
            pairs = [(str(k), str(v)) for k, v in query]
        self._list: list[tuple[str, str]] = pairs
        d: dict[str, list[str]] = {}
        for k, v in pairs:
            d.setdefault(k, []).append(v)
        self._dict = d

    def __getitem__(self, key: str) -> str:
        return self._dict[key][0]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        values = self._dict.get(key)
        return values[0] if values else default

    def getall(self, key: str, default: Any = _MISSING) -> list[str]:
        """All values of ``key`` in order; ``[]`` when absent unless a default is given."""
        values = self._dict.get(key)
        if values is None:
            return [] if default is _MISSING else default
        return list(values)

    getlist = getall

    def multi_items(self) -> list[tuple[str, str]]:
        """Every pair, repeated keys included."""
        return list(self._list)

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def __repr__(self) -> str:
        return f"QueryParams({self._list!r})"


class State:
    """An attribute bag (``request.state``, ``app.state``)."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", dict(initial or {}))

    def __setattr__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(f"'State' object has no attribute {key!r}") from None

    def __delattr__(self, key: str) -> None:
        del self._state[key]

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` or ``default``."""
        return self._state.get(key, default)


class URL(str):
    """A URL that is still a ``str`` (comparisons, f-strings, JSON, ``startswith`` work
    as before) with its parts as attributes: ``scheme``, ``netloc``, ``hostname``,
    ``port``, ``path`` (as sent, percent-encoded), ``query``, ``fragment``.

    ``request.url`` is built by :meth:`build` only when read.  A malformed ``Host``
    never raises here: ``port`` is ``None`` when it is not a number in 0-65535.
    """

    _parts: tuple[str, str, str, str, str]

    def __new__(cls, url: str = "") -> URL:
        self = super().__new__(cls, url)
        scheme, sep, rest = url.partition("://")
        if not sep or "/" in scheme or "?" in scheme:
            scheme, rest = "", url
        netloc, path = (rest, "") if sep else ("", rest)
        if sep:
            cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
                      default=len(rest))
            netloc, path = rest[:cut], rest[cut:]
        path, _, fragment = path.partition("#")
        path, _, query = path.partition("?")
        return self._set(scheme, netloc, path, query, fragment)

    @classmethod
    def build(cls, scheme: str, netloc: str, path: str, query: str = "",
              fragment: str = "") -> URL:
        """``scheme://netloc/path?query#fragment`` from its parts (the one constructor
        ``request.url`` uses; the parts are kept as given, not re-parsed)."""
        text = f"{scheme}://{netloc}{path}"
        if query:
            text += "?" + query
        if fragment:
            text += "#" + fragment
        return str.__new__(cls, text)._set(scheme, netloc, path, query, fragment)

    def _set(self, scheme: str, netloc: str, path: str, query: str, fragment: str) -> URL:
        # NOTE: str subclasses cannot have slots of their own; the parts go in the instance
        # dict as one tuple (PERF: one store) and are read by the properties below
        self.__dict__["_parts"] = (scheme, netloc, path, query, fragment)
        return self

    @property
    def scheme(self) -> str:
        """``http``/``https``/... (lower-cased)."""
        return self._parts[0].lower()

    @property
    def netloc(self) -> str:
        """``host:port`` as sent (with ``user:password@`` when there is one)."""
        return self._parts[1]

    @property
    def path(self) -> str:
        """The path as sent (percent-encoded; ``request.path`` is the decoded one)."""
        return self._parts[2]

    @property
    def query(self) -> str:
        """The query string without ``?``."""
        return self._parts[3]

    @property
    def fragment(self) -> str:
        return self._parts[4]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("URL is immutable; use .replace(...)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (URL, (str(self),))

    @property
    def _hostport(self) -> tuple[str, str]:
        host = self.netloc.rpartition("@")[2]
        if host.startswith("["):  # an IPv6 literal
            end = host.find("]")
            if end < 0:
                return host, ""
            rest = host[end + 1:]
            return host[: end + 1], rest[1:] if rest.startswith(":") else ""
        name, sep, port = host.rpartition(":")
        return (name, port) if sep else (host, "")

    @property
    def hostname(self) -> str | None:
        """The host, lower-cased, without userinfo, port or IPv6 brackets."""
        host = self._hostport[0].strip("[]").lower()
        return host or None

    @property
    def port(self) -> int | None:
        """The explicit port, or ``None`` (absent or not a number in 0-65535)."""
        port = self._hostport[1]
        if port.isascii() and port.isdigit() and int(port) <= 65535:
            return int(port)
        return None

    @property
    def username(self) -> str | None:
        user, sep, _ = self.netloc.rpartition("@")
        return user.partition(":")[0] if sep else None

    @property
    def password(self) -> str | None:
        user, sep, _ = self.netloc.rpartition("@")
        _name, colon, password = user.partition(":")
        return password if sep and colon else None

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, **parts: Any) -> URL:
        """A new URL with some parts changed: ``scheme``, ``netloc``, ``path``, ``query``,
        ``fragment``, or ``hostname``/``port`` (which rebuild ``netloc``)."""
        unknown = set(parts) - {"scheme", "netloc", "path", "query", "fragment", "hostname",
                                "port"}
        if unknown:
            raise TypeError(f"URL.replace() got unknown parts: {sorted(unknown)}")
        if "hostname" in parts or "port" in parts:
            host = parts.pop("hostname", None) or self._hostport[0]
            port = parts.pop("port", self.port)
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            user = self.netloc.rpartition("@")[0]
            netloc = host if port is None else f"{host}:{int(port)}"
            parts["netloc"] = f"{user}@{netloc}" if user else netloc
        current = {"scheme": self.scheme, "netloc": self.netloc, "path": self.path,
                   "query": self.query, "fragment": self.fragment}
        return URL.build(**{**current, **parts})

    def include_query_params(self, **params: Any) -> URL:
        """A new URL with ``params`` set in the query (replacing same-named ones)."""
        from urllib.parse import parse_qsl, urlencode

        pairs = [(k, v) for k, v in parse_qsl(self.query, keep_blank_values=True)
                 if k not in params]
        pairs += [(k, str(v)) for k, v in params.items()]
        return self.replace(query=urlencode(pairs))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"
