# Cython view of faultinject.h: suspension points and allocation-failure
# injection (compile to nothing unless built with
# NOGIL_COLLECTIONS_FAULT_INJECTION=1).  Read faultinject.h first.
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

cdef extern from "faultinject.h":
    bint NCC_FAULT_INJECTION_ENABLED
    # A place where the running critical section may be suspended.  Only
    # outside read regions and write windows.
    void NCC_SUSPEND_POINT(const char *name)
    # Same, and abort if *version is odd (inside a write window).
    void NCC_SUSPEND_POINT_CHECKED(const char *name, uint64_t *version)
    # True when a test armed an allocation failure at this point.
    bint NCC_ALLOC_FAILS(const char *name) nogil
    void ncc_fi_set_hook(PyObject *hook)
    void ncc_fi_set_suspend(int on)
    int ncc_fi_arm_alloc_failure(const char *name, long nth)
    object ncc_fi_hits()
    object ncc_fi_detach_stats()
    int ncc_in_critical_section()
