# Cython view of qsbr.h: read regions and deferred freeing of backing arrays.
# Read qsbr.h and docs/design.md ("Memory reclamation") before using it.
from libc.stdint cimport uint64_t

cdef extern from "qsbr.h" nogil:
    ctypedef struct ncc_qsbr_thread:
        pass
    ctypedef struct ncc_qsbr_stats:
        Py_ssize_t registered_threads
        Py_ssize_t thread_records
        uint64_t retired_count
        uint64_t freed_count
        uint64_t retired_bytes
        uint64_t freed_bytes
        Py_ssize_t pending_bytes
        Py_ssize_t pending_count
        Py_ssize_t max_pending_bytes
        Py_ssize_t max_pending_count
        Py_ssize_t pending_limit
        Py_ssize_t pending_count_limit
        Py_ssize_t max_retired_block
        uint64_t synchronize_count
        uint64_t poll_count
        uint64_t wr_seq
        int uses_membarrier
    ctypedef struct ncc_qsbr_domain:
        void (*poll)() noexcept nogil
        void (*synchronize)() noexcept nogil
        void (*get_stats)(ncc_qsbr_stats *out) noexcept nogil

    ncc_qsbr_domain *ncc_qsbr_dom
    # Call once at module init (raises ImportError on failure).
    int ncc_qsbr_import() except -1 with gil
    # Enter/leave a read region.  Inside: no Python code, no blocking, no
    # locks, no allocation of Python objects, no Py_DECREF.
    ncc_qsbr_thread *ncc_read_begin()
    void ncc_read_end(ncc_qsbr_thread *rec)
    # Hand an unpublished PyMem_RawMalloc'ed block to the domain (outside any
    # read region; may wait briefly for readers when the backlog is over the
    # bound).
    void ncc_retire(void *ptr, size_t nbytes)
    # Free what has become safe; never waits.
    void ncc_qsbr_poll()
    # Grace period: returns once every reader that was inside a read region
    # when it was called has left it (and frees everything retired so far).
    # Outside any read region only.
    void ncc_qsbr_synchronize()
    # 1 if this thread is inside a read region.
    bint ncc_qsbr_in_region()
