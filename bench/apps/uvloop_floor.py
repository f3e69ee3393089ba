"""The floor of any HTTP server written as a Python protocol on uvloop.

    python uvloop_floor.py PORT [plain|task|eager] [uvloop|rloop|asyncio]

No parsing, no routing, no objects: each complete request head (``\\r\\n\\r\\n``) gets a
fixed answer with the same body as Ember's bench app (``/json``, ``/users/42``, else
``/hello``).  ``plain`` (default) writes the answers from ``data_received``; ``task``
runs a trivial coroutine handler per request in its own asyncio Task and writes from
its done callback (what a framework that runs every handler in a Task pays at least);
``eager`` is ``task`` with ``asyncio.eager_task_factory`` (Python 3.12+).  Not a server
anyone should use: it shows what uvloop and the kernel cost per request.  Any Python
with uvloop installed.  The third argument swaps the event loop (``rloop``: the Rust
asyncio loop, ``pip install rloop``; ``asyncio``: the default selector loop) to measure
other I/O layers with the same code and answers (bench/io_layer.py).
"""

import asyncio
import signal
import sys

_HEAD = (b"HTTP/1.1 200 OK\r\nserver: floor\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
         b"content-type: %s\r\ncontent-length: %d\r\n\r\n")


def _answer(ctype, body):
    return _HEAD % (ctype, len(body)) + body


HELLO = _answer(b"text/plain; charset=utf-8", b"Hello, World!")
JSON = _answer(b"application/json", b'{"message":"Hello, World!"}')
USER = _answer(b"application/json", b'{"id":42}')


def pick(data):
    return JSON if b" /json " in data else USER if b" /users/" in data else HELLO


class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.tail = b""

    def data_received(self, data):
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4:] if n else data
        if n:
            self.t.write(pick(data) * n)


async def handler(answer):
    return answer


class FloorTask(Floor):
    def connection_made(self, transport):
        super().connection_made(transport)
        self.loop = asyncio.get_running_loop()

    def data_received(self, data):
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4:] if n else data
        answer = pick(data)
        for _ in range(n):
            task = self.loop.create_task(handler(answer))
            task.add_done_callback(self.done)

    def done(self, task):
        self.t.write(task.result())


async def main(port, mode):
    loop = asyncio.get_running_loop()
    if mode == "eager":
        # NOTE: not asyncio.eager_task_factory itself: with uvloop 0.23 on 3.13 it fails
        # ("unexpected keyword argument 'eager_start'"); this is the same factory.
        def eager(loop, coro, **kwargs):
            kwargs.pop("eager_start", None)
            return asyncio.Task(coro, loop=loop, eager_start=True, **kwargs)  # 3.12+

        loop.set_task_factory(eager)
    proto = Floor if mode == "plain" else FloorTask
    await loop.create_server(proto, "127.0.0.1", port, backlog=4096)
    # NOTE: not srv.serve_forever(): rloop 0.5.0 starts serving a second time there,
    # gets EEXIST from epoll_ctl and closes the listening socket.  SIGINT/SIGTERM end
    # the run cleanly (callgrind writes its counts at exit: bench/io_layer.py).
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop


def new_loop(name):
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop

        return rloop.new_event_loop()
    if name == "asyncio":
        return asyncio.new_event_loop()
    raise SystemExit(f"unknown loop {name!r}: uvloop, rloop or asyncio")


if __name__ == "__main__":
    loop = new_loop(sys.argv[3] if len(sys.argv) > 3 else "uvloop")
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "plain"))
