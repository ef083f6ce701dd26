# cython: freethreading_compatible = True
# cython: language_level = 3, boundscheck = False, wraparound = False, cdivision = True
# cython: binding = False
"""ConcurrentList: a drop-in thread-safe ``list`` with lock-free reads.

Design (docs/design.md, "ConcurrentList"; the array, the hot state and the
lock-free reads are in _list_array.h):

* Writers hold the critical section of the list's writer lock, a separate
  ``_WriterLock`` object (never the mutex in the list's own header, on the
  line every call loads ``ob_type`` from; docs/design.md, "The writer lock").
  A value replacement (``lst[i] = v``, compare_and_set, update) is one
  release store of the slot inside a ``replace_seq`` window (its own cache
  line); an append that fits stores the new slots, then the size (release);
  structural changes (insert, delete, pop, sort, slice assignment, clear,
  any reallocation) bump the seqlock ``version`` to odd, change slots / size
  / array with atomic stores, and bump it back to even.  No Python code runs
  inside a window: objects to release are decref'ed after it, and after the
  critical section is left.
* Single-item readers take no lock: version -> read region -> array
  (acquire) -> slot (acquire) -> try-incref -> re-check the slot -> end
  region -> validate version.  Multi-slot readers also validate
  ``replace_seq``.  After a bounded number of failed attempts they read
  under the lock.
* A backing array that other threads may read is never resized in place: a
  resize fills a new array, publishes it with a release store and retires
  the old one to the QSBR domain (``ncc_retire``).  An array only its owner
  thread has touched is realloc'ed in place, as ``list`` does.
"""

cimport cython
from cpython.object cimport PyObject, PyObject_RichCompare, PyObject_RichCompareBool, Py_EQ
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.list cimport PyList_New, PyList_SET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_CheckExact, PyLong_AsSsize_t
from cpython.slice cimport PySlice_Check, PySlice_Unpack, PySlice_AdjustIndices
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy

from nogil_collections._core.atomics cimport (
    ncc_load_ptr_acquire, ncc_load_ptr_relaxed, ncc_store_ptr_release, ncc_store_ptr_relaxed,
    ncc_load_ssize_acquire, ncc_store_ssize_release, ncc_store_ssize,
    ncc_load_obj_acquire, ncc_load_ssize_relaxed, ncc_store_ssize_relaxed,
    ncc_load_uint64_relaxed, ncc_cpu_relax, ncc_spin_for,
    ncc_load_uint32_relaxed, ncc_store_uint32_relaxed,
)
from nogil_collections._core.refcount cimport (
    ncc_try_getref_deferred, ncc_publish, ncc_slot_store, NCC_FREE_THREADED,
)
from nogil_collections._core.critical_section cimport (
    ncc_cs, ncc_cs_begin, ncc_cs_end, ncc_cs_try_lock, ncc_cs_unlock,
)
from nogil_collections._core.seqlock cimport (
    ncc_seq_write_begin, ncc_seq_write_end, ncc_seq_read_begin,
    ncc_seq_is_writing, ncc_seq_read_validate,
)
from nogil_collections._core.faultinject cimport (
    NCC_FAULT_INJECTION_ENABLED, NCC_SUSPEND_POINT_CHECKED,
    ncc_fi_set_hook, ncc_fi_set_suspend, ncc_fi_arm_alloc_failure, ncc_fi_hits,
    ncc_fi_detach_stats,
    ncc_in_critical_section,
)
from nogil_collections._core.qsbr cimport (
    ncc_qsbr_thread, ncc_read_begin, ncc_read_end, ncc_retire, ncc_qsbr_import,
)

import sys as _sys
from copyreg import __newobj__ as _newobj
from nogil_collections._reduce import reduce_subclass as _reduce_subclass
from types import GenericAlias as _GenericAlias
from nogil_collections._handle import ConcurrentListHandle as _Handle

ncc_qsbr_import()

include "_core/faultinject.pxi"
include "_core/immortal.pxi"

cdef extern from "_list_array.h":
    ctypedef struct ncl_array:
        Py_ssize_t capacity
        PyObject *items[1]
    ctypedef struct ncl_state:
        uint64_t version
        Py_ssize_t size
        ncl_array *array
        uint32_t shared
        uint64_t replace_seq
    size_t NCL_ARRAY_BYTES(Py_ssize_t cap)
    ncl_array *ncl_array_new(Py_ssize_t cap)
    void ncl_array_free(ncl_array *a)
    ncl_array *ncl_array_regrow(ncl_array *a, Py_ssize_t n, Py_ssize_t newcap)
    Py_ssize_t ncl_grow_capacity(Py_ssize_t newsize, Py_ssize_t oldsize, int shared)
    bint ncl_foreign(PyObject *op)
    uintptr_t ncl_thread_id()
    void ncl_reader_announce(PyObject *self, ncl_state *s)
    bint ncl_inplace_begin(ncl_state *s)
    int ncl_read_item(PyObject *self, ncl_state *s, Py_ssize_t i, PyObject **out)
    Py_ssize_t ncl_read_run(PyObject *self, ncl_state *s, Py_ssize_t start, PyObject **buf,
                            Py_ssize_t max, uint64_t *rv_out, PyObject *match, int *matched)
    bint ncl_run_still_valid(ncl_state *s, uint64_t rv)
    Py_ssize_t ncl_iter_take_batch(ncl_iter_state *st, PyObject **out)
    Py_ssize_t ncl_iter_claim(Py_ssize_t *index, Py_ssize_t want, int step)
    Py_ssize_t ncl_iter_claim_run(Py_ssize_t *index, ncl_state *s, Py_ssize_t max,
                                  Py_ssize_t *want_out)
    void ncl_iter_exhaust(Py_ssize_t *index)
    Py_ssize_t ncl_iter_claim_down(Py_ssize_t *index, Py_ssize_t max, Py_ssize_t *stop_out)
    int ncl_contains(PyObject *self, ncl_state *s, PyObject *value,
                     PyObject *(*item_ref)(PyObject *, Py_ssize_t) noexcept) except -1
    uint64_t ncl_read_version(ncl_state *s)
    ctypedef struct ncl_iter_state:
        Py_ssize_t index
        uintptr_t owner
        ncl_state *ls
        Py_ssize_t bstart
        Py_ssize_t bpos
        Py_ssize_t blen
        Py_ssize_t bend
        uint64_t brv
        PyObject *buf[1]
    enum:
        NCL_ITER_BATCH
    enum:
        NCL_READ_OUT_OF_RANGE
        NCL_READ_GOT
        NCL_READ_LOCKED
        NCL_MUTANT_NONE
        NCL_MUTANT_SPECULATIVE_CAS
    int ncl_mutant
    void ncl_set_mutant(int m)
    Py_ssize_t ncl_take_read_retries()

cdef extern from "messages.h":
    bint NCC_LIST_INDEX_NOT_FOUND_FIXED

cdef extern from *:
    """
    /* Return a new reference unchanged: lets Cython take ownership of a
     * PyObject* that is already a new reference (no extra incref/decref
     * pair, which on 3.13t would be atomic ops on a shared refcount). */
    static inline PyObject *ncl_steal(PyObject *o) { return o; }

    /* Index from an exact int, as list_subscript does: compact ints take the
     * fast path; others go through PyNumber_AsSsize_t(o, IndexError). */
    static inline Py_ssize_t ncl_exact_long_index(PyObject *o) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
            return (Py_ssize_t)PyUnstable_Long_CompactValue((PyLongObject *)o);
        }
    #else
        /* 3.11: one-digit ints (cpython/longintrepr.h). */
        Py_ssize_t ndigits = Py_SIZE(o);
        if (ndigits == 0) return 0;
        if (ndigits == 1) return (Py_ssize_t)((PyLongObject *)o)->ob_digit[0];
        if (ndigits == -1) return -(Py_ssize_t)((PyLongObject *)o)->ob_digit[0];
    #endif
        return PyNumber_AsSsize_t(o, PyExc_IndexError);
    }

    /* GC support for the C array of items: Cython cannot generate it, so the
     * module patches tp_traverse / tp_clear at import, chaining to Cython's. */
    static Py_ssize_t ncl_state_offset = -1;
    static traverseproc ncl_base_traverse = NULL;
    static inquiry ncl_base_clear = NULL;
    static inquiry ncl_items_clear = NULL;

    static int ncl_traverse(PyObject *self, visitproc visit, void *arg) {
        /* The GC runs with the world stopped (3.13t) or holding the GIL: no
         * writer is active, plain loads are exact. */
        ncl_state *s = (ncl_state *)((char *)self + ncl_state_offset);
        ncl_array *a = s->array;
        Py_ssize_t n = s->size;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_VISIT(a->items[i]);
        }
        return ncl_base_traverse != NULL ? ncl_base_traverse(self, visit, arg) : 0;
    }

    static int ncl_clear(PyObject *self) {
        if (ncl_items_clear(self) < 0) {
            return -1;
        }
        return ncl_base_clear != NULL ? ncl_base_clear(self) : 0;
    }

    static int ncl_patch_gc(PyObject *type, Py_ssize_t offset, inquiry items_clear) {
        PyTypeObject *t = (PyTypeObject *)type;
        if (!(t->tp_flags & Py_TPFLAGS_HAVE_GC)) {
            PyErr_SetString(PyExc_SystemError, "ConcurrentList must be a GC type");
            return -1;
        }
        ncl_state_offset = offset;
        ncl_items_clear = items_clear;
        if (t->tp_traverse != ncl_traverse) {
            ncl_base_traverse = t->tp_traverse;
            ncl_base_clear = t->tp_clear;
            t->tp_traverse = ncl_traverse;
            t->tp_clear = ncl_clear;
        }
        return 0;
    }

    /* The forward iterator buffers references in a C array: visit them, and
     * drop them on tp_clear, chaining to Cython's slots; and its C fast path
     * of next() goes in front of Cython's tp_iternext (the slow path). */
    static Py_ssize_t ncl_iter_state_offset = -1;
    static traverseproc ncl_iter_base_traverse = NULL;
    static inquiry ncl_iter_base_clear = NULL;
    static iternextfunc ncl_iter_base_next = NULL;

    #define NCL_ITER_STATE(self) ((ncl_iter_state *)((char *)(self) + ncl_iter_state_offset))

    static int ncl_iter_traverse(PyObject *self, visitproc visit, void *arg) {
        ncl_iter_state *st = NCL_ITER_STATE(self);
        for (Py_ssize_t j = st->bpos; j < st->blen; j++) {
            Py_VISIT(st->buf[j]);
        }
        return ncl_iter_base_traverse != NULL ? ncl_iter_base_traverse(self, visit, arg) : 0;
    }

    static int ncl_iter_clear(PyObject *self) {
        PyObject *tmp[NCL_ITER_BATCH];
        /* Empty first, then release (a __del__ may reach this iterator). */
        Py_ssize_t n = ncl_iter_take_batch(NCL_ITER_STATE(self), tmp);
        for (Py_ssize_t j = 0; j < n; j++) {
            Py_DECREF(tmp[j]);
        }
        return ncl_iter_base_clear != NULL ? ncl_iter_base_clear(self) : 0;
    }

    /* aligned(64): the whole fast path in one cache line of code.  Where the
     * linker happened to place it mattered: the same instructions straddling
     * two 64-byte blocks iterated about 15 % slower on the development
     * machine (a build that only grew an unrelated function moved it). */
    __attribute__((aligned(64)))
    static PyObject *ncl_iter_next(PyObject *self) {
        PyObject *r;
        if (ncl_iter_fast_next(NCL_ITER_STATE(self), &r)) {
            return r;
        }
        return ncl_iter_base_next(self);
    }

    static int ncl_patch_iter(PyObject *type, Py_ssize_t state_offset) {
        PyTypeObject *t = (PyTypeObject *)type;
        if (!(t->tp_flags & Py_TPFLAGS_HAVE_GC) || t->tp_iternext == NULL) {
            PyErr_SetString(PyExc_SystemError, "unexpected list iterator type");
            return -1;
        }
        ncl_iter_state_offset = state_offset;
        if (t->tp_traverse != ncl_iter_traverse) {
            ncl_iter_base_traverse = t->tp_traverse;
            ncl_iter_base_clear = t->tp_clear;
            ncl_iter_base_next = t->tp_iternext;
            t->tp_traverse = ncl_iter_traverse;
            t->tp_clear = ncl_iter_clear;
            t->tp_iternext = ncl_iter_next;
            PyType_Modified(t);
        }
        return 0;
    }

    /* After both operands' nb_add / nb_multiply return NotImplemented,
     * PyNumber_Add / PyNumber_Multiply fall back to sq_concat / sq_repeat:
     * that is where list raises "can only concatenate list ..." and "can't
     * multiply sequence by non-int ...".  Cython only fills the nb_ slots. */
    static int ncl_patch_seq(PyObject *type, binaryfunc concat, ssizeargfunc repeat,
                             binaryfunc iconcat, ssizeargfunc irepeat) {
        PySequenceMethods *sq = ((PyTypeObject *)type)->tp_as_sequence;
        if (sq == NULL) {
            PyErr_SetString(PyExc_SystemError, "ConcurrentList has no sequence methods");
            return -1;
        }
        sq->sq_concat = concat;
        sq->sq_repeat = repeat;
        /* PySequence_InPlaceConcat/Repeat (operator.iconcat) would otherwise
         * fall back to the copying sq_concat/sq_repeat. */
        sq->sq_inplace_concat = iconcat;
        sq->sq_inplace_repeat = irepeat;
        PyType_Modified((PyTypeObject *)type);
        return 0;
    }

    #define ncl_type_name(o) (Py_TYPE(o)->tp_name)

    """
    object ncl_steal(PyObject *o)
    Py_ssize_t ncl_exact_long_index(object o) except? -1
    int ncl_patch_iter(object type, Py_ssize_t state_offset) except -1
    int ncl_patch_gc(object type, Py_ssize_t offset,
                     int (*items_clear)(PyObject *) noexcept) except -1
    # PyList_SET_ITEM: steals the reference.
    void ncl_list_set "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject *o)
    const char *ncl_type_name(object o)
    int ncl_patch_seq(object type, object (*concat)(object, object),
                      object (*repeat)(object, Py_ssize_t),
                      object (*iconcat)(object, object),
                      object (*irepeat)(object, Py_ssize_t)) except -1

cdef extern from "Python.h":
    # On borrowed PyObject* (no temporary references around the call).
    int ncl_richcmp_bool "PyObject_RichCompareBool"(PyObject *a, PyObject *b, int op) except -1
    int Py_ReprEnter(object o) except -1
    void Py_ReprLeave(object o)
    bint PyIndex_Check(object o)
    Py_ssize_t PyNumber_AsSsize_t(object o, PyObject *exc) except? -1
    object PySequence_Fast(object o, const char *m)
    Py_ssize_t PySequence_Fast_GET_SIZE(object o)
    PyObject **PySequence_Fast_ITEMS(object o)
    object PySequence_List(object o)
    int PyList_Check(object o)
    int PyList_CheckExact(object o)
    int PyTuple_CheckExact(object o)
    const Py_ssize_t PY_SSIZE_T_MAX

# Optimistic attempts before a multi-slot reader falls back to the lock
# (single-item reads: NCL_READ_RETRIES in _list_array.h).
cdef enum:
    NCL_SNAPSHOT_RETRIES = 4
    # Items copied per read region by multi-slot reads (keeps regions short).
    NCL_REGION_CHUNK = 1024
    # Restarts of an equality scan that was disturbed by a concurrent change.
    NCL_FIND_RESTARTS = 8
    # update(): attempts before giving up when fn keeps racing with writers.
    NCL_UPDATE_ATTEMPTS = 100

cdef bint _PY312 = _sys.version_info >= (3, 12)


@cython.final
cdef class _WriterLock:
    """The object whose critical section every writer of one ConcurrentList
    holds, and every locked fallback of a reader (docs/design.md, "The
    writer lock").  A PyMutex lives in an object's header, on the cache
    line from which every call on the object loads ob_type (and whose
    reference counts the interpreter writes on 3.13t); locking the list's
    own header would make each write (two atomic read-modify-writes of
    ob_mutex) cost every concurrent reader of the list a cache miss.  128
    bytes (a mimalloc size class of its own, 64-byte aligned blocks), so no
    other object shares the mutex's line.  ConcurrentDict has its own, which
    also carries its writer words."""

    cdef char _pad[96]


cdef struct _Stamp:
    uint64_t changes
    Py_ssize_t size


cdef inline void _release(PyObject **items, Py_ssize_t n) noexcept:
    # Drop references collected under the lock.  Runs arbitrary __del__ code:
    # call only after the version is even and the critical section is left.
    cdef Py_ssize_t i
    for i in range(n):
        Py_XDECREF(items[i])


@cython.trashcan(True)
@cython.no_gc_clear
cdef class ConcurrentList:
    """ConcurrentList(iterable=(), /)

    A ``list`` that many threads can use at once.  Every operation is
    linearizable; reads (indexing, ``len``, ``in``, iteration, slicing,
    comparisons, ``repr``, ``copy``) take no lock; writes take a per-object
    lock.  See docs/guarantees.md.

    >>> lst = ConcurrentList([3, 1, 2])
    >>> lst.append(0); lst.sort(); lst
    [0, 1, 2, 3]
    """

    # ---- cold fields (written rarely; near the object header) ----
    cdef object __weakref__
    # Always None.  Its only purpose is to make Cython emit GC slots, which
    # ncl_patch_gc extends to traverse the items array.
    cdef object _gc_anchor
    # The object whose critical section every writer (and every locked
    # fallback of a reader) holds: never the list itself, whose header
    # mutex sits on the line every call loads ob_type from (_WriterLock,
    # docs/design.md "The writer lock").  Set in __cinit__, never changed,
    # never cleared by the GC (no_gc_clear below).
    cdef _WriterLock _wlock
    # ---- padding: the object header's cache line is written on every
    # incref/decref of the list (3.13t); keep the hot fields off it ----
    cdef char _pad[88]
    # ---- hot fields: read by every lock-free reader ----
    cdef ncl_state _s

    # ------------------------------------------------------------------
    # construction, destruction, GC
    # ------------------------------------------------------------------

    def __cinit__(self, *args, **kwargs):
        self._wlock = _WriterLock.__new__(_WriterLock)

    def __init__(self, iterable=(), /):
        self._items_clear()
        self._extend(iterable)

    def __dealloc__(self):
        # No other reference exists, so no reader can be inside a region on
        # this array: free directly.
        cdef ncl_array *a = self._s.array
        cdef Py_ssize_t n = self._s.size
        self._s.array = NULL
        self._s.size = 0
        if a != NULL:
            _release(a.items, n)
            ncl_array_free(a)

    # ------------------------------------------------------------------
    # lock-free single-item read
    # ------------------------------------------------------------------

    cdef PyObject *_item_ref_locked(self, Py_ssize_t i) noexcept:
        cdef PyObject *r = NULL
        cdef Py_ssize_t n
        with cython.critical_section(self._wlock):
            n = self._s.size
            if i < 0:
                i += n
            if 0 <= i < n:
                r = self._s.array.items[i]
                Py_INCREF(<object>r)
                # A lock-free read refused it if it was stored unpublished.
                ncc_publish(r)
        return r

    # ------------------------------------------------------------------
    # lock-free consistent multi-slot read (snapshot / slice)
    # ------------------------------------------------------------------

    cdef PyObject **_read_range(self, bint is_slice, Py_ssize_t start, Py_ssize_t stop,
                                Py_ssize_t step, Py_ssize_t *outlen) except? NULL:
        """New references to the items of self[start:stop:step] (or of the
        whole list), all from one version.  Returns a PyMem_Malloc'ed buffer
        (NULL when the result is empty) and its length in *outlen."""
        cdef PyObject **buf = NULL
        cdef PyObject **nbuf
        cdef Py_ssize_t bufcap = 0, n, L, s0, s1, j, got, idx, last, chunk_end
        cdef int attempt
        cdef bint ok, refused
        cdef uint64_t v, rv
        cdef ncl_array *a
        cdef ncl_array *a0
        cdef PyObject *o
        cdef PyObject *r
        cdef PyObject *drop
        cdef ncc_qsbr_thread *rec
        ncl_reader_announce(<PyObject *>self, &self._s)
        for attempt in range(NCL_SNAPSHOT_RETRIES):
            # seq_cst (includes acquire); pairs with the release store in
            # ncc_seq_write_end and with the odd store of an in-place growth
            # (see ncl_read_version).
            v = ncl_read_version(&self._s)
            # Acquire; pairs with the release store in ncc_seq_write_end of a
            # value replacement: several slots must come from one state.
            rv = ncc_seq_read_begin(&self._s.replace_seq)
            if ncc_seq_is_writing(v) or ncc_seq_is_writing(rv):
                ncc_cpu_relax()
                continue
            # Acquire; pairs with the release store of the size by an append
            # (the slots below it are filled); otherwise validated by the seqlock.
            n = ncc_load_ssize_acquire(&self._s.size)
            s0 = 0
            s1 = n
            L = n
            if is_slice:
                s0 = start
                s1 = stop
                L = PySlice_AdjustIndices(n, &s0, &s1, step)
            else:
                step = 1
            if L == 0:
                if ncc_seq_read_validate(&self._s.version, v):
                    PyMem_Free(buf)
                    outlen[0] = 0
                    return NULL
                continue
            if L > bufcap:
                nbuf = <PyObject **>PyMem_Realloc(buf, <size_t>L * sizeof(PyObject *))
                if nbuf == NULL:
                    PyMem_Free(buf)
                    raise MemoryError()
                buf = nbuf
                bufcap = L
            last = s0 + (L - 1) * step
            ok = True
            refused = False
            got = 0
            a0 = NULL
            drop = NULL
            while got < L and ok:
                chunk_end = got + NCL_REGION_CHUNK
                if chunk_end > L:
                    chunk_end = L
                rec = ncc_read_begin()
                # Acquire; pairs with the release store in _publish_array.
                a = <ncl_array *>ncc_load_ptr_acquire(<void **>&self._s.array)
                if a == NULL or (a0 != NULL and a != a0) or s0 >= a.capacity \
                        or last >= a.capacity:
                    ok = False
                else:
                    a0 = a
                    while got < chunk_end:
                        idx = s0 + got * step
                        # Acquire; pairs with ncc_slot_store (release).
                        o = ncc_load_obj_acquire(&a.items[idx])
                        r = ncc_try_getref_deferred(&a.items[idx], o, &drop)
                        if r == NULL:
                            ok = False
                            refused = drop == NULL
                            break
                        buf[got] = r
                        got += 1
                ncc_read_end(rec)
                if drop != NULL:
                    _decref(drop)
                    drop = NULL
            # The relaxed re-load of replace_seq is ordered by the acquire
            # fence inside ncc_seq_read_validate; it pairs with the release
            # fence in ncc_seq_write_begin of a value replacement.
            if ok and ncc_seq_read_validate(&self._s.version, v) \
                    and ncc_load_uint64_relaxed(&self._s.replace_seq) == rv:
                outlen[0] = L
                return buf
            _release(buf, got)
            if refused and ncc_seq_read_validate(&self._s.version, v):
                break   # an unpublished item: only the locked path helps
        _mark_shared(self)
        # Too much write traffic: read under the lock (readers cannot starve).
        with cython.critical_section(self._wlock):
            n = self._s.size
            s0 = 0
            s1 = n
            L = n
            if is_slice:
                s0 = start
                s1 = stop
                L = PySlice_AdjustIndices(n, &s0, &s1, step)
            else:
                step = 1
            if L > bufcap:
                nbuf = <PyObject **>PyMem_Realloc(buf, <size_t>L * sizeof(PyObject *))
                if nbuf == NULL:
                    PyMem_Free(buf)
                    raise MemoryError()
                buf = nbuf
            for j in range(L):
                o = self._s.array.items[s0 + j * step]
                Py_INCREF(<object>o)
                ncc_publish(o)
                buf[j] = o
        if L == 0:
            PyMem_Free(buf)
            buf = NULL
        outlen[0] = L
        return buf

    cdef list _snapshot_list(self):
        cdef Py_ssize_t L = 0
        cdef PyObject **buf = self._read_range(False, 0, 0, 1, &L)
        return _list_from_buffer(buf, L)

    cdef PyObject **_locked_refs(self, Py_ssize_t *outlen) except? NULL:
        """New references to all items in a PyMem_Malloc'ed buffer (NULL when
        empty), for the caller to turn into a list after leaving the lock.
        Caller holds the critical section.  Creates no Python object: on 3.11
        creating one may run the GC, whose finalizers could change a list
        between the copies of a two-list operation."""
        cdef Py_ssize_t n = self._s.size, j
        cdef PyObject **buf
        outlen[0] = 0
        if n == 0:
            return NULL
        buf = <PyObject **>PyMem_Malloc(<size_t>n * sizeof(PyObject *))
        if buf == NULL:
            raise MemoryError()
        for j in range(n):
            buf[j] = self._s.array.items[j]
            Py_INCREF(<object>buf[j])
        outlen[0] = n
        return buf

    cdef int _locked_pair(self, ConcurrentList o, PyObject ***ba, Py_ssize_t *la,
                          PyObject ***bb, Py_ssize_t *lb) except -1:
        """Both lists' items from the same instant (both locks held, no
        Python object created in between); see _locked_refs."""
        with cython.critical_section(self._wlock, o._wlock):
            ba[0] = self._locked_refs(la)
            try:
                bb[0] = o._locked_refs(lb)
            except BaseException:
                _release(ba[0], la[0])
                PyMem_Free(ba[0])
                raise
        return 0

    cdef list _locked_copy(self):
        """A builtin list copy; caller holds the critical section.  Creating
        the list may run the GC on 3.11 (inline, at the allocation), whose
        finalizers can change this list (there the critical section is no
        lock), and may suspend the section on 3.13t: the size is read again
        after the allocation, and the copy itself allocates nothing."""
        cdef Py_ssize_t n, j
        cdef list res
        cdef PyObject *o
        while True:
            n = self._s.size
            res = PyList_New(n)
            if self._s.size == n:
                break
        for j in range(n):
            o = self._s.array.items[j]
            Py_INCREF(<object>o)
            ncl_list_set(res, j, o)
        return res

    # ------------------------------------------------------------------
    # write primitives (critical section held, no Python code runs)
    # ------------------------------------------------------------------

    cdef inline void _publish_array(self, ncl_array *a) noexcept:
        # Release; pairs with the acquire loads of the array pointer in
        # _item_ref/_read_range: readers that see `a` see its filled slots.
        ncc_store_ptr_release(<void **>&self._s.array, <void *>a)

    cdef inline void _replace_slot_lh(self, Py_ssize_t i, PyObject *o) noexcept:
        """Value replacement: items[i] = o (o increfed and published by the
        caller, who releases the old item after leaving the lock).  The
        global version does not move: a single-item reader validates the
        slot it read instead (ncl_read_item).  replace_seq, on its own cache
        line, tells multi-slot readers that one slot changed."""
        # Relaxed store + release fence (ncc_seq_write_begin); pairs with the
        # acquire fence in the multi-slot readers' validation.
        ncc_seq_write_begin(&self._s.replace_seq)
        # Release; pairs with the readers' acquire slot load and their
        # seq_cst re-check of the slot (ncl_read_item).
        ncc_slot_store(&self._s.array.items[i], o)
        # Release; pairs with the acquire load of replace_seq that starts a
        # multi-slot read (_read_range, ncl_read_run).
        ncc_seq_write_end(&self._s.replace_seq)

    cdef int _replace_lh(self, Py_ssize_t lo, Py_ssize_t hi, PyObject **src, Py_ssize_t k,
                         PyObject **garbage) except -1:
        """Replace items[lo:hi] by src[0:k] (borrowed; they are increfed and
        published here).  The hi-lo removed references are moved to
        `garbage` for the caller to release after leaving the lock.  `src`
        may alias the current array only when lo == hi == size (append)."""
        cdef Py_ssize_t n = self._s.size
        cdef Py_ssize_t d = k - (hi - lo)
        cdef Py_ssize_t newsize = n + d
        cdef ncl_array *old = self._s.array
        cdef Py_ssize_t cap = old.capacity if old != NULL else 0
        cdef ncl_array *na = NULL
        cdef Py_ssize_t j
        cdef bint swap
        cdef bint shrink_in_place = False
        if lo == hi == n and k > 0:
            # Appending (extend, extend(self)): slots stay where they are.
            return self._append_many_lh(src, k)
        # Shrink when less than half is used, as list_resize does.
        swap = newsize > cap or newsize < (cap >> 1)
        if swap and 0 < newsize < cap and _inplace_begin(self):
            # A shrink of an array no other thread can read, in the window
            # _grow_lh uses: the slots move in place and the block is
            # realloc'ed smaller, as list_resize does, instead of a copy and
            # a retire.  Nothing from here to the end of the window blocks
            # but the realloc (docs/design.md, "Growth and shrink policy").
            shrink_in_place = True
            swap = False
        if swap and newsize > 0:
            na = ncl_array_new(ncl_grow_capacity(newsize, n, _is_shared(self)))
            if na == NULL:
                raise MemoryError()
        for j in range(k):
            Py_INCREF(<object>src[j])
            _pub(self, src[j])
        for j in range(hi - lo):
            garbage[j] = old.items[lo + j]
        if swap:
            # Fill the new, still private array with plain stores.
            if na != NULL:
                if lo:
                    memcpy(&na.items[0], &old.items[0], <size_t>lo * sizeof(PyObject *))
                if k:
                    memcpy(&na.items[lo], src, <size_t>k * sizeof(PyObject *))
                if n - hi > 0:
                    memcpy(&na.items[lo + k], &old.items[hi], <size_t>(n - hi) * sizeof(PyObject *))
            _struct_begin(self)
            # Relaxed; readers validate it with the version.
            ncc_store_ssize_relaxed(&self._s.size, newsize)
            self._publish_array(na)
            _struct_end(self)
            if old != NULL:
                # After the release store that unpublished it.
                ncc_retire(old, NCL_ARRAY_BYTES(old.capacity))
            return 0
        if shrink_in_place:
            # `version` is odd already (ncl_inplace_begin); nest replace_seq
            # as _struct_begin does.
            ncc_seq_write_begin(&self._s.replace_seq)
        else:
            _struct_begin(self)
        # Move slots with atomic (release) stores, never memmove: a reader
        # may load any slot at any time (pairs with its acquire slot load).
        if d < 0:
            for j in range(hi, n):
                ncc_slot_store(&old.items[j + d], old.items[j])
            for j in range(newsize, n):
                ncc_slot_store(&old.items[j], NULL)
        elif d > 0:
            j = n - 1
            while j >= hi:
                ncc_slot_store(&old.items[j + d], old.items[j])
                j -= 1
        for j in range(k):
            ncc_slot_store(&old.items[lo + j], src[j])
        ncc_store_ssize_relaxed(&self._s.size, newsize)
        if shrink_in_place:
            # Slots [newsize, n) are NULL now.  A failed realloc keeps the
            # larger array, which is still valid: a shrink is optional.
            na = ncl_array_regrow(old, newsize, ncl_grow_capacity(newsize, n, False))
            if na != NULL:
                self._publish_array(na)
        _struct_end(self)
        return 0

    cdef int _take_all_lh(self, ncl_array **out_array, Py_ssize_t *out_n) except -1:
        """Detach the whole array (clear); caller releases the items and
        retires the array after leaving the lock."""
        out_array[0] = self._s.array
        out_n[0] = self._s.size
        if self._s.array == NULL and self._s.size == 0:
            return 0
        _struct_begin(self)
        ncc_store_ssize_relaxed(&self._s.size, 0)
        self._publish_array(NULL)
        _struct_end(self)
        return 0

    cdef int _grow_lh(self, Py_ssize_t need) except -1:
        """Make room for `need` items, keeping items[0:size] at their
        indices.  An array no other thread can read (GIL build, or a list not
        shared yet, checked inside the odd window: ncl_inplace_begin) is
        realloc'ed in place; otherwise a copy is published and the old array
        retired.  Either way the version moves: a reader inside the old array
        retries."""
        cdef Py_ssize_t n = self._s.size
        cdef ncl_array *old = self._s.array
        cdef ncl_array *na
        cdef Py_ssize_t newcap
        if _inplace_begin(self):
            na = ncl_array_regrow(old, n, ncl_grow_capacity(need, n, False))
            if na != NULL:
                self._publish_array(na)
            ncc_seq_write_end(&self._s.version)
            if na == NULL:
                raise MemoryError()
            return 0
        newcap = ncl_grow_capacity(need, n, True)
        na = ncl_array_new(newcap)
        if na == NULL:
            raise MemoryError()
        if n:
            # Still private: plain copy.
            memcpy(&na.items[0], &old.items[0], <size_t>n * sizeof(PyObject *))
        ncc_seq_write_begin(&self._s.version)
        self._publish_array(na)
        ncc_seq_write_end(&self._s.version)
        if old != NULL:
            # After the release store that unpublished it.
            ncc_retire(old, NCL_ARRAY_BYTES(old.capacity))
        return 0

    cdef int _append_many_lh(self, PyObject **src, Py_ssize_t k) except -1:
        """Append src[0:k] (borrowed; increfed and published here).  `src`
        may alias the current array's items[0:k] (extend(self)).  No version
        bump unless the array grows: readers of existing indices are not
        disturbed; the release store of the size publishes the new slots."""
        cdef Py_ssize_t n = self._s.size
        cdef ncl_array *a = self._s.array
        cdef Py_ssize_t j
        if a == NULL or n + k > a.capacity:
            if n > PY_SSIZE_T_MAX - k:
                raise MemoryError()
            if a != NULL and src == &a.items[0]:
                # extend(self): the source moves with the array.
                self._grow_lh(n + k)
                src = &self._s.array.items[0]
            else:
                self._grow_lh(n + k)
            a = self._s.array
        for j in range(k):
            Py_INCREF(<object>src[j])
            _pub(self, src[j])
            # Release; pairs with readers' acquire slot loads.  Beyond the
            # size, so no reader looks at it before the size store below.
            ncc_slot_store(&a.items[n + j], src[j])
        # Release; pairs with the readers' acquire load of the size
        # (ncl_read_item, ncl_read_run, _read_range): the slots are filled.
        ncc_store_ssize_release(&self._s.size, n + k)
        return 0

    cdef int _append_lh(self, object x) except -1:
        # _grow_lh allocates raw memory, which does not suspend the critical
        # section; the loop re-reads the size and array anyway.
        while not _append_if_room_lh(self, <PyObject *>x):
            self._grow_lh(self._s.size + 1)
        return 0

    cdef int _items_clear(self) except -1:
        cdef ncl_array *a = NULL
        cdef Py_ssize_t n = 0
        with cython.critical_section(self._wlock):
            self._take_all_lh(&a, &n)
        if a != NULL:
            # Readers may still be loading these slots; the array stays valid
            # until retired, and their try-incref fails once an item dies.
            _release(a.items, n)
            ncc_retire(a, NCL_ARRAY_BYTES(a.capacity))
        return 0

    # ------------------------------------------------------------------
    # size and item access
    # ------------------------------------------------------------------

    def __len__(self):
        # Relaxed; a single atomic load is a linearizable read of the size.
        return ncc_load_ssize_relaxed(&self._s.size)

    def __getitem__(self, index):
        cdef Py_ssize_t i
        cdef PyObject *r
        cdef Py_ssize_t start, stop, step, L = 0
        cdef PyObject **buf
        if PyLong_CheckExact(index):
            i = ncl_exact_long_index(index)
        elif PyIndex_Check(index):
            i = PyNumber_AsSsize_t(index, <PyObject *>IndexError)
        elif PySlice_Check(index):
            PySlice_Unpack(index, &start, &stop, &step)
            buf = self._read_range(True, start, stop, step, &L)
            return _new_from_buffer(buf, L)
        else:
            raise TypeError(
                f"list indices must be integers or slices, not {ncl_type_name(index).decode('utf-8')}")
        r = _item_ref(self, i)
        if r == NULL:
            raise IndexError("list index out of range")
        return ncl_steal(r)

    def __setitem__(self, index, value):
        cdef Py_ssize_t i, n, start, stop, step, L, j, cur
        cdef PyObject *old = NULL
        cdef PyObject *o
        if PyLong_CheckExact(index):
            i = ncl_exact_long_index(index)
        elif PyIndex_Check(index):
            i = PyNumber_AsSsize_t(index, <PyObject *>IndexError)
        elif PySlice_Check(index):
            PySlice_Unpack(index, &start, &stop, &step)
            self._assign_slice(start, stop, step, value)
            return
        else:
            raise TypeError(
                f"list indices must be integers or slices, not {ncl_type_name(index).decode('utf-8')}")
        o = <PyObject *>value
        cdef ncc_cs cs
        ncc_cs_begin(&cs, <PyObject *>self._wlock)
        n = self._s.size
        if i < 0:
            i += n
        if 0 <= i < n:
            old = self._s.array.items[i]
            Py_INCREF(value)
            _pub(self, o)
            self._replace_slot_lh(i, o)
        ncc_cs_end(&cs)
        if old == NULL:
            raise IndexError("list assignment index out of range")
        _decref(old)

    cdef int _assign_slice(self, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t step,
                           object value) except -1:
        cdef object seq = None
        cdef Py_ssize_t n, L, k, j, cur
        cdef PyObject **items
        cdef PyObject **garbage = NULL
        cdef Py_ssize_t ngarbage = 0
        cdef PyObject *o
        if value is not self:
            if isinstance(value, ConcurrentList):
                seq = (<ConcurrentList>value)._snapshot_list()
            elif PyList_Check(value):
                seq = PySequence_List(value)    # one atomic copy under its lock
            elif step == 1 and not _PY312:
                seq = PySequence_Fast(value, b"can only assign an iterable")
            else:
                seq = PySequence_Fast(value, b"must assign iterable to extended slice")
        try:
            with cython.critical_section(self._wlock):
                if value is self:
                    seq = self._locked_copy()
                n = self._s.size
                L = PySlice_AdjustIndices(n, &start, &stop, step)
                k = PySequence_Fast_GET_SIZE(seq)
                items = PySequence_Fast_ITEMS(seq)
                if step == 1:
                    if stop < start:
                        stop = start
                    ngarbage = stop - start
                    if ngarbage:
                        garbage = <PyObject **>PyMem_Malloc(<size_t>ngarbage * sizeof(PyObject *))
                        if garbage == NULL:
                            ngarbage = 0
                            raise MemoryError()
                    try:
                        self._replace_lh(start, stop, items, k, garbage)
                    except BaseException:
                        ngarbage = 0
                        raise
                else:
                    if k != L:
                        raise ValueError(
                            f"attempt to assign sequence of size {k} to extended slice of size {L}")
                    if L:
                        garbage = <PyObject **>PyMem_Malloc(<size_t>L * sizeof(PyObject *))
                        if garbage == NULL:
                            raise MemoryError()
                        for j in range(L):
                            Py_INCREF(<object>items[j])
                            _pub(self, items[j])
                        _struct_begin(self)
                        cur = start
                        for j in range(L):
                            garbage[j] = self._s.array.items[cur]
                            ncc_slot_store(&self._s.array.items[cur], items[j])
                            cur += step
                        _struct_end(self)
                        ngarbage = L
        finally:
            if garbage != NULL:
                _release(garbage, ngarbage)
                PyMem_Free(garbage)
        return 0

    def __delitem__(self, index):
        cdef Py_ssize_t i, n, start, stop, step, L, j, m, lo, hi
        cdef PyObject *g[1]
        cdef PyObject **garbage = NULL
        cdef PyObject **kept = NULL
        cdef Py_ssize_t ngarbage = 0
        g[0] = NULL
        if PyLong_CheckExact(index):
            i = ncl_exact_long_index(index)
        elif PyIndex_Check(index):
            i = PyNumber_AsSsize_t(index, <PyObject *>IndexError)
        elif PySlice_Check(index):
            PySlice_Unpack(index, &start, &stop, &step)
            try:
                with cython.critical_section(self._wlock):
                    n = self._s.size
                    L = PySlice_AdjustIndices(n, &start, &stop, step)
                    if L <= 0:
                        return
                    if step < 0:
                        stop = start + 1
                        start = stop + step * (L - 1) - 1
                        step = -step
                    if step == 1:
                        lo = start
                        hi = start + L
                    else:
                        lo = start
                        hi = start + (L - 1) * step + 1
                    garbage = <PyObject **>PyMem_Malloc(<size_t>(hi - lo) * sizeof(PyObject *))
                    if garbage == NULL:
                        raise MemoryError()
                    m = 0
                    if step != 1:
                        # The survivors inside [lo, hi), in order (borrowed).
                        kept = <PyObject **>PyMem_Malloc(<size_t>(hi - lo - L + 1) * sizeof(PyObject *))
                        if kept == NULL:
                            raise MemoryError()
                        for j in range(lo, hi):
                            if (j - lo) % step:
                                kept[m] = self._s.array.items[j]
                                m += 1
                    self._replace_lh(lo, hi, kept, m, garbage)
                    ngarbage = hi - lo
            finally:
                PyMem_Free(kept)
                if garbage != NULL:
                    _release(garbage, ngarbage)
                    PyMem_Free(garbage)
            return
        else:
            raise TypeError(
                f"list indices must be integers or slices, not {ncl_type_name(index).decode('utf-8')}")
        with cython.critical_section(self._wlock):
            n = self._s.size
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError("list assignment index out of range")
            self._replace_lh(i, i + 1, NULL, 0, g)
        _decref(g[0])

    def __contains__(self, value):
        # Items are read in runs (one read region and one validation per
        # NCL_ITER_BATCH items), but each one is compared only while the run
        # is still valid (no writer moved or replaced an item since it was
        # read), so every comparison is against the item at that index at
        # that moment, as the item-by-item scan promises (ncl_contains).
        return ncl_contains(<PyObject *>self, &self._s, <PyObject *>value, _item_ref_fallback)

    def __iter__(self):
        return _ConcurrentListIterator.__new__(_ConcurrentListIterator, self)

    def __reversed__(self):
        return _ConcurrentListReverseIterator.__new__(_ConcurrentListReverseIterator, self)

    # ------------------------------------------------------------------
    # list methods
    # ------------------------------------------------------------------

    def append(self, object x, /):
        """Append x to the end.  Amortised O(1); atomic."""
        cdef ncc_cs cs
        # Fast path, as CPython's CALL_LIST_APPEND: the writer lock's mutex
        # taken without a critical section when it is free and the array has
        # room, so nothing in between can block (ncc_cs_try_lock's rule).
        if ncc_cs_try_lock(<PyObject *>self._wlock):
            if _append_if_room_lh(self, <PyObject *>x):
                ncc_cs_unlock(<PyObject *>self._wlock)
                return
            ncc_cs_unlock(<PyObject *>self._wlock)
        ncc_cs_begin(&cs, <PyObject *>self._wlock)
        try:
            self._append_lh(x)
        finally:
            ncc_cs_end(&cs)

    def extend(self, iterable, /):
        """Extend from an iterable.  Atomic: the new items appear all at once
        (an iterator is consumed first, outside the lock; if it raises, the
        items it produced are appended before the exception propagates, as
        list.extend leaves them)."""
        self._extend(iterable)

    cdef int _extend(self, object iterable) except -1:
        cdef PyObject *dummy[1]
        cdef list tmp
        cdef ConcurrentList other
        cdef Py_ssize_t n
        if iterable is self:
            with cython.critical_section(self._wlock):
                n = self._s.size
                if n:
                    self._replace_lh(n, n, &self._s.array.items[0], n, dummy)
            return 0
        # Exact types only, as list.extend: a subclass may override __iter__.
        if type(iterable) is ConcurrentList:
            other = <ConcurrentList>iterable
            with cython.critical_section(self._wlock, other._wlock):
                n = self._s.size
                if other._s.size:
                    self._replace_lh(n, n, &other._s.array.items[0], other._s.size, dummy)
            return 0
        if PyList_CheckExact(iterable):
            with cython.critical_section(self._wlock, iterable):
                n = self._s.size
                if PyList_GET_SIZE(iterable):
                    self._replace_lh(n, n, PySequence_Fast_ITEMS(iterable),
                                     PyList_GET_SIZE(iterable), dummy)
            return 0
        if PyTuple_CheckExact(iterable):
            with cython.critical_section(self._wlock):
                n = self._s.size
                if len(<tuple>iterable):
                    self._replace_lh(n, n, PySequence_Fast_ITEMS(iterable),
                                     len(<tuple>iterable), dummy)
            return 0
        tmp = []
        try:
            for x in iterable:
                tmp.append(x)
        except BaseException:
            if tmp:
                self._extend(tmp)
            raise
        if tmp:
            self._extend(tmp)
        return 0

    def insert(self, Py_ssize_t index, object x, /):
        """Insert x before index (clamped like list.insert).  O(n); atomic."""
        cdef Py_ssize_t n
        cdef PyObject *src[1]
        cdef PyObject *dummy[1]
        src[0] = <PyObject *>x
        with cython.critical_section(self._wlock):
            n = self._s.size
            if index < 0:
                index += n
                if index < 0:
                    index = 0
            if index > n:
                index = n
            self._replace_lh(index, index, src, 1, dummy)

    def pop(self, Py_ssize_t index=-1, /):
        """Remove and return the item at index (default last).  Atomic."""
        cdef Py_ssize_t n
        cdef PyObject *g[1]
        cdef ncc_cs cs
        g[0] = NULL
        # Fast path for the last item without a shrink, as append's: the bare
        # mutex (ncc_cs_try_lock), since nothing in _pop_last_lh can block;
        # the reference it takes is the caller's, released by nobody here.
        if index == -1 and ncc_cs_try_lock(<PyObject *>self._wlock):
            g[0] = _pop_last_lh(self)
            ncc_cs_unlock(<PyObject *>self._wlock)
            if g[0] != NULL:
                return ncl_steal(g[0])
        ncc_cs_begin(&cs, <PyObject *>self._wlock)   # see ncc_cs_begin
        try:
            n = self._s.size
            if n == 0:
                raise IndexError("pop from empty list")
            if index < 0:
                index += n
            if not 0 <= index < n:
                raise IndexError("pop index out of range")
            if index == n - 1:
                g[0] = _pop_last_lh(self)
            if g[0] == NULL:
                self._replace_lh(index, index + 1, NULL, 0, g)
        finally:
            ncc_cs_end(&cs)
        # The array's reference becomes the caller's.
        return ncl_steal(g[0])

    cdef Py_ssize_t _find_lh(self, object value) except -2:
        """Index of the first item equal to value (identity, then ==), or -1.
        Critical section held.  __eq__ may suspend the section (or mutate the
        list itself): if the version moved during a comparison the scan
        restarts, up to NCL_FIND_RESTARTS times; after that it continues
        from where it was, as list does."""
        cdef Py_ssize_t i = 0
        cdef int restarts = 0
        cdef _Stamp v
        cdef object item
        cdef PyObject *o
        cdef int cmp
        while i < self._s.size:
            o = self._s.array.items[i]
            # Identity on the borrowed pointer: a reference taken here would
            # be dropped on return, after the last check and before the
            # caller (remove) acts on i, and that decref can suspend the
            # critical section (the biased-refcount queue's mutex), letting
            # another writer shrink the list under the returned index.
            if o == <PyObject *>value:
                return i
            item = <object>o
            v = _stamp(self)
            NCC_SUSPEND_POINT_CHECKED("list.eq", &self._s.version)
            cmp = PyObject_RichCompareBool(item, value, Py_EQ)
            NCC_SUSPEND_POINT_CHECKED("list.eq.decref", &self._s.version)
            item = None
            if not _same(self, v) and restarts < NCL_FIND_RESTARTS:
                restarts += 1
                i = 0
                continue
            if cmp:
                return i if i < self._s.size else -1
            i += 1
        return -1

    def remove(self, value, /):
        """Remove the first item equal to value.  ValueError if absent."""
        cdef Py_ssize_t i
        cdef PyObject *g[1]
        g[0] = NULL
        with cython.critical_section(self._wlock):
            i = self._find_lh(value)
            if i < 0:
                raise ValueError("list.remove(x): x not in list")
            self._replace_lh(i, i + 1, NULL, 0, g)
        _decref(g[0])

    def index(self, value, start=0, stop=PY_SSIZE_T_MAX, /):
        """First index of value in [start, stop).  ValueError if absent."""
        cdef Py_ssize_t i0 = _slice_index(start)
        cdef Py_ssize_t i1 = _slice_index(stop)
        cdef Py_ssize_t n = ncc_load_ssize_relaxed(&self._s.size)
        cdef Py_ssize_t i
        cdef PyObject *r
        cdef object item
        if i0 < 0:
            i0 += n
            if i0 < 0:
                i0 = 0
        if i1 < 0:
            i1 += n
            if i1 < 0:
                i1 = 0
        i = i0
        while i < i1:
            r = _item_ref(self, i)
            if r == NULL:
                break
            item = ncl_steal(r)
            if PyObject_RichCompareBool(item, value, Py_EQ):
                return i
            i += 1
        # list.index's message on this Python version (_core/messages.h).
        if NCC_LIST_INDEX_NOT_FOUND_FIXED:
            raise ValueError("list.index(x): x not in list")
        raise ValueError(f"{value!r} is not in list")

    def count(self, value, /):
        """Number of items equal to value (each item read atomically)."""
        cdef Py_ssize_t i = 0, c = 0
        cdef PyObject *r
        cdef object item
        while True:
            r = _item_ref(self, i)
            if r == NULL:
                return c
            item = ncl_steal(r)
            if PyObject_RichCompareBool(item, value, Py_EQ):
                c += 1
            i += 1

    def clear(self):
        """Remove all items.  Atomic."""
        self._items_clear()

    def copy(self):
        """A shallow copy (a ConcurrentList) of one consistent state."""
        cdef Py_ssize_t L = 0
        cdef PyObject **buf = self._read_range(False, 0, 0, 1, &L)
        return _new_from_buffer(buf, L)

    def snapshot(self):
        """A builtin ``list`` holding the items of one consistent state,
        taken without the lock (falls back to it under heavy writes)."""
        return self._snapshot_list()

    def reverse(self):
        """Reverse in place.  Atomic."""
        cdef Py_ssize_t lo, hi
        cdef PyObject *t
        cdef ncl_array *a
        with cython.critical_section(self._wlock):
            a = self._s.array
            lo = 0
            hi = self._s.size - 1
            if hi > 0:
                _struct_begin(self)
                while lo < hi:
                    t = a.items[lo]
                    ncc_slot_store(&a.items[lo], a.items[hi])
                    ncc_slot_store(&a.items[hi], t)
                    lo += 1
                    hi -= 1
                _struct_end(self)

    def sort(self, *args, **kwargs):
        """Stable sort in place, as list.sort.  Atomic: the items are sorted
        in a private copy (readers keep seeing the old order) and the result
        is published in one step.  If the list changes while the key function
        or comparisons run (they suspend the lock when they block, or mutate
        the list themselves) the sort is abandoned with
        ``ValueError("list modified during sort")`` and the list keeps those
        changes."""
        cdef _Stamp v0
        cdef list tmp
        # Validate the arguments exactly as list.sort does (an empty list
        # never calls key): same errors, same messages on every version.
        [].sort(*args, **kwargs)
        with cython.critical_section(self._wlock):
            v0 = _stamp(self)
            tmp = self._locked_copy()
            try:
                if NCC_FAULT_INJECTION_ENABLED and _sort_may_call_python(tmp, kwargs):
                    NCC_SUSPEND_POINT_CHECKED("list.sort.call", &self._s.version)
                tmp.sort(**kwargs)
            except BaseException:
                # list leaves a partially sorted list behind: do the same.
                if _same(self, v0):
                    self._publish_order(tmp)
                raise
            if not _same(self, v0):
                raise ValueError("list modified during sort")
            self._publish_order(tmp)

    cdef void _publish_order(self, list tmp) noexcept:
        """Store a permutation of the current items (same size, same objects)."""
        cdef Py_ssize_t j, n = self._s.size
        cdef ncl_array *a = self._s.array
        cdef PyObject **src = PySequence_Fast_ITEMS(tmp)
        if n < 2:
            return
        _struct_begin(self)
        for j in range(n):
            ncc_slot_store(&a.items[j], src[j])
        _struct_end(self)

    # ------------------------------------------------------------------
    # atomic compound operations beyond list
    # ------------------------------------------------------------------

    def append_if_absent(self, x, /):
        """Append x unless an equal item (identity, then ==) is present.
        Returns True if appended.  Atomic with respect to other writers."""
        with cython.critical_section(self._wlock):
            if self._find_lh(x) >= 0:
                return False
            self._append_lh(x)
            return True

    cdef void _mutant_speculative_store(self, Py_ssize_t i, object new) noexcept:
        # NCL_MUTANT_SPECULATIVE_CAS: inside ONE replacement window, store
        # `new`, hold it for 1 ms (busy-waiting, the lock stays held), then
        # put the old item back (50 us was missed by the CI-budget campaign
        # once, on a machine whose two cores were shared with other work).
        # Multi-slot readers see the odd replace_seq and retry; single-item
        # readers, which validate the slot rather than a counter, can return
        # `new`.  Under the previous design (every
        # replacement inside a global-version window) the same mutant was
        # invisible to every reader.  No reference changes hands: the slot
        # never owns `new`, and the caller holds one for the whole window.
        cdef PyObject *cur = self._s.array.items[i]
        _pub(self, <PyObject *>new)
        ncc_seq_write_begin(&self._s.replace_seq)
        ncc_slot_store(&self._s.array.items[i], <PyObject *>new)
        ncc_spin_for(1e-3)
        ncc_slot_store(&self._s.array.items[i], cur)
        ncc_seq_write_end(&self._s.replace_seq)

    def compare_and_set(self, Py_ssize_t index, expected, new, /):
        """If self[index] is expected, or == expected (as list.index
        matches), replace it by new and return True; else return False.
        IndexError if index is out of range.  Atomic: if the list changes
        while ``==`` runs, the item at index is read again; the same item
        object is equal (its answer is kept), another one is compared
        again; after repeated interference only identity is used."""
        cdef Py_ssize_t n, i
        cdef int restarts = 0
        cdef int cmp
        cdef _Stamp v
        cdef object cur
        # The item found equal to expected while the list changed during its
        # __eq__ (a strong reference: `is` names that object): found again
        # at index, it is still equal (docs/design.md, "Restarts after a
        # concurrent write: the bounds").
        cdef object equal_item = None
        cdef bint have_equal = False
        cdef PyObject *old = NULL
        with cython.critical_section(self._wlock):
            while True:
                n = self._s.size
                i = index + n if index < 0 else index
                if not 0 <= i < n:
                    raise IndexError("list assignment index out of range")
                cur = <object>self._s.array.items[i]
                if ncl_mutant == NCL_MUTANT_SPECULATIVE_CAS and restarts == 0:
                    # Deliberately broken (tests only): `new` is visible to
                    # readers before `expected` has been compared.
                    self._mutant_speculative_store(i, new)
                if cur is expected or (have_equal and cur is equal_item):
                    cmp = 1
                elif restarts >= NCL_FIND_RESTARTS:
                    cmp = 0
                else:
                    v = _stamp(self)
                    NCC_SUSPEND_POINT_CHECKED("list.eq", &self._s.version)
                    cmp = PyObject_RichCompareBool(cur, expected, Py_EQ)
                    if not cmp:
                        # self[index] was cur when read under the lock,
                        # before the call: the comparison failed then.
                        return False
                    # (Replacing equal_item may drop the last reference to
                    # the previous one: before the re-check below.)
                    equal_item = cur
                    have_equal = True
                    NCC_SUSPEND_POINT_CHECKED("list.eq.decref", &self._s.version)
                    cur = None
                    if not _same(self, v):
                        restarts += 1
                        continue
                if not cmp:
                    return False
                old = self._s.array.items[i]
                Py_INCREF(new)
                _pub(self, <PyObject *>new)
                self._replace_slot_lh(i, <PyObject *>new)
                break
        cur = None
        equal_item = None
        _decref(old)
        return True

    def update(self, Py_ssize_t index, fn, /):
        """Atomically replace self[index] by fn(self[index]); return the new
        value.  fn runs holding the list's lock, so it normally runs exactly
        once; if fn blocks (which suspends the lock) or mutates the list and
        meanwhile the item at index was replaced or the list changed
        structurally, its result is discarded and fn runs again on the
        current item (RuntimeError after 100 such attempts).  If fn raises,
        the list is unchanged."""
        cdef Py_ssize_t n, i
        cdef int attempt
        cdef uint64_t v
        cdef object cur = None, res = None
        cdef PyObject *old = NULL
        for attempt in range(NCL_UPDATE_ATTEMPTS):
            with cython.critical_section(self._wlock):
                n = self._s.size
                i = index + n if index < 0 else index
                if not 0 <= i < n:
                    raise IndexError("list index out of range")
                # A strong reference, kept until the lock is left: the
                # identity check below must not meet a new object at a freed
                # one's address, and the decref must not run __del__ (or
                # suspend the section) between the check and the store.
                cur = <object>self._s.array.items[i]
                v = self._s.version
                NCC_SUSPEND_POINT_CHECKED("list.update.call", &self._s.version)
                res = fn(cur)
                # fn's result may only land on the item it was computed from.
                # Only what could change that item counts: a structural
                # change (every shrink, move or reallocation moves `version`),
                # an append when the index counts from the end (it moves
                # what -k means), or a replacement of this very slot (the
                # slot no longer holds cur).  A replacement of another slot
                # (replace_seq alone) or an append under a non-negative index
                # leaves self[index] as it was: the store below is then
                # exactly `self[index] = fn(self[index])` at this instant.
                if self._s.version == v and (index >= 0 or self._s.size == n) \
                        and self._s.array.items[i] == <PyObject *>cur:
                    old = self._s.array.items[i]
                    Py_INCREF(res)
                    _pub(self, <PyObject *>res)
                    self._replace_slot_lh(i, <PyObject *>res)
            # Outside the lock: either may be the last reference (__del__).
            cur = None
            if old != NULL:
                _decref(old)
                return res
            res = None
        raise RuntimeError("list modified during update: gave up after "
                           f"{NCL_UPDATE_ATTEMPTS} attempts")

    # ------------------------------------------------------------------
    # heap operations: heapq's functions, atomic (helpers: "heap engine")
    # ------------------------------------------------------------------

    def heappush(self, item, /):
        """Push item onto the heap, as ``heapq.heappush(lst, item)``.
        O(log n) comparisons; atomic (see "heap engine" below)."""
        _heap_op(self, NCL_HEAP_PUSH, item)

    def heappop(self):
        """Pop and return the smallest item, as ``heapq.heappop(lst)``.
        ``IndexError("index out of range")`` if empty.  Atomic."""
        return _heap_op(self, NCL_HEAP_POP, None)

    def heappushpop(self, item, /):
        """Push item, then pop and return the smallest item, as
        ``heapq.heappushpop(lst, item)`` (item itself if it is smallest).
        Atomic."""
        return _heap_op(self, NCL_HEAP_PUSHPOP, item)

    def heapreplace(self, item, /):
        """Pop and return the smallest item, then push item, as
        ``heapq.heapreplace(lst, item)``.  ``IndexError`` if empty.  Atomic."""
        return _heap_op(self, NCL_HEAP_REPLACE, item)

    def heapify(self):
        """Turn the list into a heap in place, as ``heapq.heapify(lst)``.
        O(n) comparisons on a private copy, published in one step.  Atomic."""
        _heap_op(self, NCL_HEAP_HEAPIFY, None)

    # ------------------------------------------------------------------
    # operators
    # ------------------------------------------------------------------

    def __add__(self, other):
        cdef ConcurrentList o
        cdef ConcurrentList res
        cdef PyObject **ba = NULL
        cdef PyObject **bb = NULL
        cdef Py_ssize_t la = 0, lb = 0
        if isinstance(other, ConcurrentList):
            o = <ConcurrentList>other
            self._locked_pair(o, &ba, &la, &bb, &lb)
            a = _list_from_buffer(ba, la, bb, lb)
            b = _list_from_buffer(bb, lb)
            res = ConcurrentList.__new__(ConcurrentList)
            res._extend(a)
            res._extend(b)
            return res
        if isinstance(other, list):
            res = ConcurrentList.__new__(ConcurrentList)
            res._extend(self._snapshot_list())
            res._extend(other)
            return res
        # Unknown operand: let its __radd__ try, then _sq_concat raises
        # list's message.
        return NotImplemented

    def __radd__(self, other):
        cdef ConcurrentList res
        if isinstance(other, list):
            res = ConcurrentList.__new__(ConcurrentList)
            res._extend(other)
            res._extend(self._snapshot_list())
            return res
        return NotImplemented

    def __iadd__(self, other):
        self._extend(other)
        return self

    cdef object _repeat(self, Py_ssize_t c):
        cdef Py_ssize_t L = 0, j
        cdef PyObject **buf
        cdef ncl_array *a
        cdef ConcurrentList res = ConcurrentList.__new__(ConcurrentList)
        buf = self._read_range(False, 0, 0, 1, &L)
        try:
            if c <= 0 or L == 0:
                return res
            if L > PY_SSIZE_T_MAX // c:
                raise MemoryError()
            a = ncl_array_new(L * c)
            if a == NULL:
                raise MemoryError()
            for j in range(L * c):
                a.items[j] = buf[j % L]
                Py_INCREF(<object>buf[j % L])
            # Unshared yet: plain stores.
            res._s.array = a
            res._s.size = L * c
            return res
        finally:
            _release(buf, L)
            PyMem_Free(buf)

    def __mul__(self, count):
        if not PyIndex_Check(count):
            return NotImplemented   # then _sq_repeat raises list's message
        return self._repeat(PyNumber_AsSsize_t(count, <PyObject *>OverflowError))

    def __rmul__(self, count):
        if not PyIndex_Check(count):
            return NotImplemented
        return self._repeat(PyNumber_AsSsize_t(count, <PyObject *>OverflowError))

    def __imul__(self, count):
        cdef Py_ssize_t c, n, j
        cdef ncl_array *a
        cdef ncl_array *old
        if not PyIndex_Check(count):
            return NotImplemented   # then sq_repeat raises list's message
        c = PyNumber_AsSsize_t(count, <PyObject *>OverflowError)
        if c <= 0:
            self._items_clear()
            return self
        if c == 1:
            return self
        with cython.critical_section(self._wlock):
            n = self._s.size
            if n == 0:
                return self
            if n > PY_SSIZE_T_MAX // c:
                raise MemoryError()
            old = self._s.array
            a = ncl_array_new(n * c)
            if a == NULL:
                raise MemoryError()
            for j in range(n * c):
                a.items[j] = old.items[j % n]
                if j >= n:
                    Py_INCREF(<object>old.items[j % n])
            ncc_seq_write_begin(&self._s.version)
            ncc_store_ssize_relaxed(&self._s.size, n * c)
            self._publish_array(a)
            ncc_seq_write_end(&self._s.version)
            ncc_retire(old, NCL_ARRAY_BYTES(old.capacity))
        return self

    @classmethod
    def immortal(cls, *args, **kwargs):
        """immortal(iterable=(), /): a new list, like ``cls(iterable)``, that
        is never freed.

        The list object is never freed: on free-threaded builds it becomes
        immortal before ``__init__`` runs (which gets every argument, also
        for subclasses), so no thread ever writes its reference count, even
        through a global or ``self.lst``.  Removed items are freed as usual;
        ``copy()``, slices and ``+`` return ordinary lists.  Only for lists
        that live as long as the process; on GIL builds an ordinary list.
        See docs/guarantees.md, "Immortal containers".

        >>> SHARED = ConcurrentList.immortal([1, 2])
        >>> SHARED
        [1, 2]
        """
        return _new_immortal(cls, ConcurrentList, args, kwargs)

    def handle(self):
        """A per-thread handle: this list's whole API, reached without
        touching the list's reference count (see ConcurrentListHandle and
        docs/guarantees.md, "Handles").  Take one per worker thread."""
        return _Handle._new(self)

    # ------------------------------------------------------------------
    # comparisons, repr, hashing, typing, pickling, sizeof
    # ------------------------------------------------------------------

    def __richcmp__(self, other, int op):
        cdef ConcurrentList o
        cdef PyObject **ba = NULL
        cdef PyObject **bb = NULL
        cdef Py_ssize_t la = 0, lb = 0
        if isinstance(other, ConcurrentList):
            o = <ConcurrentList>other
            if o is self:
                a = self._snapshot_list()
                return PyObject_RichCompare(a, a, op)
            # Both states from the same instant: hold both locks.
            self._locked_pair(o, &ba, &la, &bb, &lb)
            a = _list_from_buffer(ba, la, bb, lb)
            b = _list_from_buffer(bb, lb)
            return PyObject_RichCompare(a, b, op)
        if isinstance(other, list):
            return PyObject_RichCompare(self._snapshot_list(), other, op)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        cdef list snap = self._snapshot_list()
        if not snap:
            # list's repr returns "[]" before recursion tracking; same here.
            return "[]"
        if Py_ReprEnter(self):
            return "[...]"
        try:
            return repr(snap)
        finally:
            Py_ReprLeave(self)

    __class_getitem__ = classmethod(_GenericAlias)

    def __reduce_ex__(self, protocol):
        # One consistent snapshot of the items (_snapshot_list).  A subclass
        # copies and pickles exactly like a list subclass (no __init__ call,
        # __dict__ and __slots__ state, items added through its extend /
        # append): nogil_collections/_reduce.py.
        if type(self) is ConcurrentList:
            return (_newobj, (ConcurrentList,), None, iter(self._snapshot_list()), None)
        return _reduce_subclass(self, protocol, ConcurrentList, self._snapshot_list(), False)

    def __sizeof__(self):
        cdef Py_ssize_t cap = 0
        # Under the lock: rare, and it needs no protocol of its own.
        with cython.critical_section(self._wlock):
            if self._s.array != NULL:
                cap = self._s.array.capacity
        return object.__sizeof__(self) + (<Py_ssize_t>NCL_ARRAY_BYTES(cap) if cap else 0)

    # ------------------------------------------------------------------
    # debugging
    # ------------------------------------------------------------------

    def _check(self):
        """Raise AssertionError if an internal invariant is broken."""
        cdef Py_ssize_t n, j, cap
        cdef ncl_array *a
        cdef Py_ssize_t off = <Py_ssize_t>(<char *>&self._s - <char *><PyObject *>self)
        with cython.critical_section(self._wlock):
            n = self._s.size
            a = self._s.array
            v = self._s.version
            if v & 1:
                raise AssertionError(f"version {v} is odd outside a write")
            if self._s.replace_seq & 1:
                raise AssertionError(f"replace_seq {self._s.replace_seq} is odd outside a write")
            if n < 0:
                raise AssertionError(f"negative size {n}")
            if a == NULL:
                if n != 0:
                    raise AssertionError(f"size {n} with no array")
                return
            cap = a.capacity
            if n > cap:
                raise AssertionError(f"size {n} > capacity {cap}")
            for j in range(n):
                if a.items[j] == NULL:
                    raise AssertionError(f"NULL item at {j} < size {n}")
            for j in range(n, cap):
                if a.items[j] != NULL:
                    raise AssertionError(f"stale pointer at {j} >= size {n}")
        # Hot fields off the header's cache line whatever the alignment: the
        # header is at most 32 bytes; 96 bytes later is always another line.
        if off < 96:
            raise AssertionError(f"hot fields at offset {off} share the header's line")
        # replace_seq (stored by every value replacement) never on the line
        # of the fields every reader loads.
        roff = <Py_ssize_t>(<char *>&self._s.replace_seq - <char *>&self._s)
        if roff < 64 + 4 + <Py_ssize_t>(<char *>&self._s.shared - <char *>&self._s):
            raise AssertionError(f"replace_seq at {roff} may share the readers' line")

    def _layout(self):
        """(offset of the hot fields, capacity) for tests."""
        cdef ncl_array *a = self._s.array
        return (<Py_ssize_t>(<char *>&self._s - <char *><PyObject *>self),
                a.capacity if a != NULL else 0)


cdef inline PyObject *_item_ref(ConcurrentList self, Py_ssize_t i) noexcept:
    """New reference to self[i] (negative i counts from the end), or NULL
    if out of range at the linearization point.  Never raises.  The
    lock-free protocol is ncl_read_item (_list_array.h)."""
    cdef PyObject *r = NULL
    cdef int st = ncl_read_item(<PyObject *>self, &self._s, i, &r)
    if st == NCL_READ_GOT:
        return r
    if st == NCL_READ_OUT_OF_RANGE:
        return NULL
    _mark_shared(self)
    return self._item_ref_locked(i)


cdef PyObject *_item_ref_fallback(PyObject *self, Py_ssize_t i) noexcept:
    # For C code (ncl_contains): _item_ref on a borrowed pointer.
    return _item_ref(<ConcurrentList>self, i)


cdef inline _Stamp _stamp(ConcurrentList self) noexcept:
    # Writers (lock held): what identifies the list's state for a writer that
    # must notice that the critical section was suspended (user code blocked)
    # and another writer ran meanwhile.  Both counters only grow; an append
    # moves neither, but it grows the size, and every shrink moves `version`.
    cdef _Stamp st
    st.changes = self._s.version + self._s.replace_seq
    st.size = self._s.size
    return st


cdef inline bint _same(ConcurrentList self, _Stamp st) noexcept:
    return self._s.version + self._s.replace_seq == st.changes and self._s.size == st.size


cdef inline void _struct_begin(ConcurrentList self) noexcept:
    # Opens the window of a structural change that moves, replaces or
    # removes items: `version` (every lock-free reader validates it) and,
    # nested in it, `replace_seq`, so that the batched iterator and `in`
    # check one word per item (ncl_run_still_valid).  A pure reallocation
    # (growth, *=) changes no item's index and opens `version` alone.
    # Relaxed stores + release fences (seqlock.h); pair with the readers'
    # acquire fences in their validation.
    ncc_seq_write_begin(&self._s.version)
    ncc_seq_write_begin(&self._s.replace_seq)


cdef inline void _struct_end(ConcurrentList self) noexcept:
    # Release stores; pair with the readers' acquire loads of both counters.
    ncc_seq_write_end(&self._s.replace_seq)
    ncc_seq_write_end(&self._s.version)


cdef inline bint _is_shared(ConcurrentList self) noexcept:
    # Relaxed: see _mark_shared.  Always false on GIL builds, where no reader
    # runs while a writer holds the GIL.
    return NCC_FREE_THREADED and ncc_load_uint32_relaxed(&self._s.shared) != 0


cdef inline void _mark_shared(ConcurrentList self) noexcept:
    # Relaxed load/store of a sticky flag; readers and writers may race to
    # set it, all storing 1.  A writer that missed it stored an unpublished
    # item: readers then fail try-incref on it and take the locked path,
    # which publishes it (_item_ref_locked), so this is only a fast-path hint.
    if not ncc_load_uint32_relaxed(&self._s.shared) and ncl_foreign(<PyObject *>self):
        ncc_store_uint32_relaxed(&self._s.shared, 1)


cdef inline bint _inplace_begin(ConcurrentList self) noexcept:
    # Lock held.  Opens the window of an in-place resize (realloc, no QSBR
    # grace period; docs/design.md, "Growth and shrink policy"): True with
    # `version` odd (ncl_inplace_begin) when no other thread can be reading
    # the array; the caller then ends it with ncc_seq_write_end.  False when
    # the caller must copy instead, with no window left open.  A foreign
    # writer marks the list shared first: the owner thread may be reading it
    # lock-free and never announces itself.
    _mark_shared(self)
    if _is_shared(self):
        return False
    if ncl_inplace_begin(&self._s):
        return True
    # A reader announced itself meanwhile: close the window, copy instead.
    ncc_seq_write_end(&self._s.version)
    return False


cdef inline void _pub(ConcurrentList self, PyObject *o) noexcept:
    # Writers, lock held: flag o maybe-weakref (ncc_publish) once the list is
    # shared, so lock-free readers in other threads can try-incref it
    # (gh-124642).  An unshared list skips the CAS (it also makes o's later
    # deallocation take CPython's slower merge path).
    _mark_shared(self)
    if ncc_load_uint32_relaxed(&self._s.shared):
        ncc_publish(o)


cdef inline bint _append_if_room_lh(ConcurrentList self, PyObject *x) noexcept:
    """Append x if the array has room: 1, else 0 and nothing done.  Lock
    held (a critical section or ncc_cs_try_lock).  Cannot block: no
    allocation, no decref, no call into Python (an incref, a CAS on x's
    shared count and two release stores), so it is fit for the bare mutex of
    ncc_cs_try_lock.  The same stores, in the same order, as _append_lh."""
    cdef Py_ssize_t n = self._s.size
    cdef ncl_array *a = self._s.array
    if a == NULL or n >= a.capacity:
        return 0
    Py_INCREF(<object>x)
    _pub(self, x)
    # Release; beyond the size: see _append_many_lh.
    ncc_slot_store(&a.items[n], x)
    # Release; pairs with the readers' acquire load of the size.
    ncc_store_ssize_release(&self._s.size, n + 1)
    return 1


cdef inline PyObject *_pop_last_lh(ConcurrentList self) noexcept:
    """Remove the last item and return its reference when that needs no
    shrink; NULL (nothing done) when the list is empty or would shrink.
    Lock held (a critical section or ncc_cs_try_lock).  Cannot block: two
    counter windows, a slot store and a size store."""
    cdef Py_ssize_t n = self._s.size
    cdef ncl_array *a = self._s.array
    cdef PyObject *item
    if n == 0 or (n - 1) < (a.capacity >> 1):
        return NULL
    item = a.items[n - 1]
    _struct_begin(self)
    ncc_slot_store(&a.items[n - 1], NULL)
    ncc_store_ssize_relaxed(&self._s.size, n - 1)
    _struct_end(self)
    return item


cdef inline void _decref(PyObject *o) noexcept:
    Py_XDECREF(o)


cdef bint _sort_may_call_python(list items, dict kwargs):
    """Fault-injection builds only: whether list.sort will call Python code
    (a key function, or a comparison other than the C ones of int, float,
    str and bytes), i.e. whether sorting can suspend the critical section
    at all.  A sort of such builtin items runs no eval-breaker check and
    cannot be suspended, so injecting there would report a race that
    cannot happen."""
    if kwargs.get("key") is not None:
        return True
    for x in items:
        if type(x) not in (int, float, str, bytes):
            return True
    return False


cdef list _list_from_buffer(PyObject **buf, Py_ssize_t L,
                            PyObject **other=NULL, Py_ssize_t other_len=0):
    """A builtin list taking the L references in buf (a PyMem_Malloc'ed
    buffer, freed here).  On failure `other` (a second such buffer, if any)
    is released and freed too."""
    cdef list res
    cdef Py_ssize_t j
    try:
        res = PyList_New(L)
    except BaseException:
        _release(buf, L)
        PyMem_Free(buf)
        _release(other, other_len)
        PyMem_Free(other)
        raise
    for j in range(L):
        ncl_list_set(res, j, buf[j])   # the list takes the buffer's reference
    PyMem_Free(buf)
    return res


cdef Py_ssize_t _slice_index(object o) except? -1:
    # As _PyEval_SliceIndexNotNone: __index__ required, overflow clamps.
    if not PyIndex_Check(o):
        raise TypeError("slice indices must be integers or have an __index__ method")
    return PyNumber_AsSsize_t(o, NULL)


cdef ConcurrentList _new_from_buffer(PyObject **buf, Py_ssize_t L):
    """A new ConcurrentList owning the L references in buf (buf is freed)."""
    cdef ConcurrentList res
    cdef ncl_array *a
    cdef Py_ssize_t j
    try:
        res = ConcurrentList.__new__(ConcurrentList)
        if L:
            a = ncl_array_new(L)
            if a == NULL:
                raise MemoryError()
            memcpy(&a.items[0], buf, <size_t>L * sizeof(PyObject *))
            # Unshared yet: plain stores; a later publication of `res` to
            # other threads goes through their own synchronisation.
            res._s.array = a
            res._s.size = L
            L = 0
        return res
    finally:
        _release(buf, L)
        PyMem_Free(buf)


cdef int _clear_for_gc(PyObject *o) noexcept:
    try:
        (<ConcurrentList>o)._items_clear()
    except BaseException:
        return -1
    return 0


ncl_patch_gc(ConcurrentList,
             ConcurrentList.__new__(ConcurrentList)._layout()[0],
             _clear_for_gc)


cdef object _sq_concat(object a, object b):
    # PyNumber_Add reaches this only when b is neither list nor
    # ConcurrentList and b's __radd__ (if any) returned NotImplemented;
    # PySequence_Concat (operator.concat) calls it first.
    if isinstance(b, (ConcurrentList, list)):
        return a + b
    raise TypeError(f'can only concatenate list (not "{ncl_type_name(b).decode("utf-8")}") to list')


cdef object _sq_repeat(object a, Py_ssize_t n):
    return (<ConcurrentList>a)._repeat(n)


cdef object _sq_inplace_concat(object a, object b):
    (<ConcurrentList>a)._extend(b)
    return a


cdef object _sq_inplace_repeat(object a, Py_ssize_t n):
    return a.__imul__(n)


ncl_patch_seq(ConcurrentList, _sq_concat, _sq_repeat, _sq_inplace_concat, _sq_inplace_repeat)


# ----------------------------------------------------------------------
# heap engine: heapq's algorithms (Modules/_heapqmodule.c) on the list
# ----------------------------------------------------------------------
#
# The same comparisons, in the same order, on the same operands as heapq's C
# functions, so results, final order and exceptions match heapq exactly.
# Atomicity: no slot is written while comparisons run.  The sift works on a
# private view (a per-level overlay of the O(log n) positions one
# push/pop touches, or a private copy of every slot for heapify) and the
# result is published in one seqlock write.  Comparisons run with the
# critical section held but can suspend it (a __lt__ that blocks) or mutate
# the list themselves, so after every comparison the list's stamp (_stamp:
# both change counters and the size, so replacements and appends count too)
# is re-checked:
# * unchanged: carry on (the borrowed slot pointers are still owned by the
#   list, nothing else can have run);
# * the size changed: RuntimeError("list changed size during iteration"),
#   heapq's error for that case (heapq's heappushpop raises IndexError if
#   the list became empty during its first comparison: same here);
# * same size, other contents: start again on the current contents, up to
#   NCL_FIND_RESTARTS times, then RuntimeError.
# A comparison that raises while the list is unchanged leaves the list as
# heapq does (the moves made so far are published, and an item heapq drops
# is dropped).  If the list did change, the operation has no effect.

cdef extern from "Python.h":
    void *PyMem_RawMalloc(size_t n)
    void PyMem_RawFree(void *p)
    int Py_LT

cdef enum:
    NCL_HEAP_PUSH = 0
    NCL_HEAP_POP = 1
    NCL_HEAP_PUSHPOP = 2
    NCL_HEAP_REPLACE = 3
    NCL_HEAP_HEAPIFY = 4
    # A push or pop touches at most one position per level of the tree.
    NCL_HEAP_LEVELS = 64
    # _heap_lt's answer when the list changed while the comparison ran.
    NCL_HEAP_DISTURBED = 2


cdef struct _HeapView:
    PyObject **base           # the list's slots at version v0 (borrowed)
    PyObject **full           # heapify: private copy of every slot, else NULL
    Py_ssize_t size           # size of the heap being built
    int nlev                  # levels in use: positions 0..n0 (n0 = size at the start)
    Py_ssize_t lvl_pos[NCL_HEAP_LEVELS]   # overlay: position written at each level
    PyObject *lvl_obj[NCL_HEAP_LEVELS]    # ... and its object (borrowed)


cdef extern from *:
    """
    /* Tree level of heap position i (0 for the root): floor(log2(i + 1)).
     * Called for every overlay access, so one instruction where possible. */
    static inline int ncl_heap_level(Py_ssize_t i) {
    #if defined(__GNUC__) || defined(__clang__)
        return 63 - __builtin_clzll((unsigned long long)i + 1ULL);
    #else
        unsigned long long x = (unsigned long long)i + 1ULL;
        int lvl = 0;
        while (x > 1) { x >>= 1; lvl++; }
        return lvl;
    #endif
    }
    """
    int _heap_level "ncl_heap_level"(Py_ssize_t i) noexcept


cdef inline PyObject *_hv_get(_HeapView *h, Py_ssize_t i) noexcept:
    cdef int lvl
    if h.full != NULL:
        return h.full[i]
    lvl = _heap_level(i)
    if h.lvl_pos[lvl] == i:
        return h.lvl_obj[lvl]
    return h.base[i]


cdef inline void _hv_set(_HeapView *h, Py_ssize_t i, PyObject *o) noexcept:
    cdef int lvl
    if h.full != NULL:
        h.full[i] = o
        return
    # Every sift of one push/pop walks a single root-to-leaf path: one
    # position per level.
    lvl = _heap_level(i)
    h.lvl_pos[lvl] = i
    h.lvl_obj[lvl] = o


cdef int _heap_lt(ConcurrentList self, _Stamp v0, PyObject *a, PyObject *b) except -1:
    """a < b as heapq compares (both held by a new reference meanwhile).
    NCL_HEAP_DISTURBED if the list changed while it ran.  Lock held."""
    cdef object x = <object>a
    cdef object y = <object>b
    cdef int cmp = PyObject_RichCompareBool(x, y, Py_LT)
    # Drop our references before the re-check: a decref can suspend too.
    x = None
    y = None
    if not _same(self, v0):
        return NCL_HEAP_DISTURBED
    return cmp


cdef int _hv_siftdown(ConcurrentList self, _Stamp v0, _HeapView *h,
                      Py_ssize_t startpos, Py_ssize_t pos) except -1:
    """heapq's siftdown: move the item at pos up towards startpos.
    Returns 0, or 1 if the list changed during a comparison."""
    cdef PyObject *newitem = _hv_get(h, pos)
    cdef PyObject *parent
    cdef Py_ssize_t parentpos
    cdef int cmp
    while pos > startpos:
        parentpos = (pos - 1) >> 1
        parent = _hv_get(h, parentpos)
        cmp = _heap_lt(self, v0, newitem, parent)
        if cmp == NCL_HEAP_DISTURBED:
            return 1
        if cmp == 0:
            break
        _hv_set(h, parentpos, newitem)
        _hv_set(h, pos, parent)
        pos = parentpos
    return 0


cdef int _hv_siftup(ConcurrentList self, _Stamp v0, _HeapView *h, Py_ssize_t pos) except -1:
    """heapq's siftup: move the smaller child up until a leaf, then siftdown.
    Returns 0, or 1 if the list changed during a comparison."""
    cdef Py_ssize_t endpos = h.size, startpos = pos, limit = h.size >> 1, childpos
    cdef PyObject *tmp
    cdef int cmp
    while pos < limit:
        childpos = 2 * pos + 1
        if childpos + 1 < endpos:
            cmp = _heap_lt(self, v0, _hv_get(h, childpos), _hv_get(h, childpos + 1))
            if cmp == NCL_HEAP_DISTURBED:
                return 1
            childpos += cmp ^ 1
        tmp = _hv_get(h, childpos)
        _hv_set(h, childpos, _hv_get(h, pos))
        _hv_set(h, pos, tmp)
        pos = childpos
    return _hv_siftdown(self, v0, h, startpos, pos)


cdef int _hv_heapify(ConcurrentList self, _Stamp v0, _HeapView *h) except -1:
    """heapq's heapify, including its cache-friendly order above 2500 items
    (same heap either way, but a different comparison order)."""
    cdef Py_ssize_t n = h.size, i, m, mhalf, leftmost
    if n <= 2500:
        i = (n >> 1) - 1
        while i >= 0:
            if _hv_siftup(self, v0, h, i):
                return 1
            i -= 1
        return 0
    m = n >> 1
    leftmost = 1
    while leftmost <= (m + 1) >> 1:   # keep_top_bit(m + 1)
        leftmost <<= 1
    leftmost -= 1
    mhalf = m >> 1
    if _hv_sift_runs(self, v0, h, leftmost - 1, mhalf):
        return 1
    return _hv_sift_runs(self, v0, h, m - 1, leftmost)


cdef int _hv_sift_runs(ConcurrentList self, _Stamp v0, _HeapView *h,
                       Py_ssize_t hi, Py_ssize_t lo) except -1:
    """One loop of heapq's cache_friendly_heapify: for i = hi down to lo,
    sift i up, then each ancestor reached through a left child (odd
    position).  Returns 0, or 1 if the list changed during a comparison."""
    cdef Py_ssize_t i = hi, j
    while i >= lo:
        j = i
        while True:
            if _hv_siftup(self, v0, h, j):
                return 1
            if not (j & 1):
                break
            j >>= 1
        i -= 1
    return 0


cdef int _hv_publish(ConcurrentList self, _HeapView *h, PyObject *added) except -1:
    """Make the view the list's contents in one seqlock write.  Lock held,
    version unchanged since the view was taken.  `added` (or NULL) is the
    one object the operation brings in: the list takes a new reference.  A
    removed item's reference passes to the caller."""
    cdef Py_ssize_t n = self._s.size, newsize = h.size, j
    cdef ncl_array *a = self._s.array
    cdef ncl_array *na
    cdef Py_ssize_t cap = a.capacity if a != NULL else 0
    cdef int lvl
    cdef PyObject *o
    if newsize > cap:
        # Only a push grows (by one slot): fill a new, still private array
        # with plain stores, then publish it (as _append_lh).
        na = ncl_array_new(ncl_grow_capacity(newsize, n, True))
        if na == NULL:
            raise MemoryError()
        if n:
            memcpy(&na.items[0], &a.items[0], <size_t>n * sizeof(PyObject *))
        for lvl in range(h.nlev):
            if 0 <= h.lvl_pos[lvl] < newsize:
                na.items[h.lvl_pos[lvl]] = h.lvl_obj[lvl]
        if added != NULL:
            Py_INCREF(<object>added)
            _pub(self, added)
        _struct_begin(self)
        ncc_store_ssize_relaxed(&self._s.size, newsize)
        self._publish_array(na)
        _struct_end(self)
        if a != NULL:
            # After the release store that unpublished it.
            ncc_retire(a, NCL_ARRAY_BYTES(a.capacity))
        return 0
    if added != NULL:
        Py_INCREF(<object>added)
        _pub(self, added)
    _struct_begin(self)
    # Atomic (release) slot stores; pair with readers' acquire slot loads.
    if h.full != NULL:
        for j in range(newsize):
            if a.items[j] != h.full[j]:
                ncc_slot_store(&a.items[j], h.full[j])
    else:
        for lvl in range(h.nlev):
            j = h.lvl_pos[lvl]
            if 0 <= j < newsize:
                ncc_slot_store(&a.items[j], h.lvl_obj[lvl])
    for j in range(newsize, n):
        ncc_slot_store(&a.items[j], NULL)
    if newsize != n:
        # Release (pairs with the readers' acquire size load); also
        # validated by the version.
        ncc_store_ssize_release(&self._s.size, newsize)
    _struct_end(self)
    if newsize < n and a != NULL and newsize < (a.capacity >> 1):
        # A pop left the array mostly empty: let _replace_lh apply the
        # list's shrink policy (a content-preserving resize, one more write).
        o = NULL
        self._replace_lh(newsize, newsize, NULL, 0, &o)
    return 0


cdef object _heap_op(ConcurrentList self, int kind, object item):
    cdef _HeapView h
    cdef _Stamp v0
    cdef Py_ssize_t n0, j
    cdef int restarts = 0, disturbed, cmp
    cdef bint check_size
    cdef PyObject *ret = NULL     # the item leaving the list (its reference)
    cdef PyObject *drop = NULL    # an item heapq drops when a comparison raises
    cdef PyObject *added = NULL
    if kind != NCL_HEAP_POP and kind != NCL_HEAP_HEAPIFY:
        added = <PyObject *>item
    h.full = NULL
    try:
        with cython.critical_section(self._wlock):
            while True:
                PyMem_RawFree(h.full)
                h.full = NULL
                n0 = self._s.size
                # Every position an operation touches is <= n0 (a push's new
                # slot is n0): only these levels can be used.
                h.nlev = _heap_level(n0) + 1
                for j in range(h.nlev):
                    h.lvl_pos[j] = -1
                if n0 == 0 and (kind == NCL_HEAP_POP or kind == NCL_HEAP_REPLACE):
                    raise IndexError("index out of range")
                if n0 == 0 and kind == NCL_HEAP_PUSHPOP:
                    return item
                if kind == NCL_HEAP_HEAPIFY:
                    if n0 < 2:
                        return None
                    # Raw malloc: cannot suspend the critical section.
                    h.full = <PyObject **>PyMem_RawMalloc(<size_t>n0 * sizeof(PyObject *))
                    if h.full == NULL:
                        raise MemoryError()
                    memcpy(h.full, &self._s.array.items[0], <size_t>n0 * sizeof(PyObject *))
                v0 = _stamp(self)
                h.base = &self._s.array.items[0] if self._s.array != NULL else NULL
                h.size = n0
                ret = NULL
                check_size = True
                try:
                    if kind == NCL_HEAP_PUSH:
                        h.size = n0 + 1
                        _hv_set(&h, n0, added)
                        disturbed = _hv_siftdown(self, v0, &h, 0, n0)
                    elif kind == NCL_HEAP_POP:
                        h.size = n0 - 1
                        ret = h.base[0]
                        disturbed = 0
                        if n0 > 1:
                            _hv_set(&h, 0, h.base[n0 - 1])
                            disturbed = _hv_siftup(self, v0, &h, 0)
                    elif kind == NCL_HEAP_REPLACE:
                        ret = h.base[0]
                        _hv_set(&h, 0, added)
                        disturbed = _hv_siftup(self, v0, &h, 0)
                    elif kind == NCL_HEAP_PUSHPOP:
                        cmp = _heap_lt(self, v0, h.base[0], added)
                        if cmp == 0:
                            return item
                        if cmp == NCL_HEAP_DISTURBED:
                            # heapq re-checks only for emptiness here.
                            if self._s.size == 0:
                                raise IndexError("index out of range")
                            check_size = False
                            disturbed = 1
                        else:
                            ret = h.base[0]
                            _hv_set(&h, 0, added)
                            disturbed = _hv_siftup(self, v0, &h, 0)
                    else:
                        disturbed = _hv_heapify(self, v0, &h)
                except BaseException:
                    # Checked after the exception was fetched (which may
                    # allocate, and so suspend the critical section).
                    if _same(self, v0):
                        # A comparison raised on an unchanged list: leave it
                        # as heapq does, with the moves made so far (and
                        # without the item heapq drops).
                        _hv_publish(self, &h, added)
                        drop = ret
                    ret = NULL
                    raise
                if not disturbed:
                    _hv_publish(self, &h, added)
                    break
                ret = NULL
                if check_size and self._s.size != n0:
                    raise RuntimeError("list changed size during iteration")
                restarts += 1
                if restarts > NCL_FIND_RESTARTS:
                    raise RuntimeError("list changed during heap operation: gave up after "
                                       f"{NCL_FIND_RESTARTS} restarts")
    finally:
        PyMem_RawFree(h.full)
        if drop != NULL:
            # Outside the critical section: the last reference may run __del__.
            _decref(drop)
    if kind == NCL_HEAP_PUSH or kind == NCL_HEAP_HEAPIFY:
        return None
    # The list's reference becomes the caller's.
    return ncl_steal(ret)


@cython.final
@cython.no_gc_clear
cdef class _ConcurrentListIterator:
    """Forward iterator: yields, for k = 0, 1, ..., the item at index k at the
    moment it is yielded; stops at the first k >= len at that moment.

    Shared between threads, it hands out every index at most once (as
    list's iterator did under the GIL): `index` is the next unclaimed index,
    and a thread claims indices only with a CAS on it (ncl_iter_claim).  The
    thread that created the iterator (the owner) claims runs of up to
    NCL_ITER_BATCH indices and reads them in one step (ncl_read_run: one
    read region, one validation) into a buffer of references that only it
    uses; a buffered item is yielded only while the run is still valid (no
    structural change and no value replacement since it was read; appends do
    not count), so it is the item at that index at that moment, exactly as
    an item-by-item read; otherwise the rest of the buffer is dropped and its
    indices (still the owner's) are read again.  Other threads claim and read
    one index per next().  The fast path of next() is C (ncl_iter_fast_next,
    installed as tp_iternext in front of __next__, which is the slow path).

    no_gc_clear: the GC must never reset _lst while the state points into the
    list (ncl_iter_state.ls); the patched tp_clear (ncl_iter_clear) only drops
    the read-ahead references, and the list's own tp_clear breaks any cycle
    through the list."""
    cdef ConcurrentList _lst  # None once exhausted by its owner (GIL builds only)
    cdef ncl_iter_state _it

    def __cinit__(self, ConcurrentList lst):
        # An exhausted iterator drops the list, as list iterators do on GIL
        # builds (test.support.check_free_after_iterating).  On free-threaded
        # builds another thread may be inside __next__ of the same iterator
        # reading the field, so the reference is kept (as CPython 3.13t's
        # listiter does); the index alone marks exhaustion.
        self._lst = lst
        self._it.ls = &lst._s
        self._it.index = 0
        self._it.owner = ncl_thread_id()
        self._it.bstart = 0
        self._it.bpos = 0
        self._it.blen = 0
        self._it.bend = 0

    def __dealloc__(self):
        self._drop_batch()

    cdef void _drop_batch(self) noexcept:
        # Empty the buffer first, then release: a __del__ run by a decref may
        # call next() on this very iterator.
        cdef PyObject *tmp[NCL_ITER_BATCH]
        _release(tmp, ncl_iter_take_batch(&self._it, tmp))

    def _layout(self):
        """Offset of the iterator state (for the C slots)."""
        return <Py_ssize_t>(<char *>&self._it - <char *><PyObject *>self)

    def __iter__(self):
        return self

    cdef PyObject *_refill(self, ConcurrentList lst) noexcept:
        """Owner thread, buffer empty: new reference to the item at the next
        index the owner has claimed (claiming a new run first if it has none
        left), read with a fresh run; NULL: out of range (the caller marks
        the iterator exhausted).  Every point that can run Python code (the
        drops inside ncl_read_run and _item_ref) is reached with the state
        consistent: the index being read is already out of the owner's
        claim, or the owner is cleared while the buffer is written."""
        cdef Py_ssize_t got, want
        cdef uint64_t brv
        cdef int matched = 0
        cdef uintptr_t me = self._it.owner
        cdef Py_ssize_t k = self._it.bstart
        if k >= self._it.bend:
            k = ncl_iter_claim_run(&self._it.index, &lst._s, NCL_ITER_BATCH, &want)
            if k < 0:
                return NULL
            self._it.bstart = k
            self._it.bend = k + want
        # The run is read straight into the iterator's buffer (a copy from a
        # buffer of this call's own cost a fifth of the time per item), so
        # while it is read the iterator has no owner: a failed attempt inside
        # ncl_read_run drops the references it took, one of them may be the
        # last (a writer replaced the item meanwhile), and its __del__ may
        # call next() on this very iterator.  That call then takes the path
        # of a foreign thread (it claims an index past this claim and reads
        # it item by item, the buffer untouched), so it can neither refill
        # the buffer under the read nor have its batch released by it.
        # Relaxed stores: see ncl_iter_fast_next.
        ncc_store_ptr_relaxed(<void **>&self._it.owner, NULL)
        got = ncl_read_run(<PyObject *>lst, &lst._s, k, self._it.buf, self._it.bend - k,
                           &brv, NULL, &matched)
        ncc_store_ptr_relaxed(<void **>&self._it.owner, <void *>me)
        if got < 0:
            # Disturbed: this index alone, item by item (lock last).  Taken
            # out of the claim first: _item_ref may run a __del__ that calls
            # next() here, which then reads the index after it.
            self._it.bstart = k + 1
            return _item_ref(lst, k)
        if got == 0:
            return NULL
        self._it.brv = brv
        self._it.bstart = k
        self._it.blen = got
        self._it.bpos = 1
        return self._it.buf[0]

    def __next__(self):
        # The slow path (the C fast path ncl_iter_fast_next runs first).
        # `lst`: a strong reference for the whole call.  A __del__ run below
        # (a dropped read-ahead reference, a failed try-incref) may call
        # next() on this iterator and exhaust it, and on GIL builds that
        # drops self._lst, possibly the list's last reference: the state
        # this call reads (lst._s) must stay alive until it returns.
        cdef ConcurrentList lst = self._lst
        cdef PyObject *r
        cdef PyObject *tmp[NCL_ITER_BATCH]
        cdef PyObject *tmp2[NCL_ITER_BATCH]
        cdef Py_ssize_t ndrop, i, ndrop2 = 0
        if lst is None:
            raise StopIteration
        # Relaxed: the owner clears the field while it refills (_refill).
        if ncl_thread_id() == <uintptr_t>ncc_load_ptr_relaxed(<void **>&self._it.owner):
            # The rest of a stale batch (or nothing): the owner keeps the
            # claim on those indices and reads them again.  The references
            # are released only once the state is consistent again, at the
            # end (their __del__ may call next() here).
            ndrop = ncl_iter_take_batch(&self._it, tmp)
            r = self._refill(lst)
            if r == NULL:
                # Out of range: exhausted.  The rest of the owner's claim is
                # dropped (its indices are past the end too), and so is a
                # batch that a nested next() (from a __del__ inside _refill)
                # may have left: the buffer is empty whenever _lst is None.
                ndrop2 = ncl_iter_take_batch(&self._it, tmp2)
                self._it.bstart = self._it.bend
                ncl_iter_exhaust(&self._it.index)
                if not NCC_FREE_THREADED:
                    self._lst = None   # see __cinit__; `lst` holds it until we return
            _release(tmp, ndrop)
            _release(tmp2, ndrop2)
        else:
            i = ncl_iter_claim(&self._it.index, 1, 1)
            r = _item_ref(lst, i) if i >= 0 else NULL
            if r == NULL and i >= 0:
                ncl_iter_exhaust(&self._it.index)
            # Only the owner drops _lst (GIL builds): its buffer, which
            # the fast path reads through the state, may be non-empty.
        if r == NULL:
            raise StopIteration
        return ncl_steal(r)

    cdef Py_ssize_t _next_index(self) noexcept:
        """The index the next next() from this thread would read: the
        owner's next one inside its claim, else the first unclaimed index;
        < 0: exhausted.  Relaxed, as listiter_len and listiter_reduce: a
        concurrent next() may move it, and either value is one this
        iterator was at."""
        cdef Py_ssize_t i = ncc_load_ssize_relaxed(&self._it.index)
        if ncl_thread_id() == <uintptr_t>ncc_load_ptr_relaxed(<void **>&self._it.owner):
            if self._it.bstart + self._it.bpos < self._it.bend:
                i = self._it.bstart + self._it.bpos
        return i

    def __length_hint__(self):
        cdef ConcurrentList lst = self._lst
        cdef Py_ssize_t i = self._next_index()
        if lst is None or i < 0:
            return 0
        n = len(lst) - i
        return n if n > 0 else 0

    def __reduce__(self):
        return _reduce_iterator(iter, self._lst, self._next_index())

    def __setstate__(self, state):
        # As listiter_setstate: an int (no __index__), clamped to the list's
        # length; below 0 it restarts (3.11) or exhausts (3.13-3.15), whichever
        # this interpreter's list iterator does.  Called by the owner (as
        # unpickling and copy do) it also drops the owner's claim and
        # read-ahead, so the next next() reads the new index.  Another
        # thread's call moves only the shared cursor: the owner first hands
        # out what it has already claimed, as it would have anyway.
        cdef Py_ssize_t i = PyLong_AsSsize_t(state)
        cdef ConcurrentList lst = self._lst
        cdef PyObject *tmp[NCL_ITER_BATCH]
        cdef Py_ssize_t ndrop = 0
        if lst is None:
            return
        if i < 0:
            i = -1 if _NEGATIVE_STATE_EXHAUSTS else 0
        else:
            i = min(i, len(lst))
        if ncl_thread_id() == <uintptr_t>ncc_load_ptr_relaxed(<void **>&self._it.owner):
            ndrop = ncl_iter_take_batch(&self._it, tmp)
            self._it.bend = self._it.bstart   # the claim is empty
        # seq_cst store: pairs with the claimers' CASes (ncl_iter_claim) and
        # the exhausting store, as ncl_iter_exhaust does.
        ncc_store_ssize(&self._it.index, i)
        _release(tmp, ndrop)


@cython.final
@cython.no_gc_clear
cdef class _ConcurrentListReverseIterator:
    """Reverse iterator: starts at len-1 and walks down; stops at the first
    index that is out of range when read (as list's reverse iterator).

    Shared between threads, it hands out every index at most once: _index is
    the next unclaimed index, moved only by a CAS.  The thread that created
    the iterator (the owner) claims up to NCL_ITER_BATCH indices per CAS
    (ncl_iter_claim_down) and walks down its claim (_stop, _cur] with no
    atomic read-modify-write, reading each item when it hands it out; other
    threads claim one index per next() (ncl_iter_claim).
    no_gc_clear: a finalizer must never find _lst reset under a live
    iterator (any cycle through the iterator goes through the list, whose
    tp_clear breaks it)."""
    cdef ConcurrentList _lst  # None once exhausted by its owner (GIL builds only)
    cdef Py_ssize_t _index    # next unclaimed index; -1: exhausted (CAS)
    cdef uintptr_t _owner     # never changes
    cdef Py_ssize_t _cur      # owner only: its claim is (_stop, _cur]
    cdef Py_ssize_t _stop

    def __cinit__(self, ConcurrentList lst):
        self._lst = lst
        self._index = len(lst) - 1
        self._owner = ncl_thread_id()
        self._cur = -1
        self._stop = -1

    def __iter__(self):
        return self

    def __next__(self):
        # `lst`: a strong reference for the whole call (_item_ref may run a
        # __del__ that exhausts this iterator, which drops self._lst).
        cdef ConcurrentList lst = self._lst
        cdef PyObject *r = NULL
        cdef Py_ssize_t k
        cdef bint owner = ncl_thread_id() == self._owner
        if lst is None:
            raise StopIteration
        if owner:
            k = self._cur
            if k <= self._stop:
                k = ncl_iter_claim_down(&self._index, NCL_ITER_BATCH, &self._stop)
            if k >= 0:
                # Out of the claim before the read: _item_ref may run a
                # __del__ that calls next() here, which takes the next one.
                self._cur = k - 1
        else:
            k = ncl_iter_claim(&self._index, 1, -1)
        if k >= 0:
            r = _item_ref(lst, k)
        if r == NULL:
            if k >= 0:
                ncl_iter_exhaust(&self._index)
            if owner:
                self._cur = self._stop   # the rest of the claim is out of range too
                if not NCC_FREE_THREADED:
                    # Only the owner drops the list (its claim is empty
                    # now); see _ConcurrentListIterator.__cinit__.
                    self._lst = None
            raise StopIteration
        return ncl_steal(r)

    cdef Py_ssize_t _next_index(self) noexcept:
        """As _ConcurrentListIterator._next_index: the owner's next index
        inside its claim, else the first unclaimed one; < 0: exhausted."""
        # Relaxed: as listreviter_len and listiter_reduce.
        cdef Py_ssize_t i = ncc_load_ssize_relaxed(&self._index)
        if ncl_thread_id() == self._owner and self._cur > self._stop:
            i = self._cur
        return i

    def __length_hint__(self):
        cdef ConcurrentList lst = self._lst
        cdef Py_ssize_t i = self._next_index()
        if lst is None or i < 0:
            return 0
        n = len(lst)
        return i + 1 if i < n else 0

    def __reduce__(self):
        return _reduce_iterator(reversed, self._lst, self._next_index())

    def __setstate__(self, state):
        # As listreviter_setstate: an int, clamped to [-1, len - 1] (-1:
        # exhausted).  The owner's own call drops its claim; see
        # _ConcurrentListIterator.__setstate__.
        cdef Py_ssize_t i = PyLong_AsSsize_t(state)
        cdef ConcurrentList lst = self._lst
        if lst is None:
            return
        i = max(-1, min(i, len(lst) - 1))
        if ncl_thread_id() == self._owner:
            self._cur = self._stop   # the claim is empty
        # seq_cst store: pairs with the claimers' CASes (ncl_iter_claim,
        # ncl_iter_claim_down) and the exhausting store.
        ncc_store_ssize(&self._index, i)


cdef tuple _reduce_iterator(make, ConcurrentList lst, Py_ssize_t i):
    # As list's iterators: (iter or reversed, (the list,), next index); an
    # exhausted one is rebuilt over an empty list (of ours, so that the type
    # survives the round trip, as it does for list's).
    if lst is None or i < 0:
        return (make, (ConcurrentList(),))
    return (make, (lst,), i)


def _negative_state_exhausts():
    it = iter([None])
    it.__setstate__(-1)
    return next(it, it) is it


#: list_iterator.__setstate__(-1): 3.11 restarts at 0, 3.13-3.15 exhaust (3.12 not
#: checked here); probed, so each interpreter gets its own list's behaviour.
cdef bint _NEGATIVE_STATE_EXHAUSTS = _negative_state_exhausts()


#: Deliberately broken variants for the race campaigns' sensitivity tests
#: (tests/test_race_list.py); see _list_array.h.
_MUTANTS = {"none": NCL_MUTANT_NONE, "speculative_cas": NCL_MUTANT_SPECULATIVE_CAS}


def _read_retries():
    """Tests only: failed optimistic single-item read attempts (including
    the final fall back to the lock) since the last call, process-wide."""
    return ncl_take_read_retries()


def _writer_lock_of(ConcurrentList lst):
    """Tests only: the object whose critical section lst's writers hold."""
    return lst._wlock


def _set_mutant(str name):
    """Tests only: switch a deliberately broken variant on ("none": off).
    Call only while no other thread uses a ConcurrentList."""
    ncl_set_mutant(_MUTANTS[name])


ncl_patch_iter(_ConcurrentListIterator,
               _ConcurrentListIterator.__new__(_ConcurrentListIterator, ConcurrentList())._layout())
