# Augmenting declarations for _state_py.py compiled as _state_c (Cython pure-Python mode).
# NOTE: the .py stays the reference.  A final cdef class, so the compiled protocol and
# exchange core (which cimport it) read and count its fields as C struct members.
cimport cython


@cython.final
cdef class ServerState:
    cdef public object connections, waiting, tasks
    cdef public bytes date_header, alt_svc
    cdef public Py_ssize_t total_requests
    cdef public bint shutting_down, access_log, fast_path
    cdef public dict fast_routes
    cdef object __weakref__
