# Cython view of critical_section.h: the writer lock's critical section on a
# borrowed pointer (no incref/decref of the lock around it).
from cpython.object cimport PyObject

cdef extern from "critical_section.h":
    ctypedef struct ncc_cs:
        pass
    void ncc_cs_begin(ncc_cs *cs, PyObject *o)
    void ncc_cs_end(ncc_cs *cs)
    int ncc_cs_is_locked(PyObject *o)
    # A bare try-lock of the same mutex, for writes that cannot block: see the header.
    bint ncc_cs_try_lock(PyObject *o) noexcept nogil
    void ncc_cs_unlock(PyObject *o) noexcept nogil
