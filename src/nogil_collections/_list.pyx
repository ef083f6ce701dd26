# cython: freethreading_compatible = True
# PLACEHOLDER until the ConcurrentList issue lands: replaced wholesale.
from nogil_collections._core.qsbr cimport ncc_qsbr_import
ncc_qsbr_import()

cdef class ConcurrentList:
    pass
