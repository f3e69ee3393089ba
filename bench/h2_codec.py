"""CPU of the HTTP/2 codec alone per request (issue #24 part 3): no sockets, no app.

    python bench/h2_codec.py                    # µs per request, compiled and pure
    python bench/h2_codec.py --callgrind        # instructions per request (valgrind)

An ``h2`` client writes ``--requests`` GET requests (the header block h2load sends,
``--streams`` per read, END_STREAM on HEADERS); the server side runs what
``ember.http.h2`` asks of the codec per request: ``receive_data``, then
``send_headers`` (the five response fields a plain-text answer has) and
``send_data(END_STREAM)`` per stream, then one ``data_to_send`` per read.  With
``--callgrind`` each mode runs twice under callgrind (``--requests`` and a third of
it) and the difference is divided by the difference in requests, so imports and
setup cancel out.  Wall-clock figures on a shared machine move by tens of percent;
instruction counts by well under one.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1:8000"),
            (b":path", b"/hello"), (b"user-agent", b"h2load nghttp2/1.52.0")]


def make_wire(requests: int, streams: int) -> tuple[bytes, list[bytes]]:
    """The client preface and one chunk of HEADERS frames per read."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                  header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    preface = client.data_to_send()
    reads, sid = [], 1
    for _ in range(requests // streams):
        for _ in range(streams):
            client.send_headers(sid, _REQUEST, end_stream=True)
            sid += 2
        reads.append(client.data_to_send())
        client.streams.clear()  # never answered: keep h2's bookkeeping flat
    return preface, reads


def serve(preface: bytes, reads: list[bytes]) -> None:
    """The codec's share of answering every request."""
    from ember.http import h2conn

    conn = h2conn.H2Connection(max_concurrent_streams=100, max_header_list_size=16384,
                               initial_window_size=256 * 1024)
    conn.initiate_connection()
    conn.receive_data(preface)
    conn.data_to_send()
    date = b"Mon, 07 Dec 2026 15:00:00 GMT"
    received = h2conn.RequestReceived
    for data in reads:
        for event in conn.receive_data(data):
            if type(event) is received:
                sid = event.stream_id
                conn.send_headers(sid, [(b":status", b"200"), (b"server", b"ember"),
                                        (b"date", date),
                                        (b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", b"13")])
                conn.send_data(sid, b"Hello, World!", end_stream=True)
        conn.data_to_send()


def child(path: str, timed: bool) -> None:
    with open(path, "rb") as f:
        preface, reads = pickle.load(f)
    from ember.http import h2conn

    if not timed:
        serve(preface, reads)
        return
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        serve(preface, reads)
        best = min(best, time.perf_counter() - start)
    count = len(reads)
    print(f"{h2conn._impl.__name__}: {best / (count * _STREAMS) * 1e6:.2f} µs per request "
          "(best of 5)")


_STREAMS = 10


def main() -> None:
    global _STREAMS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--streams", type=int, default=10, help="streams per read")
    ap.add_argument("--modes", default="compiled,pure")
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--timed", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    _STREAMS = args.streams
    if args.child:
        child(args.child, args.timed)
        return
    tmp = Path(tempfile.mkdtemp(prefix="h2codec"))
    sizes = [args.requests, args.requests // 3] if args.callgrind else [args.requests]
    for size in sizes:
        with open(tmp / f"{size}.pkl", "wb") as f:
            pickle.dump(make_wire(size, args.streams), f)
    for mode in args.modes.split(","):
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        if mode == "pure":
            env["EMBER_NO_EXTENSIONS"] = "1"
        cmd = [sys.executable, __file__, "--streams", str(args.streams), "--child"]
        if not args.callgrind:
            subprocess.run([*cmd, str(tmp / f"{args.requests}.pkl"), "--timed"], env=env,
                           check=True)
            continue
        counts = []
        for size in sizes:
            out = subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=no",
                                  f"--callgrind-out-file={tmp / 'cg.out'}", *cmd,
                                  str(tmp / f"{size}.pkl")], env=env, capture_output=True,
                                 text=True, check=True).stderr
            counts.append(int(re.search(r"Collected : (\d+)", out).group(1)))
        per = (counts[0] - counts[1]) / (sizes[0] - sizes[1])
        print(f"{mode}: {per:,.0f} instructions per request (codec only)")


if __name__ == "__main__":
    main()
