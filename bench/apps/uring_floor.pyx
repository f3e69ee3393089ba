# cython: language_level=3, boundscheck=False, wraparound=False
"""The io_uring floor: the same fixed answers as ``epoll_floor.pyx``, through liburing.

Built by ``bench/io_layer.py`` (needs ``liburing-dev``; links ``-luring``), then
``serve(lfd, mode, handler, num_bufs, buf_size)``.  One thread, one ring: a multishot
``accept`` on the listening socket; per connection a ``recv`` into its own buffer of
``buf_size`` bytes; on completion count the request heads (as ``epoll_floor``), build the
answers (``mode``: ``plain`` in C, ``call`` through a Python function, ``coro`` through a
coroutine driven with ``PyIter_Send``) and submit one ``send`` together with the next
``recv``.  Completions are reaped in batches and every batch's new submissions go
in with one ``io_uring_submit_and_wait_timeout`` (one syscall per loop turn for all connections,
where epoll pays epoll_wait + read + write per ready connection).  ``num_bufs`` bounds the
connections served at once (their buffers are allocated on accept).

Not a server anyone should use: no HTTP parsing, no timeouts, bench-only.
"""

from cpython.object cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint64_t

cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(PyObject *iter, PyObject *arg, PyObject **presult)
    void Py_DECREF(PyObject *o)
    int PyErr_CheckSignals() except -1

cdef extern from "<string.h>":
    void *memmem(const void *h, size_t hn, const void *n, size_t nn)

cdef extern from "<unistd.h>":
    int close(int fd)

cdef extern from "<sys/socket.h>":
    int shutdown(int fd, int how)
    enum:
        SHUT_RDWR

cdef extern from "<liburing.h>":
    struct io_uring:
        pass
    struct io_uring_sqe:
        pass
    struct io_uring_cqe:
        uint64_t user_data
        int res
        unsigned flags
    int io_uring_queue_init(unsigned entries, io_uring *ring, unsigned flags)
    io_uring_sqe *io_uring_get_sqe(io_uring *ring)
    void io_uring_prep_multishot_accept(io_uring_sqe *sqe, int fd, void *addr, void *addrlen,
                                        int flags)
    void io_uring_prep_recv(io_uring_sqe *sqe, int fd, void *buf, size_t len, int flags)
    void io_uring_prep_send(io_uring_sqe *sqe, int fd, const void *buf, size_t len, int flags)
    void io_uring_sqe_set_data64(io_uring_sqe *sqe, uint64_t data)
    struct __kernel_timespec:
        long long tv_sec
        long long tv_nsec
    int io_uring_submit_and_wait_timeout(io_uring *ring, io_uring_cqe **cqe_ptr,
                                         unsigned wait_nr, __kernel_timespec *ts,
                                         void *sigmask) nogil
    unsigned io_uring_peek_batch_cqe(io_uring *ring, io_uring_cqe **cqes, unsigned count)
    void io_uring_cq_advance(io_uring *ring, unsigned nr)
    enum:
        IORING_CQE_F_MORE

DEF MAXFD = 65536
DEF BATCH = 256
DEF OP_ACCEPT = 1
DEF OP_RECV = 2
DEF OP_SEND = 3

_HEAD = (b"HTTP/1.1 200 OK\r\nserver: floor\r\ndate: Mon, 30 Nov 2026 00:00:00 GMT\r\n"
         b"content-type: %s\r\ncontent-length: %d\r\n\r\n")


def _answer(ctype, body):
    return _HEAD % (ctype, len(body)) + body


HELLO = _answer(b"text/plain; charset=utf-8", b"Hello, World!")
JSON = _answer(b"application/json", b'{"message":"Hello, World!"}')
USER = _answer(b"application/json", b'{"id":42}')

cdef io_uring ring
cdef unsigned char matched[MAXFD]
cdef char *rbufs[MAXFD]
cdef char *wbufs[MAXFD]
cdef size_t wlen[MAXFD]
cdef size_t woff[MAXFD]
cdef unsigned char sending[MAXFD]
cdef unsigned char closing[MAXFD]
cdef int pend[MAXFD]
cdef size_t bufsz = 4096
cdef size_t wbufsz = 65536
cdef int live = 0
cdef int max_live = 1024


cdef inline int count_heads(int fd, const char *p, ssize_t n):
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
    cdef PyObject *res = NULL
    cdef PySendResult r = PyIter_Send(<PyObject *>coro, <PyObject *>None, &res)
    if r == PYGEN_RETURN:
        out = <object>res
        Py_DECREF(res)
        return out
    if r == PYGEN_NEXT:
        Py_DECREF(res)
        raise RuntimeError("the floor's handler suspended")
    raise


cdef inline io_uring_sqe *sqe_or_die() except NULL:
    cdef io_uring_sqe *sqe = io_uring_get_sqe(&ring)
    if sqe == NULL:
        raise RuntimeError("submission queue full")
    return sqe


cdef int arm_recv(int fd) except -1:
    cdef io_uring_sqe *sqe = sqe_or_die()
    io_uring_prep_recv(sqe, fd, rbufs[fd], bufsz, 0)
    io_uring_sqe_set_data64(sqe, (<uint64_t>fd << 3) | OP_RECV)
    return 0


cdef int arm_send(int fd) except -1:
    cdef io_uring_sqe *sqe = sqe_or_die()
    io_uring_prep_send(sqe, fd, wbufs[fd] + woff[fd], wlen[fd] - woff[fd], 0)
    io_uring_sqe_set_data64(sqe, (<uint64_t>fd << 3) | OP_SEND)
    return 0


cdef int arm_accept(int lfd) except -1:
    cdef io_uring_sqe *sqe = sqe_or_die()
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0)
    io_uring_sqe_set_data64(sqe, (<uint64_t>lfd << 3) | OP_ACCEPT)
    return 0


cdef void drop(int fd):
    global live
    free(rbufs[fd])
    free(wbufs[fd])
    rbufs[fd] = NULL
    wbufs[fd] = NULL
    live -= 1
    close(fd)


cdef int answer_heads(int fd, int n, int m, object handler) except -1:
    """Answer the heads in rbufs[fd][:n]: one send, and the next recv armed with it.

    PERF: the recv goes in with the send (not after its completion): one ring round per
    request instead of two.  Data that arrives while the send is in flight waits in
    ``pend`` (the recv buffer is not reused until then).
    """
    cdef int heads = count_heads(fd, rbufs[fd], n)
    cdef size_t alen, off = 0
    cdef int k
    cdef bytes answer
    if heads == 0:
        arm_recv(fd)
        return 0
    answer = pick(rbufs[fd], n)
    alen = PyBytes_GET_SIZE(answer)
    if heads * alen > wbufsz:
        heads = wbufsz // alen  # NOTE: bench traffic never gets here
    for k in range(heads):
        if m == 1:
            answer = handler(answer)
        elif m == 2:
            answer = drive(handler(answer))
        memcpy(wbufs[fd] + off, PyBytes_AS_STRING(answer), alen)
        off += alen
    wlen[fd] = off
    woff[fd] = 0
    sending[fd] = 1
    arm_send(fd)
    arm_recv(fd)
    return 0


def serve(int lfd, str mode, handler=None, int num_bufs=1024, int buf_size=4096):
    """Serve forever on the listening socket ``lfd``; raises OSError when io_uring is refused."""
    global bufsz, max_live, live
    cdef int m = {"plain": 0, "call": 1, "coro": 2}[mode]
    cdef int rc = io_uring_queue_init(4096, &ring, 0)
    if rc < 0:
        raise OSError(-rc, "io_uring_queue_init failed")
    bufsz = buf_size
    max_live = num_bufs
    cdef io_uring_cqe *cqes[BATCH]
    cdef io_uring_cqe *cqe
    cdef io_uring_cqe *first
    cdef __kernel_timespec ts
    ts.tv_sec = 0
    ts.tv_nsec = 100_000_000
    cdef unsigned got, i
    cdef int fd, op, res
    arm_accept(lfd)
    while True:
        with nogil:
            rc = io_uring_submit_and_wait_timeout(&ring, &first, 1, &ts, NULL)
        if rc < 0:
            # -EINTR or -ETIME (100 ms idle): let SIGTERM stop the server; under valgrind
            # a signal does not interrupt the wait (callgrind runs)
            PyErr_CheckSignals()
        got = io_uring_peek_batch_cqe(&ring, cqes, BATCH)
        for i in range(got):
            cqe = cqes[i]
            fd = <int>(cqe.user_data >> 3)
            op = <int>(cqe.user_data & 7)
            res = cqe.res
            if op == OP_ACCEPT:
                if not cqe.flags & IORING_CQE_F_MORE:
                    arm_accept(lfd)  # the multishot accept ended: re-arm it
                if res < 0:
                    continue
                if res >= MAXFD or live >= max_live:
                    close(res)
                    continue
                live += 1
                matched[res] = 0
                sending[res] = closing[res] = 0
                pend[res] = 0
                rbufs[res] = <char *>malloc(bufsz)
                wbufs[res] = <char *>malloc(wbufsz)
                arm_recv(res)
            elif op == OP_RECV:
                if res <= 0:
                    if sending[fd]:
                        closing[fd] = 1  # drop once the send in flight completes
                    else:
                        drop(fd)
                    continue
                if sending[fd]:
                    pend[fd] = res  # pipelined data while answering: handled after the send
                else:
                    answer_heads(fd, res, m, handler)
            else:  # OP_SEND
                if res < 0:
                    sending[fd] = 0
                    closing[fd] = 1
                    shutdown(fd, SHUT_RDWR)  # completes the recv in flight, which drops
                    continue
                woff[fd] += res
                if woff[fd] < wlen[fd]:
                    arm_send(fd)
                    continue
                sending[fd] = 0
                if closing[fd]:
                    drop(fd)
                elif pend[fd]:
                    res = pend[fd]
                    pend[fd] = 0
                    answer_heads(fd, res, m, handler)
        io_uring_cq_advance(&ring, got)
