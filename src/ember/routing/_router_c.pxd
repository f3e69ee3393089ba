# Augmenting declarations for _router_py.py compiled as _router_c (Cython pure-Python mode).
# NOTE: the .py stays the reference; typed dict/list attributes turn the lookups into
# direct PyDict/PyList calls instead of generic attribute and method lookups.
cimport cython


@cython.final
cdef class _Node:
    cdef public dict static
    cdef public list params
    cdef public object catchall
    cdef public dict methods


@cython.final
cdef class Router:
    cdef dict _static
    cdef _Node _root
    cdef public list routes

    @cython.locals(table=dict, allowed=object, segments=list, params=dict)
    cpdef tuple match(self, str method, str path)

    @cython.locals(path=str, table=dict)
    cpdef tuple match_request(self, str method, bytes raw_path)


@cython.locals(allowed=object, seg=str, child=_Node, pchild=_Node, cnode=_Node, name=str,
               p=tuple)
cdef object _walk(_Node node, list segs, Py_ssize_t i, dict params, str method)
