# Augmenting declarations for _heads_py.py compiled as _heads_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  check_head is cimported by the compiled connection
# (a C call per request head).
cimport cython

cdef bytes _HOST_CHARS

cpdef bint _valid_host(bytes value) except -1

@cython.locals(hosts=Py_ssize_t)
cpdef check_head(method, minor, list headers, chunked)


cdef inline int _c_host_check(bytes value, bytes table) noexcept:
    """1: a valid reg-name[:port]; -1: not sure (an IP-literal...), the regex decides;
    0: invalid."""
    cdef const unsigned char* buf = <const unsigned char*>(<char*>value)
    cdef const unsigned char* ok = <const unsigned char*>(<char*>table)
    cdef Py_ssize_t n = len(value)
    cdef Py_ssize_t i = 0
    if n and buf[0] == 91:  # "["
        return -1
    while i < n and ok[buf[i]]:
        i += 1
    if i == n:
        return 1
    if buf[i] != 58:  # ":"
        return 0
    i += 1
    while i < n and 48 <= buf[i] <= 57:
        i += 1
    return 1 if i == n else 0
