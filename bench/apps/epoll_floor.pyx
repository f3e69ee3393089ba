# cython: language_level=3, boundscheck=False, wraparound=False
"""The floor of "parse and write in C, call Python only for the handler": bare epoll.

Built by ``bench/io_layer.py`` (cython + cc into a temp dir; bench-only, not in the
package), then ``serve(port, mode)``.  One thread, level-triggered epoll, nonblocking
``accept4``, ``read`` into a 64 KiB buffer, count complete request heads (``\\r\\n\\r\\n``,
carried across reads), write the same fixed answers as ``uvloop_floor.py`` in one
``write`` per read (``/json``, ``/users/``, else ``/hello``, picked from the read).

Modes (what crosses into Python per request):

- ``plain``: nothing; C only.
- ``call``: a trivial Python function ``handler(answer) -> answer`` per request; its
  result is what is written (the cost of calling Python once per request).
- ``coro``: a trivial coroutine ``async def handler(answer): return answer`` created and
  driven to completion with ``PyIter_Send`` (no asyncio Task, no event loop): what an own
  loop pays per handler when it owns the coroutine.  Ember's handlers need a real asyncio
  Task on a real asyncio loop (``asyncio.current_task()``, ``asyncio.timeout``, anyio,
  httpx); an own loop would have to be a full ``asyncio.AbstractEventLoop`` (futures,
  call_soon/call_later, add_reader for client libraries, executors, signals) creating
  ``asyncio.Task`` objects, so this row is a lower bound, not a design.

Not a server anyone should use: no HTTP parsing, partial writes are queued in a Python
bytes per connection (rare at these sizes), no timeouts.
"""

from cpython.object cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.string cimport memcpy
from libc.errno cimport errno, EAGAIN, EINTR

cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(PyObject *iter, PyObject *arg, PyObject **presult)
    void Py_DECREF(PyObject *o)
    int PyErr_CheckSignals() except -1

cdef extern from "<sys/epoll.h>":
    cdef union epoll_data_t:
        int fd
    cdef struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout) nogil
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL

cdef extern from "<sys/socket.h>":
    int accept4(int fd, void *addr, void *alen, int flags)
    enum:
        SOCK_NONBLOCK
        SOCK_CLOEXEC

cdef extern from "<string.h>":
    void *memmem(const void *h, size_t hn, const void *n, size_t nn)

cdef extern from "<unistd.h>":
    ssize_t read(int fd, void *buf, size_t n)
    ssize_t write(int fd, const void *buf, size_t n)
    int close(int fd)

DEF MAXEV = 512
DEF BUFSZ = 65536
DEF MAXFD = 65536

_HEAD = (b"HTTP/1.1 200 OK\r\nserver: floor\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
         b"content-type: %s\r\ncontent-length: %d\r\n\r\n")


def _answer(ctype, body):
    return _HEAD % (ctype, len(body)) + body


HELLO = _answer(b"text/plain; charset=utf-8", b"Hello, World!")
JSON = _answer(b"application/json", b'{"message":"Hello, World!"}')
USER = _answer(b"application/json", b'{"id":42}')

cdef unsigned char matched[MAXFD]  # how much of \r\n\r\n the last read ended with
cdef char rbuf[BUFSZ]
cdef char wbuf[BUFSZ * 4]
cdef dict pending = {}  # fd -> bytes not yet written (EAGAIN)


cdef inline int count_heads(int fd, const char *p, ssize_t n):
    """Complete heads in p[:n], continuing the \\r\\n\\r\\n match of the previous read."""
    cdef int state = matched[fd]
    cdef int heads = 0
    cdef ssize_t i
    cdef char c
    for i in range(n):
        c = p[i]
        if c == b'\r':
            state = 3 if state == 2 else 1
        elif c == b'\n':
            if state == 1:
                state = 2
            elif state == 3:
                heads += 1
                state = 0
            else:
                state = 0
        else:
            state = 0
    matched[fd] = state
    return heads


cdef object pick(const char *p, ssize_t n):
    if memmem(p, n, b" /json ", 7) != NULL:
        return JSON
    if memmem(p, n, b" /users/", 8) != NULL:
        return USER
    return HELLO


cdef object drive(object coro):
    """Run a coroutine that never suspends to completion with PyIter_Send."""
    cdef PyObject *res = NULL
    cdef PySendResult r = PyIter_Send(<PyObject *>coro, <PyObject *>None, &res)
    if r == PYGEN_RETURN:
        out = <object>res
        Py_DECREF(res)
        return out
    if r == PYGEN_NEXT:
        Py_DECREF(res)
        raise RuntimeError("the floor's handler suspended")
    raise  # PYGEN_ERROR: the exception is set


cdef int flush(int ep, int fd, bytes data) except -1:
    cdef epoll_event ev
    cdef ssize_t n = PyBytes_GET_SIZE(data)
    cdef ssize_t w = write(fd, PyBytes_AS_STRING(data), n)
    if w < 0:
        if errno != EAGAIN and errno != EINTR:
            return -2
        w = 0
    if w < n:
        pending[fd] = data[w:]
        ev.events = EPOLLIN | EPOLLOUT
        ev.data.fd = fd
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev)
    return 0


cdef void drop(int ep, int fd):
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL)
    pending.pop(fd, None)
    close(fd)


def serve(int lfd, str mode, handler=None):
    """Serve forever on the listening socket fd ``lfd`` (nonblocking)."""
    cdef int m = {"plain": 0, "call": 1, "coro": 2}[mode]
    cdef int ep = epoll_create1(0)
    cdef epoll_event ev
    cdef epoll_event events[MAXEV]
    cdef int nev, i, fd, cfd, heads, k
    cdef ssize_t n, alen, off
    cdef bytes answer, data
    ev.events = EPOLLIN
    ev.data.fd = lfd
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)
    while True:
        with nogil:
            nev = epoll_wait(ep, events, MAXEV, 100)
        if nev <= 0:
            # NOTE: a 100 ms timeout, not -1: under valgrind epoll_wait is restarted after
            # a signal, so an idle server checks for SIGTERM itself (callgrind runs)
            PyErr_CheckSignals()
            continue
        for i in range(nev):
            fd = events[i].data.fd
            if fd == lfd:
                while True:
                    cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
                    if cfd < 0:
                        break
                    if cfd >= MAXFD:
                        close(cfd)
                        continue
                    matched[cfd] = 0
                    ev.events = EPOLLIN
                    ev.data.fd = cfd
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev)
                continue
            if events[i].events & EPOLLOUT:
                data = pending.pop(fd, None)
                ev.events = EPOLLIN
                ev.data.fd = fd
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev)
                if data is not None and flush(ep, fd, data) == -2:
                    drop(ep, fd)
                    continue
            if not events[i].events & ~EPOLLOUT:
                continue
            n = read(fd, rbuf, BUFSZ)
            if n <= 0:
                if n < 0 and (errno == EAGAIN or errno == EINTR):
                    continue
                drop(ep, fd)
                continue
            heads = count_heads(fd, rbuf, n)
            if heads == 0:
                continue
            answer = pick(rbuf, n)
            alen = PyBytes_GET_SIZE(answer)
            if heads * alen > BUFSZ * 4:
                heads = (BUFSZ * 4) // alen  # NOTE: bench traffic never gets here
            off = 0
            for k in range(heads):
                if m == 1:
                    answer = handler(answer)
                elif m == 2:
                    answer = drive(handler(answer))
                memcpy(wbuf + off, PyBytes_AS_STRING(answer), alen)
                off += alen
            if fd in pending:
                data = pending.pop(fd) + PyBytes_FromStringAndSize(wbuf, off)
            else:
                data = None
            if data is None:
                n = write(fd, wbuf, off)
                if n == off:
                    continue
                if n < 0:
                    if errno != EAGAIN and errno != EINTR:
                        drop(ep, fd)
                        continue
                    n = 0
                data = PyBytes_FromStringAndSize(wbuf + n, off - n)
            if flush(ep, fd, data) == -2:
                drop(ep, fd)
