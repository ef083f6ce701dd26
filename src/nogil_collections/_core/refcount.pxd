# Cython view of refcount.h: try-incref-if-nonzero-with-compare and publish().
from cpython.object cimport PyObject

cdef extern from "refcount.h" nogil:
    bint NCC_FREE_THREADED
    # New reference to `expected` if alive and still in *slot, else NULL.
    # On a mismatch it may Py_DECREF: do not call inside a read region.
    PyObject *ncc_try_getref(PyObject **slot, PyObject *expected)
    # Same, for use inside a read region: a reference to drop is returned in
    # *drop; the caller Py_DECREFs it after ncc_read_end().
    PyObject *ncc_try_getref_deferred(PyObject **slot, PyObject *expected, PyObject **drop)
    # Load *slot (acquire) and try_getref it.
    PyObject *ncc_try_load_ref(PyObject **slot)
    # Try-incref-if-nonzero without the slot re-check (1: new reference taken).
    bint ncc_try_incref(PyObject *obj)
    # Writers: call before storing obj into any slot readers can see.
    void ncc_publish(PyObject *obj)
    # Release store into a reader-visible slot.
    void ncc_slot_store(PyObject **slot, PyObject *obj)
    # 1 on free-threaded builds, where ncc_make_immortal works; 0 on GIL builds.
    bint NCC_CAN_MAKE_IMMORTAL
    # Make a fresh object that only the calling thread references immortal:
    # 1 done, 0 refused (another reference exists; nothing changed).
    bint ncc_make_immortal(PyObject *op)
