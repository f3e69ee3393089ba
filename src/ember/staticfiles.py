"""``app.mount_static(prefix, directory)``: a directory served on :class:`FileResponse`.

Every file answer is a :class:`~ember.files.FileResponse`, so ETag/Last-Modified,
304s, Range requests and HEAD behave as for any file response.  The path after
the prefix is untrusted: after percent-decoding, anything that would leave the
directory is a 404 — ``..`` segments (also ``%2e%2e``), absolute paths,
backslashes, NUL bytes — and so are hidden files and directories (a segment
starting with ``.``, except ``.well-known``: ``.env`` or ``.git`` must never leak).
Symlinks are followed only while their target stays inside the directory, unless
``follow_symlinks=True`` (then a link may point anywhere; ``..`` still cannot).

``html=True`` serves ``index.html`` for a directory, redirects ``/dir`` to
``/dir/`` (307, query kept), and answers misses with ``404.html`` when present.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ember.exceptions import ConfigError
from ember.files import FileResponse, safe_join
from ember.responses import JSONResponse, RedirectResponse, Response

_ALLOWED_HIDDEN = frozenset((".well-known",))


def _not_found() -> Response:
    return JSONResponse({"detail": "Not Found"}, 404)


class StaticFiles:
    """The handler of one static mount (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], *, html: bool = False,
                 follow_symlinks: bool = False, cache_control: str | None = None) -> None:
        path = os.fspath(directory)
        if not os.path.isdir(path):
            raise ConfigError(f"mount_static: {path!r} is not a directory")
        if cache_control is not None and (not isinstance(cache_control, str)
                                          or any(c in cache_control for c in "\r\n\x00")):
            raise ConfigError(f"cache_control must be a header value like 'public, "
                              f"max-age=3600', got {cache_control!r}")
        self.directory = os.path.realpath(path)
        self.html = bool(html)
        self.follow_symlinks = bool(follow_symlinks)
        self.headers = {"cache-control": cache_control} if cache_control else None

    def resolve(self, rel: str) -> str | None:
        """The file system path for the URL path ``rel`` (below the prefix), or None."""
        if any(part.startswith(".") and part not in _ALLOWED_HIDDEN
               for part in rel.split("/")):
            return None  # NOTE: '..', '.', hidden files
        if not self.follow_symlinks:
            return safe_join(self.directory, rel) if rel else self.directory
        if "\x00" in rel or "\\" in rel or os.path.isabs(rel) or rel.startswith("~"):
            return None
        full = os.path.normpath(os.path.join(self.directory, rel))
        if os.path.commonpath((self.directory, full)) != self.directory:
            return None
        return full

    def _file(self, path: str, status: int = 200) -> Response:
        return FileResponse(path, status_code=status, headers=self.headers)

    def _miss(self) -> Response:
        if self.html:
            page = self.resolve("404.html")
            if page is not None and os.path.isfile(page):
                return self._file(page, 404)
        return _not_found()

    async def __call__(self, request: Any) -> Response:
        rel = request.path_params.get("static_path", "")
        path = self.resolve(rel)
        if path is None:
            return _not_found()
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            return self._miss()
        if stat.S_ISDIR(mode):
            if not self.html:
                return _not_found()
            if not request.path.endswith("/"):
                raw = request.raw_path.decode("latin-1") + "/"
                query = request.query_string.decode("latin-1")
                return RedirectResponse(raw + ("?" + query if query else ""), 307)
            index = os.path.join(path, "index.html")
            if self.resolve(os.path.join(rel, "index.html").lstrip("/")) is None \
                    or not os.path.isfile(index):
                return self._miss()
            return self._file(index)
        if not stat.S_ISREG(mode) or rel.endswith("/"):  # NOTE: "file.js/" is not the file
            return self._miss()
        return self._file(path)


def mount_static(app: Any, prefix: str, directory: str | os.PathLike[str], *,
                 html: bool = False, follow_symlinks: bool = False,
                 cache_control: str | None = None, name: str | None = None) -> StaticFiles:
    """Register GET/HEAD routes serving ``directory`` under ``prefix``."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or "{" in prefix \
            or "}" in prefix or (prefix != "/" and prefix.endswith("/")):
        raise ConfigError(f"mount_static prefix must be a path like '/static' (starting with "
                          f"'/', no trailing '/', no parameters), got {prefix!r}")
    files = StaticFiles(directory, html=html, follow_symlinks=follow_symlinks,
                        cache_control=cache_control)

    async def static(request: Any) -> Response:
        return await files(request)
    label = name or f"static:{prefix}"
    static.__name__ = label
    base = prefix.rstrip("/")
    app._register(base + "/{static_path:path}", ("GET",), static, name=label,
                  include_in_schema=False)
    if base:
        app._register(base, ("GET",), static, name=label, include_in_schema=False)
    return files


__all__ = ["StaticFiles", "mount_static"]
