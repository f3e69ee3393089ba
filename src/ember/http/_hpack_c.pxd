# Augmenting declarations for _hpack_py.py compiled as _hpack_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; this file only adds C types.
cimport cython

cdef Py_ssize_t _MAX_INT_BYTES, _STATIC_LEN, _CACHED_BLOCKS, _CACHED_BLOCK
cdef tuple STATIC_TABLE, _HUFFMAN
cdef dict _STATIC_PAIR, _STATIC_NAME, _STATIC_BY_NAME
cdef list _HCODE, _HLEN, _HNEXT, _HSYM, _HACCEPT

@cython.locals(acc=cython.ulonglong, bits=Py_ssize_t, b=cython.uchar, n=Py_ssize_t)
cpdef bytes huffman_encode(bytes data)

@cython.locals(bits=Py_ssize_t, b=cython.uchar)
cpdef Py_ssize_t huffman_encoded_length(bytes data)

@cython.locals(state=Py_ssize_t, k=Py_ssize_t, s=Py_ssize_t, b=cython.uchar,
               out=bytearray)
cpdef bytes huffman_decode(bytes data)

@cython.locals(limit=Py_ssize_t)
cpdef encode_integer(bytearray out, Py_ssize_t value, int prefix_bits, int flags)

@cython.locals(end=Py_ssize_t, limit=Py_ssize_t, value=Py_ssize_t, shift=Py_ssize_t,
               count=Py_ssize_t, b=Py_ssize_t)
cpdef tuple decode_integer(bytes data, Py_ssize_t pos, int prefix_bits)

cdef _encode_string(bytearray out, bytes data, bint huffman)


@cython.final
cdef class Decoder:
    cdef list _entries
    cdef Py_ssize_t _size
    cdef Py_ssize_t _max_size
    cdef public Py_ssize_t max_allowed_table_size
    cdef public Py_ssize_t max_header_list_size
    cdef Py_ssize_t _epoch
    cdef dict _cache

    @cython.locals(limit=Py_ssize_t, hit=tuple, epoch=Py_ssize_t, headers=list)
    cpdef list decode(self, object data, bint raw=*)

    @cython.locals(headers=list, pos=Py_ssize_t, end=Py_ssize_t, total=Py_ssize_t,
                   first=bint, b=Py_ssize_t, index=Py_ssize_t,
                   size=Py_ssize_t, name=bytes, value=bytes, entry=tuple)
    cdef list _decode(self, bytes data, Py_ssize_t limit)

    @cython.locals(huffman=Py_ssize_t, length=Py_ssize_t, raw=bytes)
    cdef tuple _string(self, bytes data, Py_ssize_t pos)

    @cython.locals(dyn=Py_ssize_t)
    cdef tuple _get(self, Py_ssize_t index)

    @cython.locals(size=Py_ssize_t)
    cdef _add(self, bytes name, bytes value)

    cdef _evict(self, Py_ssize_t room)


@cython.final
cdef class Encoder:
    cdef list _entries
    cdef dict _names
    cdef Py_ssize_t _inserted
    cdef Py_ssize_t _size
    cdef Py_ssize_t _max_size
    cdef Py_ssize_t _pending_min
    cdef Py_ssize_t _pending_final
    cdef Py_ssize_t _epoch
    cdef dict _cache

    @cython.locals(out=bytearray, indexable=bint)
    cpdef bytes encode(self, object headers, bint huffman=*)

    @cython.locals(hit=tuple, epoch=Py_ssize_t, pending=bint, block=bytes)
    cpdef bytes encode_cached(self, object key, object headers)

    @cython.locals(index=Py_ssize_t, name_index=Py_ssize_t, size=Py_ssize_t)
    cdef _field(self, bytearray out, bytes name, bytes value, bint indexable, bint huffman)

    @cython.locals(index=Py_ssize_t, number=Py_ssize_t, static=tuple, dynamic=list, values=dict)
    cdef Py_ssize_t _find(self, bytes name, bytes value) except? -1

    @cython.locals(number=Py_ssize_t, dynamic=list, values=dict)
    cdef _add(self, bytes name, bytes value, Py_ssize_t size)

    @cython.locals(number=Py_ssize_t, entry=tuple, name=bytes, value=bytes, dynamic=list, values=dict)
    cdef _evict(self, Py_ssize_t room)
