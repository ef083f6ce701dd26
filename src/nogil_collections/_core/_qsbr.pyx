# cython: freethreading_compatible = True
"""The process-wide QSBR domain (C code in qsbr_domain.c), exported to the
other extension modules through the capsule ``_C_API``.  Python-level
functions here are private debug hooks, re-exported by
:mod:`nogil_collections._debug`."""

from cpython.pycapsule cimport PyCapsule_New
# The struct types are declared once, in qsbr.pxd (the reader-side header).
from nogil_collections._core.qsbr cimport ncc_qsbr_domain, ncc_qsbr_stats

cdef extern from "qsbr_domain.c" nogil:
    ncc_qsbr_domain *ncc_qsbr_domain_init() except NULL with gil
    void ncc_qsbr_set_limits(Py_ssize_t limit, Py_ssize_t count_limit)
    void ncc_qsbr_reset_high_water()
    void ncc_qsbr_set_poison(int on)
    int NCC_QSBR_READER_POLL_PERIOD
    Py_ssize_t NCC_QSBR_DEFAULT_LIMIT
    Py_ssize_t NCC_QSBR_DEFAULT_COUNT_LIMIT

cdef ncc_qsbr_domain *_domain = ncc_qsbr_domain_init()
_C_API = PyCapsule_New(<void *>_domain, b"nogil_collections._core._qsbr._C_API", NULL)

#: Readers poll for reclaimable memory once per this many read regions.
READER_POLL_PERIOD = NCC_QSBR_READER_POLL_PERIOD
#: Default LIMIT (bytes) and count limit of the retired backlog.
DEFAULT_PENDING_LIMIT = NCC_QSBR_DEFAULT_LIMIT
DEFAULT_PENDING_COUNT_LIMIT = NCC_QSBR_DEFAULT_COUNT_LIMIT


def stats():
    """Return a dict snapshot of the domain's counters (sizes in bytes)."""
    cdef ncc_qsbr_stats s
    with nogil:
        _domain.get_stats(&s)
    return {
        "registered_threads": s.registered_threads,
        "thread_records": s.thread_records,
        "retired_count": s.retired_count,
        "freed_count": s.freed_count,
        "retired_bytes": s.retired_bytes,
        "freed_bytes": s.freed_bytes,
        "pending_bytes": s.pending_bytes,
        "pending_count": s.pending_count,
        "max_pending_bytes": s.max_pending_bytes,
        "max_pending_count": s.max_pending_count,
        "pending_limit": s.pending_limit,
        "pending_count_limit": s.pending_count_limit,
        "max_retired_block": s.max_retired_block,
        "synchronize_count": s.synchronize_count,
        "poll_count": s.poll_count,
        "wr_seq": s.wr_seq,
        "uses_membarrier": bool(s.uses_membarrier),
    }


def poll():
    """Free whatever retired memory has become safe; never waits."""
    with nogil:
        _domain.poll()


def synchronize():
    """Wait for current readers, then free everything retired so far."""
    with nogil:
        _domain.synchronize()


def set_pending_limit(Py_ssize_t limit=-1, Py_ssize_t count=-1):
    """Set LIMIT (bytes) and/or the count limit of the retired backlog above
    which a retiring writer waits for readers.  -1 leaves a value unchanged."""
    if limit < -1 or count < -1:
        raise ValueError("limits must be >= 0 (or -1 to leave unchanged)")
    ncc_qsbr_set_limits(limit, count)


def reset_high_water():
    """Reset ``max_pending_bytes``/``max_pending_count`` to the current values
    and ``max_retired_block`` to 0."""
    ncc_qsbr_reset_high_water()


def set_poison(bint on):
    """Fill every block with 0xDB just before it is freed (test hook: a reader
    that touched a reclaimed array would then see a corrupt header)."""
    ncc_qsbr_set_poison(on)
