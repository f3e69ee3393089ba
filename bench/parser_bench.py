"""Parser microbenchmark: µs per request for Ember's compiled and pure parsers and llhttp.

    python bench/parser_bench.py [--n 20000] [--batch 1]

Each parser gets the same bytes: a wrk-style request (2 headers) and a browser-style one
(10 headers), fed one request per ``feed_data`` call (``--batch 1``, the keep-alive case)
or ``--batch`` pipelined requests per call.  The llhttp row is httptools with an owner that
collects the URL and the header pairs into a list (what a server on llhttp has to do to get
what Ember's parser hands over).  Best of 5 repetitions; in-process, no sockets.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from ember._compat import is_compiled

WRK = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER = (b"GET /api/users/42?expand=1 HTTP/1.1\r\nHost: example.com\r\n"
           b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
           b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
           b"Connection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n"
           b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\n"
           b"Cache-Control: max-age=0\r\n\r\n")


class EmberOwner:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_headers(self, method, target, minor, headers, keep_alive, chunked, length,
                   upgrade, expect):
        return False

    def on_body(self, chunk):
        pass

    def on_message_complete(self):
        self.count += 1


class LlhttpOwner:
    __slots__ = ("count", "headers", "url")

    def __init__(self) -> None:
        self.count = 0
        self.url = b""
        self.headers = []

    def on_message_begin(self):
        self.headers = []

    def on_url(self, url):
        self.url = url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_headers_complete(self):
        pass

    def on_message_complete(self):
        self.count += 1


def bench_ember(module, request: bytes, n: int, batch: int) -> float:
    owner = EmberOwner()
    parser = module.HttpRequestParser(owner)
    chunk = request * batch
    feeds = n // batch
    t0 = time.perf_counter()
    for _ in range(feeds):
        parser.feed_data(chunk)
    dt = time.perf_counter() - t0
    assert owner.count == feeds * batch
    return dt / (feeds * batch) * 1e6


def bench_llhttp(request: bytes, n: int, batch: int) -> float:
    import httptools

    owner = LlhttpOwner()
    parser = httptools.HttpRequestParser(owner)
    chunk = request * batch
    feeds = n // batch
    t0 = time.perf_counter()
    for _ in range(feeds):
        parser.feed_data(chunk)
        parser.get_method()
    dt = time.perf_counter() - t0
    assert owner.count == feeds * batch
    return dt / (feeds * batch) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = [("pure", importlib.import_module("ember.http._parser_py"))]
    compiled = importlib.import_module("ember.http._parser_c")
    if is_compiled(compiled):
        rows.insert(0, ("compiled", compiled))
    else:
        print("(compiled parser not built: run python setup.py build_ext --inplace)")
    for name, request in (("wrk (2 headers)", WRK), ("browser (10 headers)", BROWSER)):
        results = {}
        for label, module in rows:
            results[label] = min(bench_ember(module, request, args.n, args.batch)
                                 for _ in range(args.repeat))
        try:
            results["llhttp"] = min(bench_llhttp(request, args.n, args.batch)
                                    for _ in range(args.repeat))
        except ImportError:
            pass
        ref = results.get("llhttp")
        cells = "  ".join(f"{k} {v:.2f} µs" + (f" ({v / ref:.2f}× llhttp)" if ref and k != "llhttp"
                                                 else "") for k, v in results.items())
        print(f"{name:<22} batch {args.batch:<3} {cells}")


if __name__ == "__main__":
    main()
