# Cython view of atomics.h.  See that header for the pairing rules.
from cpython.object cimport PyObject
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "atomics.h" nogil:
    int NCC_CACHE_LINE

    void *ncc_load_ptr_relaxed(void **p)
    void *ncc_load_ptr_acquire(void **p)
    void *ncc_load_ptr(void **p)
    void ncc_store_ptr_relaxed(void **p, void *v)
    void ncc_store_ptr_release(void **p, void *v)
    void ncc_store_ptr(void **p, void *v)
    void *ncc_exchange_ptr(void **p, void *v)
    bint ncc_cas_ptr(void **p, void **expected, void *desired)
    bint ncc_cas_ptr_relaxed(void **p, void **expected, void *desired)
    void *ncc_fetch_add_ptr(void **p, Py_ssize_t nbytes)

    PyObject *ncc_load_obj_relaxed(PyObject **p)
    PyObject *ncc_load_obj_acquire(PyObject **p)
    void ncc_store_obj_relaxed(PyObject **p, PyObject *v)
    PyObject *ncc_load_obj(PyObject **p)
    void ncc_store_obj_release(PyObject **p, PyObject *v)
    void ncc_store_obj(PyObject **p, PyObject *v)
    PyObject *ncc_exchange_obj(PyObject **p, PyObject *v)
    bint ncc_cas_obj(PyObject **p, PyObject **expected, PyObject *desired)

    Py_ssize_t ncc_load_ssize_relaxed(Py_ssize_t *p)
    Py_ssize_t ncc_load_ssize_acquire(Py_ssize_t *p)
    Py_ssize_t ncc_load_ssize(Py_ssize_t *p)
    void ncc_store_ssize_relaxed(Py_ssize_t *p, Py_ssize_t v)
    void ncc_store_ssize_release(Py_ssize_t *p, Py_ssize_t v)
    void ncc_store_ssize(Py_ssize_t *p, Py_ssize_t v)
    Py_ssize_t ncc_exchange_ssize(Py_ssize_t *p, Py_ssize_t v)
    bint ncc_cas_ssize(Py_ssize_t *p, Py_ssize_t *expected, Py_ssize_t desired)
    bint ncc_cas_ssize_relaxed(Py_ssize_t *p, Py_ssize_t *expected, Py_ssize_t desired)
    Py_ssize_t ncc_fetch_add_ssize(Py_ssize_t *p, Py_ssize_t v)
    Py_ssize_t ncc_fetch_add_ssize_relaxed(Py_ssize_t *p, Py_ssize_t v)
    Py_ssize_t ncc_fetch_add_ssize_release(Py_ssize_t *p, Py_ssize_t v)

    uint64_t ncc_load_uint64_relaxed(uint64_t *p)
    uint64_t ncc_load_uint64_acquire(uint64_t *p)
    uint64_t ncc_load_uint64(uint64_t *p)
    void ncc_store_uint64_relaxed(uint64_t *p, uint64_t v)
    void ncc_store_uint64_release(uint64_t *p, uint64_t v)
    void ncc_store_uint64(uint64_t *p, uint64_t v)
    uint64_t ncc_exchange_uint64(uint64_t *p, uint64_t v)
    bint ncc_cas_uint64(uint64_t *p, uint64_t *expected, uint64_t desired)
    bint ncc_cas_uint64_relaxed(uint64_t *p, uint64_t *expected, uint64_t desired)
    uint64_t ncc_fetch_add_uint64(uint64_t *p, uint64_t v)
    uint64_t ncc_fetch_add_uint64_relaxed(uint64_t *p, uint64_t v)
    uint64_t ncc_fetch_add_uint64_release(uint64_t *p, uint64_t v)

    uint32_t ncc_load_uint32_relaxed(uint32_t *p)
    uint32_t ncc_load_uint32_acquire(uint32_t *p)
    void ncc_store_uint32_relaxed(uint32_t *p, uint32_t v)
    void ncc_store_uint32_release(uint32_t *p, uint32_t v)

    int ncc_load_int_relaxed(int *p)
    int ncc_load_int_acquire(int *p)
    int ncc_load_int(int *p)
    void ncc_store_int_relaxed(int *p, int v)
    void ncc_store_int_release(int *p, int v)
    void ncc_store_int(int *p, int v)
    bint ncc_cas_int(int *p, int *expected, int desired)
    int ncc_fetch_add_int(int *p, int v)
    int ncc_fetch_add_int_relaxed(int *p, int v)

    void ncc_fence_acquire()
    void ncc_fence_release()
    void ncc_fence_seq_cst()
    void ncc_compiler_barrier()
    void ncc_cpu_relax()
    # Tests only: the race window of a deliberately broken writer.
    void ncc_spin_for(double seconds) nogil
