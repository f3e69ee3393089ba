# Augmenting declarations for _wsframes_py.py compiled as _wsframes_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; _c_scan is the C twin of scan_fragments' loop.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize

cpdef Py_ssize_t scan_fragments(bytearray buf, bytearray out, Py_ssize_t limit,
                                Py_ssize_t max_frames) except -1


cdef inline Py_ssize_t _c_scan(bytearray buf, bytearray out, Py_ssize_t limit,
                              Py_ssize_t max_frames) except -1:
    cdef Py_ssize_t end = PyByteArray_GET_SIZE(buf)
    cdef Py_ssize_t start = PyByteArray_GET_SIZE(out)
    cdef Py_ssize_t pos = 0, total = start, frames = 0, n, i
    cdef const unsigned char* src = <const unsigned char*>PyByteArray_AS_STRING(buf)
    cdef unsigned char* dst
    # NOTE: first pass: how far the run goes and how many payload bytes it has
    while pos + 6 <= end and frames < max_frames:
        if src[pos] != 0 or not src[pos + 1] & 0x80:
            break
        n = src[pos + 1] & 0x7F
        if n > 125 or pos + 6 + n > end or total + n > limit:
            break
        total += n
        pos += 6 + n
        frames += 1
    if total == start:
        return pos
    PyByteArray_Resize(out, total)
    dst = <unsigned char*>PyByteArray_AS_STRING(out) + start
    src = <const unsigned char*>PyByteArray_AS_STRING(buf)
    end = pos
    pos = 0
    while pos < end:
        n = src[pos + 1] & 0x7F
        for i in range(n):
            dst[i] = src[pos + 6 + i] ^ src[pos + 2 + (i & 3)]
        dst += n
        pos += 6 + n
    return end
