# Cython view of seqlock.h: the container version counter.  Read that header.
from libc.stdint cimport uint64_t

cdef extern from "seqlock.h" nogil:
    void ncc_seq_write_begin(uint64_t *v)
    void ncc_seq_write_end(uint64_t *v)
    uint64_t ncc_seq_read_begin(uint64_t *v)
    bint ncc_seq_is_writing(uint64_t version)
    bint ncc_seq_read_validate(uint64_t *v, uint64_t start)
