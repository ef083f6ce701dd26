# cython: freethreading_compatible = True
# cython: binding = False
"""ConcurrentDict: a drop-in thread-safe ``dict`` with lock-free lookups.

Design (docs/design.md, "ConcurrentDict"): a compact insertion-ordered hash
table (``_dict_table.h``) published by pointer; writers hold the per-object
critical section and bracket visible changes with the seqlock version;
lookups, ``in``, ``get``, views and iteration take no lock.  Guarantees:
docs/guarantees.md.
"""

cimport cython
from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_EQ, PyObject_Hash
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport uint64_t

from nogil_collections._core.atomics cimport (
    ncc_load_ptr_acquire, ncc_store_ptr_release, ncc_load_ssize_relaxed,
    ncc_store_ssize_relaxed, ncc_load_uint64_relaxed, ncc_cpu_relax, ncc_load_obj_relaxed,
    ncc_spin_for,
)
from nogil_collections._core.atomics cimport (
    ncc_load_ssize, ncc_load_obj_acquire, ncc_store_obj_release,
)
from nogil_collections._core.refcount cimport ncc_publish, ncc_slot_store
from nogil_collections._core.refcount cimport ncc_try_getref
from nogil_collections._core.critical_section cimport (
    ncc_cs, ncc_cs_begin, ncc_cs_end, ncc_cs_try_lock, ncc_cs_unlock,
)
from nogil_collections._core.seqlock cimport (
    ncc_seq_write_begin, ncc_seq_write_end, ncc_seq_read_begin, ncc_seq_is_writing,
    ncc_seq_read_validate,
)
from nogil_collections._core.qsbr cimport ncc_qsbr_import, ncc_retire, ncc_qsbr_synchronize
from nogil_collections._core.faultinject cimport (
    NCC_FAULT_INJECTION_ENABLED, NCC_SUSPEND_POINT, NCC_SUSPEND_POINT_CHECKED,
    ncc_fi_set_hook, ncc_fi_set_suspend, ncc_fi_arm_alloc_failure, ncc_fi_hits,
    ncc_fi_detach_stats,
    ncc_in_critical_section,
)

from collections.abc import KeysView as _KeysView, ItemsView as _ItemsView
from collections.abc import ValuesView as _ValuesView, Mapping as _Mapping
from types import GenericAlias as _GenericAlias, MappingProxyType as _MappingProxyType
from nogil_collections._handle import ConcurrentDictHandle as _Handle
from nogil_collections._reduce import reduce_subclass as _reduce_subclass
from _thread import allocate_lock as _allocate_lock, get_ident as _get_ident

ncc_qsbr_import()

include "_core/faultinject.pxi"
include "_core/immortal.pxi"


cdef extern from "_dict_table.h":
    ctypedef struct ncd_entry:
        PyObject *key
        PyObject *value
    ctypedef struct ncd_item:
        PyObject *key
        PyObject *value
        Py_hash_t hash
    ctypedef struct ncd_table:
        size_t nbytes
        Py_ssize_t mask
        Py_ssize_t capacity
        Py_ssize_t nentries
        Py_ssize_t live_end
        Py_ssize_t ndead_pinned
        int pinned
        int index_bytes
    ctypedef struct ncd_wwords:
        uint64_t version
        Py_ssize_t used
    ctypedef struct ncd_hot:
        uint64_t tseq
        ncd_table *table
        ncd_wwords *w
    ctypedef struct ncd_eq_memo:
        pass
    ctypedef struct ncd_probe:
        uint64_t version
        Py_ssize_t ix
        Py_ssize_t slot
        Py_ssize_t freeslot
        uint64_t wversion
        PyObject *eqkey
        int resume
        ncd_eq_memo *memo
    enum:
        NCD_EMPTY
        NCD_DUMMY
        NCD_MAXSIZE_LOG2
        NCD_MISS
        NCD_FOUND
        NCD_RETRY
        NCD_NEED_EQ
        NCD_FRESH
        NCD_RESUME_NE
        NCD_RESUME_EQ
        NCD_READ_PRESENCE
        NCD_READ_VALUE
        NCD_WRITER
        NCD_PREWRITE
        NCD_MUTANT_NONE
        NCD_MUTANT_TORN_REPLACE
        NCD_MUTANT_WIDE_COUNT_WINDOW
    int ncd_mutant
    unsigned long long ncd_reader_retries
    ncd_table *ncd_table_new(int log2size, int pinned) nogil
    ncd_entry *ncd_entry_at(ncd_table *t, Py_ssize_t ix) nogil
    size_t ncd_entry_size(int pinned) nogil
    Py_hash_t ncd_entry_hash(ncd_table *t, Py_ssize_t ix) nogil
    Py_ssize_t ncd_find_empty(ncd_table *t, Py_hash_t hash) nogil
    void ncd_append(ncd_table *t, Py_ssize_t slot, PyObject *key, PyObject *value, Py_hash_t hash) nogil
    bint ncd_key_pinnable(PyObject *key) nogil
    Py_hash_t ncd_str_cached_hash(PyObject *s) nogil
    int ncd_probe_run(ncd_hot *h, PyObject *key, Py_hash_t hash, ncd_probe *p,
                      PyObject **pvalue, int mode) nogil
    void ncd_eq_memo_init(ncd_eq_memo *m) nogil
    void ncd_eq_memo_free(ncd_eq_memo *m) nogil
    void ncd_eq_memo_restart(ncd_eq_memo *m) nogil
    int ncd_eq_memo_add(ncd_probe *p, PyObject *probe, PyObject *key, int eq) except -1
    Py_ssize_t ncd_collect(ncd_hot *h, ncd_item *buf, Py_ssize_t bufcap, Py_ssize_t *count,
                           int want) nogil
    enum:
        NCD_WANT_KEYS
        NCD_WANT_VALUES
        NCD_WANT_HASHES
    void ncd_delete(ncd_hot *h, ncd_table *t, Py_ssize_t slot, Py_ssize_t ix,
                    PyObject **okey, PyObject **oval, int want_key) nogil
    Py_ssize_t ncd_slot_of(ncd_table *t, Py_hash_t hash, Py_ssize_t ix) nogil
    int ncd_load_index_relaxed(ncd_table *t, Py_ssize_t slot) nogil


cdef extern from *:
    """
    static inline PyObject *ncd_steal(PyObject *o) { return o; }
    /* Single-key writers (d[k] = v, del d[k], pop) probe BEFORE taking the
     * writer lock only while this thread contends for it: then the lock is
     * held just for a validation and the store (docs/design.md, "Writers:
     * the probe before the lock").  Uncontended, the locked probe alone is
     * cheaper (no read region, no second look at the entry), so a thread
     * switches to the early probe when it finds the lock held and keeps it
     * for its next NCD_CONTENDED_WRITES writes (to any dict). */
    #define NCD_CONTENDED_WRITES 64
    /* initial-exec, as qsbr.h's record: a %fs-relative load, where the
     * default model of a shared object calls __tls_get_addr on every
     * write. */
    static __thread int ncd_contended __attribute__((tls_model("initial-exec"))) = 0;
    static inline int ncd_lock_busy(PyObject *o) {
        /* A hint only; PyCriticalSection_Begin's CAS decides. */
        return ncc_cs_is_locked(o);
    }
    static inline int ncd_write_contended(PyObject *o) {
        if (ncd_lock_busy(o)) {
            ncd_contended = NCD_CONTENDED_WRITES;
            return 1;
        }
        if (ncd_contended > 0) {
            ncd_contended--;
            return 1;
        }
        return 0;
    }
    """
    # Cython takes the returned object as a new reference: this steals `o`.
    object ncd_steal(PyObject *o)
    int ncd_contended
    bint ncd_write_contended(PyObject *o) nogil
    void ncd_list_set_steal "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject *o)
    void ncd_tuple_set_steal "PyTuple_SET_ITEM"(object tup, Py_ssize_t i, PyObject *o)
    object PyList_New(Py_ssize_t n)
    object PyTuple_New(Py_ssize_t n)
    bint PyUnicode_CheckExact(object o)
    int Py_ReprEnter(object o) except -1
    void Py_ReprLeave(object o)


cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef struct NcdTypeObject "PyTypeObject":
        traverseproc tp_traverse
        inquiry tp_clear


# Bounded optimistic attempts before a lookup or a snapshot takes the lock, so
# a reader cannot starve under a stream of writers.
cdef enum:
    READ_RETRIES = 8


class _AbsentType:
    """Type of :data:`ABSENT`: the "no such key" marker of compare_and_set."""

    __slots__ = ()
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __repr__(self):
        return "ConcurrentDict.ABSENT"

    def __reduce__(self):
        return (_AbsentType, ())

    def __bool__(self):
        return False


#: Sentinel for ``compare_and_set``: as ``expected``, "the key is absent";
#: as ``new``, "delete the key".  Also available as ``ConcurrentDict.ABSENT``.
ABSENT = _AbsentType()
cdef object _ABSENT = ABSENT
cdef object _MISSING = object()


cdef extern from "messages.h":
    Py_hash_t ncc_dict_key_hash(PyObject *key) except? -1


cdef inline Py_hash_t _hash(object key) except? -1:
    # The cached hash of an exact str, without a call; else hash(key), with
    # the builtin dict's message for an unhashable key on this Python version
    # (_core/messages.h).
    cdef Py_hash_t h
    if PyUnicode_CheckExact(key):
        h = ncd_str_cached_hash(<PyObject *>key)
        if h != -1:
            return h
    return ncc_dict_key_hash(<PyObject *>key)


cdef inline int _grow_log2(Py_ssize_t used, Py_ssize_t extra):
    # CPython's GROWTH_RATE (used * 3) rounded up to a power of two, and at
    # least enough room for used + extra entries.
    cdef int l = 3
    while l <= NCD_MAXSIZE_LOG2 and ((<Py_ssize_t>1) << l) < used * 3:
        l += 1
    while l <= NCD_MAXSIZE_LOG2 and ((((<Py_ssize_t>1) << l) * 2) // 3) < used + extra:
        l += 1
    return l


cdef int _eq_steal(PyObject *stored, object key) except -1:
    # stored == key, consuming the reference to `stored` (the order CPython's
    # dict uses: the stored key's __eq__ first).
    cdef object sk = ncd_steal(stored)
    # A call into Python: suspends the critical section whenever it blocks.
    NCC_SUSPEND_POINT("dict.eq")
    cdef int r = PyObject_RichCompareBool(sk, key, Py_EQ)
    # Dropping sk next may free it (the key was deleted while __eq__ ran).
    NCC_SUSPEND_POINT("dict.eq.decref")
    return r


cdef void _free_entries(ncd_item *buf, Py_ssize_t n) noexcept:
    cdef Py_ssize_t j
    for j in range(n):
        Py_XDECREF(buf[j].key)
        Py_XDECREF(buf[j].value)


cdef void _drop_table(ncd_table *old, bint owns_live, bint exclusive,
                      bint keys_unpinned=False) noexcept:
    """Dispose of a table that is no longer published.

    owns_live: its live keys/values are not referenced by any other table
    (clear, dealloc) and are released here.  exclusive: no reader can hold
    `old` (dealloc).  Runs outside any write window: decrefs may run Python
    code.  Pinned keys (docs/design.md) may only be released once no reader
    can still be comparing them, hence synchronize() first.  keys_unpinned:
    the live keys moved to a generic table, which releases a key as soon as
    it is deleted, so a reader still comparing keys of `old` without a
    reference must be waited out now."""
    cdef Py_ssize_t ix, n = old.nentries
    cdef bint need_sync = old.pinned and (
        old.ndead_pinned > 0 or (owns_live and n > 0) or (keys_unpinned and n > 0))
    cdef ncd_entry *ep
    if not need_sync and not owns_live:
        ncc_retire(old, old.nbytes)
        return
    if need_sync and not exclusive:
        # A grace period: every reader that may have loaded `old` (it was
        # unpublished before this call) leaves its short, non-blocking read
        # region before this returns (qsbr.h, ncc_qsbr_synchronize).
        ncc_qsbr_synchronize()
    for ix in range(n):
        ep = ncd_entry_at(old, ix)
        # Each decref may free (and run a finalizer) or queue the object for
        # its owner thread, which takes a PyMutex (Python/brc.c): either can
        # suspend the caller's critical section (_resize holds it).
        if ep.value != NULL:
            if owns_live:
                NCC_SUSPEND_POINT("dict.drop_table.decref")
                Py_XDECREF(ep.key)
                Py_XDECREF(ep.value)
        elif old.pinned and ep.key != NULL:
            NCC_SUSPEND_POINT("dict.drop_table.decref")
            Py_XDECREF(ep.key)
    if need_sync or exclusive:
        PyMem_RawFree(old)
    else:
        ncc_retire(old, old.nbytes)


@cython.final
cdef class _WriterLock:
    """The object whose critical section every writer of one ConcurrentDict
    holds (docs/design.md, "Object layout").  A PyMutex lives in an object's
    header, on the cache line from which every call on the object loads
    ob_type; locking the dict's own header would make each write cost every
    reader of the dict a cache miss.  128 bytes (a mimalloc size class of
    its own, 64-byte aligned blocks), so no other object shares the mutex's
    line.  The writer words `w` (version, used) follow the header on that
    same line: a writer owns the line for the lock anyway, so every write
    moves one line between writing threads, not two."""

    cdef ncd_wwords w
    cdef char _pad[80]   # 32-byte header (3.13t) + 16 + 80 = 128


@cython.final
cdef class _Scratch:
    # Owns a PyMem_RawMalloc'ed buffer of entries holding references.
    cdef ncd_item *buf
    cdef Py_ssize_t n

    def __dealloc__(self):
        if self.buf != NULL:
            _free_entries(self.buf, self.n)
            PyMem_RawFree(self.buf)


cdef enum:
    _ITER_KEYS = 0
    _ITER_VALUES = 1
    _ITER_ITEMS = 2


cdef extern from *:
    """
    /* A shared snapshot iterator's claim of its next index (docs/design.md,
     * "Iteration: a shared iterator").  Forward iterators only ever move
     * `pos` (up to the constant `end`), reversed ones only `end` (down to the
     * constant `pos`, 0), so one word decides who owns which buffer slot:
     * `word` is that word, `bound` the other.  Returns the claimed index, or
     * -1 when the iterator is exhausted.
     *
     * Free-threaded builds, two modes:
     *  - biased (`bias` is the creating thread's _Py_ThreadId()): only that
     *    thread claims, with relaxed loads and stores (no read-modify-write),
     *    announcing each step in `busy`.  Asymmetric Dekker: the owner's
     *    store of busy and its re-load of bias are separated by a compiler
     *    barrier only; the revoker's membarrier() (every running thread of
     *    the process executes a full fence) supplies the fence.  The QSBR
     *    domain registered membarrier at init (qsbr_domain.c); without it an
     *    iterator starts shared (ncd_iter_bias_of).
     *  - shared (`bias` == 0): a relaxed load first (once exhausted, no RMW:
     *    the word overshoots its bound by at most one per racing thread),
     *    then a relaxed fetch-add.  Relaxed suffices: read-modify-writes of
     *    one word are totally ordered (each reads the value the previous one
     *    wrote), so no two callers get the same index, and nothing is
     *    published through the word.
     * Any other thread's first claim revokes the bias, once, for good
     * (ncd_iter_unbias): bias -> REVOKING, membarrier, wait until the owner
     * is not inside a step, bias -> 0.
     * GIL builds: plain arithmetic; the GIL is held from the test to the
     * increment (no Python code runs between). */
    #define NCD_BIAS_SHARED ((uintptr_t)0)
    #define NCD_BIAS_REVOKING ((uintptr_t)1)   /* _Py_ThreadId() is never 0 or 1 */
    #if defined(Py_GIL_DISABLED) && defined(__linux__)
    #include <sys/syscall.h>
    #include <unistd.h>
    #include <sched.h>
    #include <linux/membarrier.h>
    #define NCD_ITER_BIASED 1
    #else
    #define NCD_ITER_BIASED 0
    #endif

    /* The initial `bias` of an iterator created by the calling thread. */
    static inline uintptr_t ncd_iter_bias_of(void) {
    #if NCD_ITER_BIASED
        /* Relaxed: written once at the domain's init, before this module's. */
        if (ncc_qsbr_dom != NULL
                && __atomic_load_n(&ncc_qsbr_dom->uses_membarrier, __ATOMIC_RELAXED)) {
            return (uintptr_t)_Py_ThreadId();
        }
    #endif
        return NCD_BIAS_SHARED;
    }

    #if NCD_ITER_BIASED
    static void ncd_iter_membarrier(void) {
        if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
        /* As reader_fence (qsbr_domain.c): only EPERM (not registered) is
         * possible once the domain's init issued the command; register again.
         * The owner issues only a compiler barrier, so a plain fence here
         * would not be safe. */
        if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0
                && syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) {
            return;
        }
        Py_FatalError("nogil_collections: membarrier(PRIVATE_EXPEDITED) failed after "
                      "registration; a shared iterator cannot be handed over safely");
    }

    /* Make the iterator shared (bias 0), revoking the owner's bias if no
     * other thread did; returns once it is shared. */
    static void ncd_iter_unbias(uintptr_t *bias, int *busy) {
        int spins = 0;
        /* Acquire; pairs with the release store of NCD_BIAS_SHARED below (by
         * whichever thread revoked): we then see the owner's last store of
         * the claim word. */
        uintptr_t b = __atomic_load_n(bias, __ATOMIC_ACQUIRE);
        while (b != NCD_BIAS_SHARED) {
            if (b != NCD_BIAS_REVOKING) {
                /* seq_cst CAS (only one revoker); pairs with the owner's
                 * relaxed re-load of bias in ncd_iter_claim, through the
                 * membarrier below. */
                if (__atomic_compare_exchange_n(bias, &b, NCD_BIAS_REVOKING, 0,
                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
                    /* The asymmetric fence: after it, the owner either has
                     * its store busy = 1 visible to us (it is inside a step,
                     * or about to re-load bias and see REVOKING), or it will
                     * see REVOKING at its re-load and take this slow path. */
                    ncd_iter_membarrier();
                    /* Acquire; pairs with the owner's release store busy = 0
                     * at the end of its step (after its store of the word). */
                    while (__atomic_load_n(busy, __ATOMIC_ACQUIRE)) {
                        if (++spins > 64) sched_yield(); else ncc_cpu_relax();
                    }
                    /* Release; pairs with the acquire loads of bias here. */
                    __atomic_store_n(bias, NCD_BIAS_SHARED, __ATOMIC_RELEASE);
                    return;
                }
                continue;   /* b reloaded by the failed CAS */
            }
            if (++spins > 64) sched_yield(); else ncc_cpu_relax();
            /* Acquire, as above. */
            b = __atomic_load_n(bias, __ATOMIC_ACQUIRE);
        }
    }
    #endif

    #if defined(Py_GIL_DISABLED)
    /* The shared mode (and the way into it): out of line, so that the
     * owner's path below inlines into __next__. */
    static Py_ssize_t __attribute__((noinline))
    ncd_iter_claim_shared(Py_ssize_t *word, Py_ssize_t bound, int back,
                          uintptr_t *bias, int *busy) {
        Py_ssize_t w, j;
    #if NCD_ITER_BIASED
        /* Acquire; pairs with the revoker's release store of NCD_BIAS_SHARED
         * in ncd_iter_unbias.  A thread that finds the iterator already
         * shared skips ncd_iter_unbias, so this load must be the one that
         * orders the owner's last (relaxed) store of the claim word before
         * our fetch-add below; relaxed would leave C11 free to order that
         * store after it (two claims of one slot).  A plain load on x86. */
        if (__atomic_load_n(bias, __ATOMIC_ACQUIRE) != NCD_BIAS_SHARED) {
            ncd_iter_unbias(bias, busy);
        }
    #else
        (void)bias; (void)busy;
    #endif
        /* Relaxed: a hint; pairs with the fetch-add below (other claimers'). */
        w = __atomic_load_n(word, __ATOMIC_RELAXED);
        if (back ? w <= bound : w >= bound) return -1;
        /* Relaxed RMW; pairs with the other claimers' fetch-adds on *word. */
        if (back) {
            j = __atomic_fetch_add(word, -1, __ATOMIC_RELAXED) - 1;
            return j >= bound ? j : -1;
        }
        j = __atomic_fetch_add(word, 1, __ATOMIC_RELAXED);
        return j < bound ? j : -1;
    }
    #endif

    static inline __attribute__((always_inline)) Py_ssize_t
    ncd_iter_claim(Py_ssize_t *word, Py_ssize_t bound, int back, uintptr_t *bias, int *busy) {
    #if NCD_ITER_BIASED
        /* Relaxed: only the owner finds its own id here. */
        if (__atomic_load_n(bias, __ATOMIC_RELAXED) == (uintptr_t)_Py_ThreadId()) {
            Py_ssize_t w, j;
            /* Relaxed store + compiler barrier: with the revoker's
             * membarrier, a Dekker pair with its CAS of bias and its acquire
             * load of busy (see ncd_iter_unbias). */
            __atomic_store_n(busy, 1, __ATOMIC_RELAXED);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            /* Relaxed re-load; pairs with the revoker's CAS (see above). */
            if (__builtin_expect(
                    __atomic_load_n(bias, __ATOMIC_RELAXED) == (uintptr_t)_Py_ThreadId(), 1)) {
                /* Relaxed: only this thread writes the word while biased;
                 * __length_hint__/__reduce__ read it with atomic loads. */
                w = __atomic_load_n(word, __ATOMIC_RELAXED);
                j = back ? w - 1 : w;
                if (back ? j >= bound : j < bound) {
                    __atomic_store_n(word, back ? j : j + 1, __ATOMIC_RELAXED);
                } else {
                    j = -1;
                }
                /* Release; pairs with the revoker's acquire load of busy:
                 * it sees the store of the word above. */
                __atomic_store_n(busy, 0, __ATOMIC_RELEASE);
                return j;
            }
            /* Release, as above (nothing claimed). */
            __atomic_store_n(busy, 0, __ATOMIC_RELEASE);
        }
        return ncd_iter_claim_shared(word, bound, back, bias, busy);
    #elif defined(Py_GIL_DISABLED)
        /* Free-threaded without membarrier (not Linux): always shared. */
        return ncd_iter_claim_shared(word, bound, back, bias, busy);
    #else
        (void)bias; (void)busy;
        if (back) return *word > bound ? --(*word) : -1;
        return *word < bound ? (*word)++ : -1;
    #endif
    }

    /* __reduce__'s read of a slot it does not own: a new reference, or NULL
     * once the slot is cleared (claimed).  A refused try-incref (the object
     * was handed out and is being freed) loads the slot again until the
     * clearing store is visible, so that NULL comes from an acquire load that
     * saw the clear (and, through it, the claim that preceded it).  Bounded
     * (a published object is refused only while it is being freed). */
    static PyObject *ncd_iter_peek(PyObject **slot) {
        int tries;
        for (tries = 0; tries < 1000; tries++) {
            /* Acquire; pairs with the release store that cleared the slot in
             * __next__ (ncc_try_getref re-loads it seq_cst). */
            PyObject *o = ncc_load_obj_acquire(slot);
            if (o == NULL || (o = ncc_try_getref(slot, o)) != NULL) return o;
            ncc_cpu_relax();
        }
        return NULL;
    }

    /* The creating thread's id (the only thread that may touch an items
     * iterator's reused result tuple); 0 on GIL builds, where every next()
     * runs under the GIL. */
    static inline uintptr_t ncd_iter_owner_of(void) {
    #if defined(Py_GIL_DISABLED)
        return (uintptr_t)_Py_ThreadId();
    #else
        return 0;
    #endif
    }

    /* `o` has no reference but the caller's, and no other thread can make
     * one: as CPython's _PyObject_IsUniquelyReferenced (3.14), inline and
     * for 3.13t too.  Free-threaded: owned by this thread, local count 1 and
     * the whole shared word (count and merge flags) 0; relaxed loads, as
     * CPython's (another thread may only decrement the shared word, which
     * makes it non-zero, never zero again before a merge by the owner). */
    static inline int ncd_uniquely_referenced(PyObject *o) {
    #if defined(Py_GIL_DISABLED)
        return o->ob_tid == _Py_ThreadId()
            && __atomic_load_n(&o->ob_ref_local, __ATOMIC_RELAXED) == 1
            && __atomic_load_n(&o->ob_ref_shared, __ATOMIC_RELAXED) == 0;
    #else
        return Py_REFCNT(o) == 1;
    #endif
    }

    /* One step of an items iterator, on the claimed slot `ep` (docs/design.md,
     * "Iteration: a shared iterator", items).  Takes the slot's references,
     * clears the slot with release stores (pair with the seq_cst re-loads in
     * ncc_try_getref, __reduce__), and returns a new reference to a
     * (key, value) tuple.  `*result` is the iterator's result tuple (or
     * NULL) and `mine` says that this thread is the only one that ever
     * touches *result (the creating thread; any thread under the GIL): then
     * the tuple is reused when the caller dropped it (uniquely referenced:
     * *result's own reference is the only one), as dict's items iterator
     * does, else a new one becomes *result. */
    static PyObject *ncd_iter_item(ncd_item *ep, PyObject **result, int mine) {
        PyObject *k = ep->key, *v = ep->value, *r, *old;
        ncc_store_obj_release(&ep->key, NULL);
        ncc_store_obj_release(&ep->value, NULL);
        if (mine) {
            r = *result;
            if (r != NULL && ncd_uniquely_referenced(r)) {
                PyObject *ok = PyTuple_GET_ITEM(r, 0), *ov = PyTuple_GET_ITEM(r, 1);
                Py_INCREF(r);
                PyTuple_SET_ITEM(r, 0, k);
                PyTuple_SET_ITEM(r, 1, v);
                /* The GC may have untracked the tuple (it held no container):
                 * track it again if it now may be part of a cycle. */
                if ((PyType_IS_GC(Py_TYPE(k)) || PyType_IS_GC(Py_TYPE(v)))
                        && !PyObject_GC_IsTracked(r)) {
                    PyObject_GC_Track(r);
                }
                /* Last: may run __del__ (even a nested next() on this
                 * iterator, which then finds r referenced twice). */
                Py_DECREF(ok);
                Py_DECREF(ov);
                return r;
            }
        }
        r = PyTuple_New(2);
        if (r == NULL) {
            Py_DECREF(k);
            Py_DECREF(v);
            return NULL;
        }
        PyTuple_SET_ITEM(r, 0, k);
        PyTuple_SET_ITEM(r, 1, v);
        if (mine) {
            old = *result;
            Py_INCREF(r);
            *result = r;
            Py_XDECREF(old);
        }
        return r;
    }
    """
    ctypedef size_t uintptr_t
    object ncd_iter_item(ncd_item *ep, PyObject **result, bint mine)
    uintptr_t ncd_iter_owner_of() nogil
    PyObject *ncd_iter_peek(PyObject **slot)
    uintptr_t ncd_iter_bias_of() nogil
    Py_ssize_t ncd_iter_claim(Py_ssize_t *word, Py_ssize_t bound, int back,
                              uintptr_t *bias, int *busy) nogil


cdef enum:
    # compare_and_set: restarts after a write during the value's __eq__
    # before only identity is used (as the list's NCL_FIND_RESTARTS).
    NCD_CAS_RESTARTS = 8


@cython.final
@cython.no_gc_clear
cdef class _SnapshotIter:
    """Iterator over a consistent snapshot (a _Scratch of new references).

    Each step hands out the reference the snapshot took (no list in
    between, no second incref), so iterating costs one try-incref per
    element at the start and nothing per step but the hand-over.  Entries
    not reached yet are released with the snapshot.

    Shared between threads, each element is handed out at most once
    (docs/design.md, "Iteration: a shared iterator"): a step first claims
    its index (ncd_iter_claim: relaxed loads and stores while only the
    creating thread has claimed, one atomic fetch-add once another thread
    did), and only the claimer touches that slot's references; it clears the slot with a
    release store before the reference leaves __next__, so __reduce__ can
    read the slots it does not own with the try-incref protocol.

    GC: the snapshot's references live in C memory, so tp_traverse and
    tp_clear are wrapped at import (_si_traverse, _si_clear below): a cycle
    through an element (a value that holds its own iterator) is collected as
    it is through dict's iterator.  no_gc_clear: the GC's clear must never
    reset `s` under a finalizer that may still call next()."""

    cdef _Scratch s
    # s.buf, for the GC's traverse (_si_traverse), which must not touch the
    # reference count of `s` to reach it.  Constant.
    cdef ncd_item *buf
    # Next index: forward, pos counts up to end (constant); reversed, end
    # counts down to pos (constant, 0).  The moving one is only changed by
    # ncd_iter_claim; read elsewhere with atomic loads.
    cdef Py_ssize_t pos, end
    # The claim mode (ncd_iter_claim): the creating thread's id while it is
    # the only claimer (biased), 0 once shared; busy: the owner is inside a
    # biased step.
    cdef uintptr_t bias
    cdef int busy
    cdef int kind
    cdef bint backwards
    # Items: the result tuple reused while the caller drops it (ncd_iter_item),
    # owned reference or NULL; only the creating thread (`owner`, constant)
    # ever reads or writes this field, so no other thread can see the tuple
    # unless it was handed a reference (which makes it not unique).
    cdef PyObject *result
    cdef uintptr_t owner

    @staticmethod
    cdef _SnapshotIter of(_Scratch s, int kind, bint backwards):
        cdef _SnapshotIter it = _SnapshotIter.__new__(_SnapshotIter)
        it.s = s
        it.buf = s.buf
        it.pos = 0
        it.end = s.n
        it.kind = kind
        it.backwards = backwards
        it.bias = ncd_iter_bias_of()
        it.busy = 0
        it.result = NULL
        it.owner = ncd_iter_owner_of()
        return it

    def __dealloc__(self):
        Py_XDECREF(self.result)

    def __iter__(self):
        return self

    def __next__(self):
        cdef Py_ssize_t j
        cdef ncd_item *ep
        cdef PyObject *o
        if self.backwards:
            j = ncd_iter_claim(&self.end, self.pos, 1, &self.bias, &self.busy)
        else:
            j = ncd_iter_claim(&self.pos, self.end, 0, &self.bias, &self.busy)
        if j < 0:
            raise StopIteration
        # Slot j is ours alone from here (the claim above); other threads
        # only READ it (__reduce__), so plain loads of it are no data race.
        ep = &self.s.buf[j]
        # Hand the snapshot's reference straight to the caller: returning
        # ncd_steal(...) directly, with no object variable in between, keeps
        # Cython from adding an incref/decref pair (two atomic operations on
        # a key that another thread owns).  The slot is cleared with a
        # release store (as ncc_slot_store) before the reference is handed
        # out; pairs with the seq_cst re-load in ncc_try_getref (__reduce__),
        # which then refuses an object this reference may have freed.
        if self.kind == _ITER_KEYS:
            o = ep.key
            ncc_store_obj_release(&ep.key, NULL)
            return ncd_steal(o)
        if self.kind == _ITER_VALUES:
            o = ep.value
            ncc_store_obj_release(&ep.value, NULL)
            return ncd_steal(o)
        # Plain read of owner: constant.  Under the GIL ncd_iter_owner_of()
        # is 0 for every thread (all own it, one at a time).
        return ncd_iter_item(ep, &self.result, self.owner == ncd_iter_owner_of())

    cdef void _drop_rest(self) noexcept:
        # For the GC's clear (_si_clear), when no other thread can reach this
        # iterator: exhaust it first (pos == end stops both directions'
        # claims), then release the unclaimed slots and the result tuple; a
        # __del__ run by a release may call next() or __reduce__ here, which
        # then find nothing.
        cdef Py_ssize_t j
        cdef Py_ssize_t lo = ncc_load_ssize_relaxed(&self.pos)
        cdef Py_ssize_t hi = ncc_load_ssize_relaxed(&self.end)
        cdef PyObject *k
        cdef PyObject *v
        ncc_store_ssize_relaxed(&self.pos, hi)
        for j in range(max(lo, 0), hi):
            k = self.buf[j].key
            v = self.buf[j].value
            self.buf[j].key = NULL
            self.buf[j].value = NULL
            Py_XDECREF(k)
            Py_XDECREF(v)
        k = self.result
        self.result = NULL
        Py_XDECREF(k)

    def __length_hint__(self):
        # Relaxed loads (a hint; pair with the stores and fetch-adds in
        # ncd_iter_claim).  The moving word may have overshot its bound
        # by a racing claim: never negative.
        cdef Py_ssize_t n = (ncc_load_ssize_relaxed(&self.end)
                             - ncc_load_ssize_relaxed(&self.pos))
        return n if n > 0 else 0

    def __reduce__(self):
        # Pickles like the list iterator over the remaining elements: those
        # not claimed when the claim word is re-read at the end (so it is
        # atomic with respect to other threads' __next__).  Slots another
        # thread may claim meanwhile are read with the try-incref protocol
        # (ncc_try_getref: a claimer clears its slot before it hands the
        # reference out, and a slot never holds an object again once
        # cleared); an element claimed before that final re-read is dropped
        # again.  Every slot at or past the final claim word was unclaimed
        # when it was read, so its reference was still the snapshot's and
        # the try-incref succeeded.
        cdef Py_ssize_t j, lo, hi
        cdef ncd_item *ep
        cdef PyObject *k
        cdef PyObject *v
        taken = []
        # Relaxed: only the range to scan; the re-read below decides.
        lo = ncc_load_ssize_relaxed(&self.pos)
        hi = ncc_load_ssize_relaxed(&self.end)
        for j in range(lo, hi):
            ep = &self.s.buf[j]
            k = v = NULL
            if self.kind != _ITER_VALUES:
                k = ncd_iter_peek(&ep.key)
                if k == NULL:
                    continue
            if self.kind != _ITER_KEYS:
                v = ncd_iter_peek(&ep.value)
                if v == NULL:
                    Py_XDECREF(k)
                    continue
            if self.kind == _ITER_KEYS:
                taken.append((j, ncd_steal(k)))
            elif self.kind == _ITER_VALUES:
                taken.append((j, ncd_steal(v)))
            else:
                taken.append((j, (ncd_steal(k), ncd_steal(v))))
        # The final claim word, seq_cst: ordered after every slot load above
        # (acquire / seq_cst loads in ncd_iter_peek); pairs with the claims'
        # stores and fetch-adds in ncd_iter_claim.
        if self.backwards:
            hi = ncc_load_ssize(&self.end)
        else:
            lo = ncc_load_ssize(&self.pos)
        rest = [x for j, x in taken if lo <= j < hi]
        del taken
        if self.backwards:
            rest.reverse()
        return (iter, (rest,))


@cython.final
cdef class _FlightKey:
    """Key of get_or_insert's in-flight table: the user's key with its hash
    computed once (removing the entry again calls no __hash__)."""
    cdef readonly object key
    cdef Py_hash_t h

    def __cinit__(self, key, Py_hash_t h):
        self.key = key
        self.h = h

    def __hash__(self):
        return self.h

    def __eq__(self, other):
        if not isinstance(other, _FlightKey):
            return NotImplemented
        k = (<_FlightKey>other).key
        return k is self.key or k == self.key


@cython.final
cdef class _Flight:
    """A get_or_insert factory call in progress: owned by one thread; others
    wait until it is done()."""
    cdef readonly object owner
    cdef readonly bint finished
    cdef object _lock

    def __cinit__(self, owner):
        self.owner = owner
        self.finished = False
        self._lock = _allocate_lock()
        self._lock.acquire()

    cdef void wait(self) except *:
        self._lock.acquire()
        self._lock.release()

    cdef void done(self) except *:
        self.finished = True
        self._lock.release()


# The trashcan bounds the C stack when a deeply nested chain of dicts is freed
# (dealloc -> _drop_table -> value's dealloc -> ...), as for list and dict.
@cython.trashcan(True)
cdef class ConcurrentDict:
    """ConcurrentDict() -> new empty concurrent dictionary
    ConcurrentDict(mapping) / ConcurrentDict(iterable) / ConcurrentDict(**kwargs)

    A thread-safe, insertion-ordered dict: every operation is linearizable,
    lookups take no lock, iteration works on a consistent snapshot and never
    raises because another thread changed the dict.  See docs/guarantees.md.

    >>> d = ConcurrentDict(a=1)
    >>> d["b"] = 2
    >>> d
    {'a': 1, 'b': 2}
    """

    # Cold fields first, then padding, then the readers' words on a 64-byte
    # line of their own at offset 192, in a 256-byte object (ncd_hot is
    # 64-byte aligned: docs/design.md, memory layout; checked by _check() and
    # tests/test_layout.py).  The writers' words live in _wlock.
    @cython.final
    cdef object __weakref__
    @cython.final
    cdef object _inflight    # get_or_insert: {_FlightKey: _Flight}, created on first use
    @cython.final
    cdef _WriterLock _wlock     # writers' critical section: see _WriterLock
    cdef char _pad[128]
    cdef ncd_hot _h

    ABSENT = ABSENT
    __class_getitem__ = classmethod(_GenericAlias)

    def __cinit__(self, *args, **kwargs):
        cdef ncd_table *t
        self._wlock = _WriterLock.__new__(_WriterLock)
        t = ncd_table_new(3, 1)
        if t == NULL:
            raise MemoryError()
        self._h.tseq = 0
        # The dict keeps _wlock for its whole life (_cd_clear restores it),
        # so the pointer stays valid; not yet visible to any other thread.
        self._h.w = &self._wlock.w
        self._h.w.version = 0
        self._h.w.used = 0
        # Not yet visible to any other thread.
        self._h.table = t

    def __init__(self, other=(), /, **kwargs):
        # ConcurrentDict's own update, as dict.__init__ never calls a
        # subclass's update (copyreg._reconstructor relies on that).
        ConcurrentDict.update(self, other, **kwargs)

    def __dealloc__(self):
        cdef ncd_table *t = self._h.table
        if t != NULL:
            self._h.table = NULL
            _drop_table(t, True, True)

    # ------------------------------------------------------------------
    # Lookups (lock-free)

    @cython.final
    cdef int _lookup(self, object key, Py_hash_t h, PyObject **out) except -1:
        """1 and a new reference in *out if key is present, else 0.  With
        out == NULL only presence is checked (no reference to the value is
        taken: a non-NULL value in the table the probe validated is enough)."""
        global ncd_reader_retries
        cdef ncd_probe p
        cdef int r, cmp, tries = 0
        p.resume = NCD_FRESH
        while True:
            r = ncd_probe_run(&self._h, <PyObject *>key, h, &p, out,
                              NCD_READ_VALUE if out != NULL else NCD_READ_PRESENCE)
            if r == NCD_FOUND:
                return 1
            if r == NCD_MISS:
                return 0
            if r == NCD_NEED_EQ:
                # Outside any region; ncd_probe_run re-validates tseq.
                cmp = _eq_steal(p.eqkey, key)
                p.resume = NCD_RESUME_EQ if cmp else NCD_RESUME_NE
                continue
            tries += 1
            ncd_reader_retries += 1
            if tries >= READ_RETRIES:
                return self._lookup_locked(key, h, out)
            ncc_cpu_relax()
            p.resume = NCD_FRESH

    @cython.final
    cdef int _lookup_locked(self, object key, Py_hash_t h, PyObject **out) except -1:
        cdef ncd_probe p
        cdef int r
        with cython.critical_section(self._wlock):
            r = self._find_locked(key, h, &p)
            if r == NCD_FOUND:
                if out != NULL:
                    out[0] = ncd_entry_at(self._h.table, p.ix).value
                    Py_INCREF(<object>out[0])
                return 1
            return 0

    def __getitem__(self, key):
        cdef PyObject *v
        cdef Py_hash_t h = _hash(key)
        if self._lookup(key, h, &v):
            return ncd_steal(v)
        if type(self) is not ConcurrentDict:
            missing = getattr(type(self), "__missing__", None)
            if missing is not None:
                return missing(self, key)
        raise KeyError(key)

    def __contains__(self, key):
        return self._lookup(key, _hash(key), NULL) == 1

    def get(self, key, default=None, /):
        """Return d[key] if key is present, else default.  Lock-free, O(1)."""
        return self._get_impl(key, default)

    @cython.final
    cdef object _get_impl(self, object key, object default):
        # Also reached through _fast_get (borrowed arguments, see below).
        cdef PyObject *v
        if self._lookup(key, _hash(key), &v):
            return ncd_steal(v)
        return default

    @cython.final
    cdef object _get_or_absent(self, object key):
        cdef PyObject *v
        if self._lookup(key, _hash(key), &v):
            return ncd_steal(v)
        return _ABSENT

    def __len__(self):
        return self._len()

    @cython.final
    cdef Py_ssize_t _len(self) except -1:
        """`used`, validated against `version`: an insert publishes its key
        (index store) and a delete hides it (NULL value) before they update
        `used`, in the same write window.  A thread that saw the key appear
        or vanish and then read `used` alone could get the count from before
        that change (not linearizable: `k in d` True, then len(d) without k).
        Reading `used` between two equal even versions excludes that."""
        cdef uint64_t v
        cdef Py_ssize_t n
        cdef int tries
        for tries in range(READ_RETRIES):
            # Acquire; pairs with the release store in ncc_seq_write_end: a
            # window that published or hid a key this thread has seen is
            # either still open (odd) or closed with its `used` visible.
            v = ncc_seq_read_begin(&self._h.w.version)
            if not ncc_seq_is_writing(v):
                # Relaxed: validated by the version (same cache line).
                n = ncc_load_ssize_relaxed(&self._h.w.used)
                # Acquire fence + relaxed load; pairs with the release fence
                # in ncc_seq_write_begin.
                if ncc_seq_read_validate(&self._h.w.version, v):
                    return n
            ncc_cpu_relax()
        # A stream of writes (or a writer preempted inside its window).
        with cython.critical_section(self._wlock):
            return self._h.w.used

    # ------------------------------------------------------------------
    # Writer helpers: the caller holds the critical section.

    @cython.final
    cdef int _find_locked(self, object key, Py_hash_t h, ncd_probe *p) except -1:
        """NCD_FOUND (p.ix, p.slot) or NCD_MISS (p.slot = insertion slot),
        valid for the current table: no Python code runs between the last
        validation and the return, so the caller may write at once."""
        cdef ncd_eq_memo m
        ncd_eq_memo_init(&m)
        try:
            return self._find_memo(key, h, p, &m)
        finally:
            ncd_eq_memo_free(&m)

    @cython.final
    cdef int _find_memo(self, object key, Py_hash_t h, ncd_probe *p, ncd_eq_memo *m) except -1:
        """_find_locked with the caller's memo of __eq__ answers (kept across
        the lookups of one _apply_batch).  key must stay alive as long as m."""
        cdef int r, cmp, stuck = 0
        cdef PyObject *stored
        cdef uint64_t version
        p.resume = NCD_FRESH
        p.memo = m
        while True:
            r = ncd_probe_run(&self._h, <PyObject *>key, h, p, NULL, NCD_WRITER)
            if r == NCD_FOUND or r == NCD_MISS:
                return r
            if r == NCD_NEED_EQ:
                # __eq__ may block (suspending our critical section) or mutate
                # this dict; the next step re-validates the version, and a
                # restart reuses this answer (ncd_eq_memo_add: an __eq__ that
                # writes to this dict on every call cannot restart us forever).
                stuck = 0
                stored = p.eqkey
                version = self._h.w.version
                cmp = _eq_steal(p.eqkey, key)
                # Only an answer during which a write ran is kept: only such
                # a call can cause a restart, and the bound needs just that
                # one new answer per restart (docs/design.md).  Keeping every
                # answer made a batch of n keys colliding with m stored ones
                # hold n*m answers (512 MiB for 3000 x 3000).
                if self._h.w.version != version:
                    ncd_eq_memo_add(p, <PyObject *>key, stored, cmp)
                p.resume = NCD_RESUME_EQ if cmp else NCD_RESUME_NE
                continue
            # Under the lock a retry without an __eq__ in between cannot
            # happen (no writer can be active): fail loudly, never hang.
            stuck += 1
            if stuck > 1000:
                raise SystemError("ConcurrentDict: probe failed under the lock")
            ncd_eq_memo_restart(m)
            p.resume = NCD_FRESH

    @cython.final
    cdef int _prefind(self, object key, Py_hash_t h, ncd_probe *p) noexcept:
        """Lock-free probe of a single-key writer, BEFORE it takes the lock
        (docs/design.md, "Writers: the probe before the lock"): NCD_FOUND
        with p.ix, p.slot and p.version (the `tseq` sampled when the probe
        started) if the probe met key's entry; NCD_MISS with p.slot (the
        insertion slot) and p.wversion (`version` sampled when it started);
        or NCD_RETRY.  The caller then
        takes the lock and uses p only if _prefound_live(p) (a hit) or
        _premiss_valid(p) (a miss) holds; anything
        else takes today's locked path (_find_locked).  A stored key that
        needs __eq__ also gives up (NCD_RETRY): the locked path calls it,
        once, as before; only identity and the inline str/int compares are
        done here, which run no Python code.  p.version is validated only
        under the lock (NCD_PREWRITE), where it must be checked anyway."""
        p.resume = NCD_FRESH
        return ncd_probe_run(&self._h, <PyObject *>key, h, p, NULL, NCD_PREWRITE)

    @cython.final
    cdef inline bint _prefound_live(self, ncd_probe *p) noexcept:
        """Under the critical section: is the entry _prefind found (NCD_FOUND)
        still the live entry of its key in the published table?  `tseq`
        unchanged means no table was published since the probe (every store
        of the table pointer is inside a tseq window), so p.ix names an
        entry of the current table; entries are never reused inside a table
        and a value never comes back from NULL, so a non-NULL value means
        the entry the probe matched was never deleted: it still holds the
        key the probe compared equal, and it is that key's only live entry.
        Both loads are relaxed: every store of `tseq` and of an entry's
        value is made by a holder of this lock, and our lock acquisition
        synchronizes with the release of the previous holder (each earlier
        holder's unlock, PyMutex_Unlock), so they read the latest values."""
        return (ncc_load_uint64_relaxed(&self._h.tseq) == p.version and
                ncc_load_obj_relaxed(&ncd_entry_at(self._h.table, p.ix).value) != NULL)

    @cython.final
    cdef inline bint _premiss_valid(self, ncd_probe *p) noexcept:
        """Under the critical section: is the miss _prefind found (NCD_MISS)
        still valid, with its insertion slot?  Only if no write window
        opened since the probe started (`version` unchanged): then the
        table, its index slots and entries are those the probe loaded.
        Relaxed, as in _prefound_live: only holders of this lock store
        `version`."""
        return ncc_load_uint64_relaxed(&self._h.w.version) == p.wversion

    @cython.final
    cdef int _publish_table(self, ncd_table *new) except -1:
        # A table replacement concerns every reader: both sequences move
        # (tseq for point readers, version for consistent copies).
        ncc_seq_write_begin(&self._h.w.version)
        ncc_seq_write_begin(&self._h.tseq)
        # Release; pairs with the acquire loads of the table pointer in
        # ncd_probe_run / ncd_collect.
        ncc_store_ptr_release(<void **>&self._h.table, new)
        ncc_seq_write_end(&self._h.tseq)
        ncc_seq_write_end(&self._h.w.version)
        return 0

    @cython.final
    cdef int _resize(self, int log2size, bint pinned) except -1:
        """Copy the live entries (compacting) into a new table, publish it and
        retire the old one.  Runs no Python code until the new table is
        published; then dropping the old one may suspend the critical section
        (_drop_table), so the caller re-checks whatever it relies on."""
        cdef ncd_table *new = ncd_table_new(log2size, pinned)
        cdef ncd_table *old
        cdef Py_ssize_t ix
        cdef ncd_entry *ep
        cdef Py_hash_t h
        if new == NULL:
            raise MemoryError()
        # Loaded after the allocation, in case allocating ever suspends.
        old = self._h.table
        if self._h.w.used > new.capacity:
            PyMem_RawFree(new)
            raise SystemError("ConcurrentDict: resize target too small")
        for ix in range(old.nentries):
            ep = ncd_entry_at(old, ix)
            if ep.value != NULL:
                # Private table: these stores are published by _publish_table.
                # (Converting a pinned table: its hashes are recomputed here,
                # from the cached str hash or the int's value.)
                h = ncd_entry_hash(old, ix)
                ncd_append(new, ncd_find_empty(new, h), ep.key, ep.value, h)
        self._publish_table(new)
        _drop_table(old, False, False, old.pinned and not pinned)
        return 0

    @cython.final
    cdef int _reserve(self, Py_ssize_t n, bint pin) except -1:
        """Make room for n new entries (and a generic table unless pin)."""
        cdef ncd_table *t = self._h.table
        if t.nentries + n > t.capacity or (t.pinned and not pin):
            self._resize(_grow_log2(self._h.w.used, n), t.pinned and pin)
        return 0

    @cython.final
    cdef int _insert_new(self, object key, Py_hash_t h, object value, Py_ssize_t slot) except -1:
        """Append key (known absent; slot from _find_locked) -> value and
        return 1; or, if the table first had to grow, grow it and return 0:
        the caller must redo its _find_locked and call again.  Growing drops
        the old table, whose decrefs may block (CPython's biased-refcount
        queue takes a PyMutex), which suspends our critical section and lets
        another writer insert this very key: the earlier "absent" is stale.
        (An ASAN run saw exactly that duplicate key once.)"""
        cdef ncd_table *t = self._h.table
        cdef bint pin = ncd_key_pinnable(<PyObject *>key)
        if t.nentries >= t.capacity or (t.pinned and not pin):
            self._reserve(1, pin)
            return 0
        self._append_lh(t, key, h, value, slot)
        return 1

    @cython.final
    cdef inline void _append_lh(self, ncd_table *t, object key, Py_hash_t h, object value,
                                Py_ssize_t slot) noexcept:
        """Append key -> value as a new entry of t (the published table, with
        room: t.nentries < t.capacity), indexed at `slot`.  Blocks on nothing:
        safe under the bare writer mutex (ncc_cs_try_lock)."""
        ncc_publish(<PyObject *>key)
        ncc_publish(<PyObject *>value)
        Py_INCREF(key)
        Py_INCREF(value)
        ncc_seq_write_begin(&self._h.w.version)
        ncd_append(t, slot, <PyObject *>key, <PyObject *>value, h)
        if ncd_mutant == NCD_MUTANT_WIDE_COUNT_WINDOW:
            ncc_spin_for(1e-4)   # tests only: see _dict_table.h
        ncc_store_ssize_relaxed(&self._h.w.used, self._h.w.used + 1)
        ncc_seq_write_end(&self._h.w.version)

    @cython.final
    cdef PyObject *_replace_value(self, Py_ssize_t ix, object value) noexcept:
        """Store value in live entry ix; returns the old value's reference.
        Blocks on nothing (safe under the bare writer mutex)."""
        cdef ncd_entry *ep = ncd_entry_at(self._h.table, ix)
        cdef PyObject *old = ep.value
        ncc_publish(<PyObject *>value)
        Py_INCREF(value)
        # Only `version` moves (consistent copies): a point reader of this
        # key validates the value itself (try-incref, then re-load of the
        # slot), and readers of other keys never load this entry's value.
        ncc_seq_write_begin(&self._h.w.version)
        if ncd_mutant == NCD_MUTANT_TORN_REPLACE:
            # Deliberately broken (tests only): a transient NULL that a
            # reader takes for "deleted".
            ncc_slot_store(&ep.value, NULL)
            ncc_spin_for(1e-3)
        ncc_slot_store(&ep.value, <PyObject *>value)
        ncc_seq_write_end(&self._h.w.version)
        return old

    @cython.final
    cdef void _delete_at(self, ncd_probe *p, PyObject **okey, PyObject **oval,
                         bint want_key=True) noexcept:
        """Delete the entry _find_locked found; the caller owns *okey/*oval
        and releases them after leaving the critical section.  Without
        want_key, *okey may be NULL (a pinned table keeps the key)."""
        ncc_seq_write_begin(&self._h.w.version)
        ncd_delete(&self._h, self._h.table, p.slot, p.ix, okey, oval, want_key)
        ncc_seq_write_end(&self._h.w.version)

    @cython.final
    cdef object _delete_found(self, ncd_probe *p):
        """Delete the entry _find_locked found; returns (key, value)."""
        cdef PyObject *okey
        cdef PyObject *oval
        self._delete_at(p, &okey, &oval)
        return (ncd_steal(okey), ncd_steal(oval))

    @cython.final
    cdef inline int _probe_pinned_lh(self, object key, Py_hash_t h, ncd_probe *p) noexcept:
        """The lookup of a single-key write on the fast path (docs/design.md,
        "The writer lock"): under the bare writer mutex (ncc_cs_try_lock),
        for a pinnable key (exact str or int).  Only a pinned table is
        probed: there every candidate of such a key is compared inline
        (identity, str or int value), so the probe runs no __eq__ and blocks
        on nothing.  NCD_FOUND / NCD_MISS as _find_locked; NCD_RETRY (a
        generic table, or the probe's defensive bound) sends the caller to
        the general path.  Never NCD_NEED_EQ (which would hand back a
        reference in p.eqkey): ncd_probe_run asks for __eq__ only for a key
        that is neither an exact str nor an exact int."""
        cdef ncd_eq_memo m
        if not self._h.table.pinned:
            return NCD_RETRY
        # The memo is never consulted for a pinnable key (only a candidate
        # of another type is); set as every NCD_WRITER probe has one.
        ncd_eq_memo_init(&m)
        p.resume = NCD_FRESH
        p.memo = &m
        return ncd_probe_run(&self._h, <PyObject *>key, h, p, NULL, NCD_WRITER)

    @cython.final
    cdef inline bint _set_pinned_lh(self, object key, Py_hash_t h, object value,
                                    PyObject **old) noexcept:
        """d[key] = value on the fast path (see _probe_pinned_lh): a
        replacement, or an append into a table with room, which block on
        nothing.  True when done, with *old the replaced value's reference
        (NULL for an insert) for the caller to release after unlocking;
        False, nothing changed, when the general path must do it (a generic
        or full table)."""
        cdef ncd_probe p
        cdef ncd_table *t = self._h.table
        cdef int r = self._probe_pinned_lh(key, h, &p)
        if r == NCD_FOUND:
            old[0] = self._replace_value(p.ix, value)
            return True
        if r == NCD_MISS and t.nentries < t.capacity:
            self._append_lh(t, key, h, value, p.slot)
            return True
        return False

    # ------------------------------------------------------------------
    # Mutations

    def __setitem__(self, key, value):
        cdef ncd_probe p
        cdef PyObject *old = NULL
        cdef bint done
        cdef Py_hash_t h = _hash(key)
        cdef ncc_cs cs
        # Find the key's entry before the lock, so that the lock is held only
        # for the validation and the store (docs/design.md).
        cdef int pre = NCD_RETRY
        if ncd_write_contended(<PyObject *>self._wlock):
            pre = self._prefind(key, h, &p)
            # Other writers may run here: _prefound_live re-checks under the lock.
            NCC_SUSPEND_POINT("dict.setitem.prelock")
        elif ncd_key_pinnable(<PyObject *>key) and ncc_cs_try_lock(<PyObject *>self._wlock):
            # Fast path, as ConcurrentList.append's: the writer lock's mutex
            # without a critical section, since nothing _set_pinned_lh does
            # can block (ncc_cs_try_lock's rule).
            done = self._set_pinned_lh(key, h, value, &old)
            ncc_cs_unlock(<PyObject *>self._wlock)
            if done:
                Py_XDECREF(old)   # after unlocking: may run __del__
                return
        ncc_cs_begin(&cs, <PyObject *>self._wlock)   # see ncc_cs_begin
        try:
            if pre == NCD_FOUND and self._prefound_live(&p):
                # Nothing between the validation and the store can suspend
                # the section (_replace_value runs no Python code).
                old = self._replace_value(p.ix, value)
            elif not (pre == NCD_MISS and self._premiss_valid(&p)
                      and self._insert_new(key, h, value, p.slot)):
                # (_insert_new returns 0 after growing the table, which may
                # have suspended the section: look the key up again.)
                while True:
                    if self._find_locked(key, h, &p) == NCD_FOUND:
                        old = self._replace_value(p.ix, value)
                        break
                    if self._insert_new(key, h, value, p.slot):
                        break
        finally:
            ncc_cs_end(&cs)
        # Outside the critical section: may run __del__.
        Py_XDECREF(old)

    def __delitem__(self, key):
        cdef PyObject *okey = NULL
        cdef PyObject *oval = NULL
        self._delete_key(key, &okey, &oval)
        if oval == NULL:
            raise KeyError(key)
        # Outside the critical section: may run __del__.
        Py_XDECREF(okey)
        Py_XDECREF(oval)

    @cython.final
    cdef inline int _delete_key(self, object key, PyObject **okey, PyObject **oval) except -1:
        """del d[key] and pop's removal: under the writer lock, remove key's
        entry if present, leaving in *okey / *oval the references the table
        held (NULL, NULL if key is absent) for the caller to release outside
        the critical section."""
        cdef ncd_probe p
        cdef Py_hash_t h = _hash(key)
        cdef ncc_cs cs
        cdef bint found
        cdef int pre = NCD_RETRY
        if ncd_write_contended(<PyObject *>self._wlock):   # see __setitem__
            pre = self._prefind(key, h, &p)
            NCC_SUSPEND_POINT("dict.delete.prelock")
        elif ncd_key_pinnable(<PyObject *>key) and ncc_cs_try_lock(<PyObject *>self._wlock):
            # Fast path (see __setitem__): the probe and the delete block on
            # nothing; the caller releases *okey / *oval after we unlock.
            pre = self._probe_pinned_lh(key, h, &p)
            if pre == NCD_FOUND:
                self._delete_at(&p, okey, oval, False)
            ncc_cs_unlock(<PyObject *>self._wlock)
            if pre == NCD_FOUND or pre == NCD_MISS:
                return 0
            pre = NCD_RETRY   # (only NCD_RETRY comes back here) the general path
        ncc_cs_begin(&cs, <PyObject *>self._wlock)   # see ncc_cs_begin
        try:
            # A live entry's index slot still names it (only its delete
            # stores DUMMY there), so p.slot is valid too.
            if pre == NCD_FOUND and self._prefound_live(&p):
                found = True
            elif pre == NCD_MISS and self._premiss_valid(&p):
                found = False
            else:
                found = self._find_locked(key, h, &p) == NCD_FOUND
            if found:
                self._delete_at(&p, okey, oval, False)
        finally:
            ncc_cs_end(&cs)
        return 0

    def setdefault(self, key, default=None, /):
        """Insert key with a value of default if key is not present; return
        the value for key.  Atomic."""
        cdef ncd_probe p
        cdef PyObject *v
        cdef Py_hash_t h = _hash(key)
        if self._lookup(key, h, &v):
            return ncd_steal(v)
        with cython.critical_section(self._wlock):
            while True:
                if self._find_locked(key, h, &p) == NCD_FOUND:
                    v = ncd_entry_at(self._h.table, p.ix).value
                    Py_INCREF(<object>v)
                    return ncd_steal(v)
                if self._insert_new(key, h, default, p.slot):
                    return default

    def pop(self, key, default=_MISSING, /):
        """Remove key and return its value; if key is absent, return default
        if given, else raise KeyError.  Atomic."""
        return self._pop_impl(key, default)

    @cython.final
    cdef object _pop_impl(self, object key, object default):
        # Also reached through _fast_pop (borrowed arguments, see below).
        cdef PyObject *okey = NULL
        cdef PyObject *oval = NULL
        # As dict.pop: an empty dict answers without hashing the key, so an
        # unhashable key gives KeyError / the default, not TypeError
        # (pop_lock_held, Objects/dictobject.c).  Relaxed, as len(): the dict
        # was empty when this load read it.
        if ncc_load_ssize_relaxed(&self._h.w.used) == 0:
            if default is _MISSING:
                raise KeyError(key)
            return default
        self._delete_key(key, &okey, &oval)
        if oval != NULL:
            Py_XDECREF(okey)
            return ncd_steal(oval)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self):
        """Remove and return the most recently inserted (key, value) pair
        (LIFO).  Raise KeyError if the dict is empty.  Atomic."""
        cdef ncd_probe p
        cdef ncd_table *t
        cdef Py_ssize_t ix
        cdef PyObject *okey = NULL
        cdef PyObject *oval = NULL
        with cython.critical_section(self._wlock):
            t = self._h.table
            ix = t.live_end - 1
            while ix >= 0 and ncd_entry_at(t, ix).value == NULL:
                ix -= 1
            if ix >= 0:
                p.ix = ix
                p.slot = ncd_slot_of(t, ncd_entry_hash(t, ix), ix)
                # No Python object is created before `t` is last used: an
                # allocation may run the GC and finalizers, which can suspend
                # this critical section and let a writer replace `t`.
                self._delete_at(&p, &okey, &oval)
                t.live_end = ix
        if oval == NULL:
            raise KeyError("popitem(): dictionary is empty")
        return (ncd_steal(okey), ncd_steal(oval))

    @cython.final
    cdef int _apply_batch(self, list keys, list values, Py_hash_t *hashes, bint pin,
                          Py_ssize_t *found, PyObject **olds) except -1:
        """Atomically set keys[j] -> values[j] (keys pairwise distinct, their
        hashes in hashes[j]; pin: all of them pinnable): every lookup, __eq__
        included, happens before one write window that applies all of it.
        The replaced values are moved to olds[j] (NULL-initialised by the
        caller), which the caller releases after leaving the critical
        section: a value's __del__ must not run under the lock.  `found` is
        scratch space for n entries.  Caller holds the critical section."""
        cdef ncd_eq_memo m
        if len(keys) == 0:
            return 0
        # One memo of __eq__ answers for every lookup of every pass (the
        # keys stay alive in `keys`): a pass after a restart calls __eq__
        # only for entries not compared yet, so an __eq__ that writes to this
        # dict on every call cannot restart the batch forever (it did when
        # each pass started with no memo).  docs/design.md, "Restarts after
        # a concurrent write: the bounds".
        ncd_eq_memo_init(&m)
        try:
            self._apply_batch_memo(keys, values, hashes, pin, found, olds, &m)
        finally:
            ncd_eq_memo_free(&m)
        return 0

    @cython.final
    cdef int _apply_batch_memo(self, list keys, list values, Py_hash_t *hashes, bint pin,
                               Py_ssize_t *found, PyObject **olds, ncd_eq_memo *m) except -1:
        cdef Py_ssize_t n = len(keys), j, nnew
        cdef ncd_probe p
        cdef ncd_table *t
        cdef uint64_t version
        while True:
            # Growing drops the old table, whose decrefs may suspend this
            # critical section (_drop_table); so may every __eq__ below.  A
            # writer that ran meanwhile may have replaced or filled the table,
            # so what the write window relies on -- positions, room for the
            # new entries, the table kind -- is checked after the last point
            # that can suspend: the version for the positions, then the
            # capacity and kind explicitly (the version does not cover the
            # reserve, which ran before it was sampled).
            self._reserve(n, pin)
            version = self._h.w.version
            nnew = 0
            for j in range(n):
                if self._find_memo(keys[j], hashes[j], &p, m) == NCD_FOUND:
                    found[j] = p.ix
                else:
                    found[j] = -1
                    nnew += 1
            if self._h.w.version != version:
                ncd_eq_memo_restart(m)
                continue    # positions are stale
            t = self._h.table
            if t.nentries + nnew <= t.capacity and (pin or not t.pinned):
                break
            # Not enough room, or a pinned table for unpinnable keys: reserve again.
        # From here to the end of the write window nothing can suspend us.
        for j in range(n):
            ncc_publish(<PyObject *>values[j])
            Py_INCREF(values[j])
            if found[j] < 0:
                ncc_publish(<PyObject *>keys[j])
                Py_INCREF(keys[j])
        # Several keys change at once: point readers must see all or none
        # of it, so the table-wide sequence moves too (one key: a normal
        # single-key write).
        ncc_seq_write_begin(&self._h.w.version)
        if n > 1:
            ncc_seq_write_begin(&self._h.tseq)
        for j in range(n):
            if found[j] >= 0:
                olds[j] = ncd_entry_at(t, found[j]).value
                ncc_slot_store(&ncd_entry_at(t, found[j]).value, <PyObject *>values[j])
            else:
                ncd_append(t, ncd_find_empty(t, hashes[j]), <PyObject *>keys[j],
                           <PyObject *>values[j], hashes[j])
        ncc_store_ssize_relaxed(&self._h.w.used, self._h.w.used + nnew)
        if n > 1:
            ncc_seq_write_end(&self._h.tseq)
        ncc_seq_write_end(&self._h.w.version)
        return 0

    def update(self, other=(), /, **kwargs):
        """Update from a mapping or an iterable of pairs, then from kwargs,
        exactly like dict.update.  Atomic: the argument is read first (outside
        the lock), then all pairs are applied in one step; if reading it or a
        key's __hash__/__eq__ raises, the dict is unchanged."""
        cdef dict tmp = {}
        cdef Py_ssize_t n, j
        cdef Py_hash_t *hashes = NULL
        cdef Py_ssize_t *found = NULL
        cdef PyObject **olds = NULL
        cdef bint pin = True
        if isinstance(other, ConcurrentDict):
            tmp = (<ConcurrentDict>other).snapshot()
            if kwargs:
                tmp.update(kwargs)
        else:
            # dict.update's own rules, error messages and duplicate handling.
            tmp.update(other, **kwargs)
        if not tmp:
            return
        keys = list(tmp)
        values = list(tmp.values())
        del tmp
        n = len(keys)
        # Everything that allocates or calls __hash__ happens before the lock.
        hashes = <Py_hash_t *>PyMem_RawMalloc(n * sizeof(Py_hash_t))
        found = <Py_ssize_t *>PyMem_RawMalloc(n * sizeof(Py_ssize_t))
        olds = <PyObject **>PyMem_RawMalloc(n * sizeof(PyObject *))
        try:
            if hashes == NULL or found == NULL or olds == NULL:
                raise MemoryError()
            for j in range(n):
                olds[j] = NULL
            for j in range(n):
                hashes[j] = _hash(keys[j])
                pin = pin and ncd_key_pinnable(<PyObject *>keys[j])
            with cython.critical_section(self._wlock):
                self._apply_batch(keys, values, hashes, pin, found, olds)
        finally:
            # Outside the critical section: replaced values may run __del__.
            if olds != NULL:
                for j in range(n):
                    Py_XDECREF(olds[j])
            PyMem_RawFree(hashes)
            PyMem_RawFree(found)
            PyMem_RawFree(olds)

    def clear(self):
        """Remove all items.  Atomic: readers see all items or none."""
        self._clear_impl()

    @cython.final
    cdef int _clear_impl(self) except -1:
        cdef ncd_table *old = NULL
        cdef ncd_table *new
        with cython.critical_section(self._wlock):
            if self._h.table.nentries != 0:
                new = ncd_table_new(3, 1)
                if new == NULL:
                    raise MemoryError()
                old = self._h.table
                ncc_seq_write_begin(&self._h.w.version)
                ncc_seq_write_begin(&self._h.tseq)
                # Release; pairs with the acquire loads of the table pointer.
                ncc_store_ptr_release(<void **>&self._h.table, new)
                ncc_store_ssize_relaxed(&self._h.w.used, 0)
                ncc_seq_write_end(&self._h.tseq)
                ncc_seq_write_end(&self._h.w.version)
        if old != NULL:
            # Unpublished: owned by this thread alone.  Decrefs may run code.
            _drop_table(old, True, False)
        return 0

    # ------------------------------------------------------------------
    # Consistent copies (lock-free, bounded retries, then locked)

    @cython.final
    cdef _Scratch _collect(self, int want=NCD_WANT_KEYS | NCD_WANT_VALUES):
        cdef _Scratch s = _Scratch.__new__(_Scratch)
        cdef Py_ssize_t cap = ncc_load_ssize_relaxed(&self._h.w.used) + 8, count = 0, r
        cdef int tries = 0
        while True:
            if s.buf == NULL:
                s.buf = <ncd_item *>PyMem_RawMalloc(cap * sizeof(ncd_item))
                if s.buf == NULL:
                    raise MemoryError()
            if tries < READ_RETRIES:
                r = ncd_collect(&self._h, s.buf, cap, &count, want)
            else:
                with cython.critical_section(self._wlock):
                    r = ncd_collect(&self._h, s.buf, cap, &count, want)
            if r == NCD_FOUND:
                s.n = count
                return s
            if r <= -10:
                cap = -(r + 10) + 8 + cap // 4
                PyMem_RawFree(s.buf)
                s.buf = NULL
            else:
                ncc_cpu_relax()
            tries += 1

    cpdef dict snapshot(self):
        """Return a builtin dict copy of a consistent point in time.
        Lock-free (falls back to the lock under heavy write contention)."""
        cdef _Scratch s = self._collect()
        cdef dict out = {}
        cdef Py_ssize_t j
        for j in range(s.n):
            out[<object>s.buf[j].key] = <object>s.buf[j].value
        return out

    @cython.final
    cdef list _keys_list(self):
        cdef _Scratch s = self._collect(NCD_WANT_KEYS)
        cdef list out = PyList_New(s.n)
        cdef Py_ssize_t j
        for j in range(s.n):
            ncd_list_set_steal(out, j, s.buf[j].key)
            s.buf[j].key = NULL
        return out

    @cython.final
    cdef list _values_list(self):
        cdef _Scratch s = self._collect(NCD_WANT_VALUES)
        cdef list out = PyList_New(s.n)
        cdef Py_ssize_t j
        for j in range(s.n):
            ncd_list_set_steal(out, j, s.buf[j].value)
            s.buf[j].value = NULL
        return out

    @cython.final
    cdef list _items_list(self):
        cdef _Scratch s = self._collect()
        cdef list out = PyList_New(s.n)
        cdef Py_ssize_t j
        cdef object pair
        for j in range(s.n):
            pair = PyTuple_New(2)
            ncd_tuple_set_steal(pair, 0, s.buf[j].key)
            ncd_tuple_set_steal(pair, 1, s.buf[j].value)
            s.buf[j].key = NULL
            s.buf[j].value = NULL
            Py_INCREF(pair)
            ncd_list_set_steal(out, j, <PyObject *>pair)
        return out

    def __iter__(self):
        # Iterates a consistent snapshot of the keys (docs/guarantees.md).
        return _SnapshotIter.of(self._collect(NCD_WANT_KEYS), _ITER_KEYS, False)

    def __reversed__(self):
        return _SnapshotIter.of(self._collect(NCD_WANT_KEYS), _ITER_KEYS, True)

    @cython.final
    cdef _SnapshotIter _iter_of(self, int kind, bint backwards):
        return _SnapshotIter.of(
            self._collect(NCD_WANT_VALUES if kind == _ITER_VALUES else
                          NCD_WANT_KEYS | NCD_WANT_VALUES if kind == _ITER_ITEMS else
                          NCD_WANT_KEYS), kind, backwards)

    def keys(self):
        """A live set-like view of the keys."""
        return ConcurrentDictKeys(self)

    def values(self):
        """A live view of the values."""
        return ConcurrentDictValues(self)

    def items(self):
        """A live set-like view of the (key, value) pairs."""
        return ConcurrentDictItems(self)

    def copy(self):
        """A shallow copy (a ConcurrentDict) of a consistent point in time."""
        cdef _Scratch s = self._collect(NCD_WANT_KEYS | NCD_WANT_VALUES | NCD_WANT_HASHES)
        cdef ConcurrentDict new = ConcurrentDict.__new__(ConcurrentDict)
        cdef Py_ssize_t j
        cdef bint pin = True
        cdef ncd_table *t
        for j in range(s.n):
            pin = pin and ncd_key_pinnable(s.buf[j].key)
        if s.n:
            t = ncd_table_new(_grow_log2(0, s.n), pin)
            if t == NULL:
                raise MemoryError()
            for j in range(s.n):
                ncc_publish(s.buf[j].key)
                ncc_publish(s.buf[j].value)
                # Keys are distinct: no comparison needed.
                ncd_append(t, ncd_find_empty(t, s.buf[j].hash), s.buf[j].key,
                           s.buf[j].value, s.buf[j].hash)
            s.n = 0   # references now owned by t
            _drop_table(new._h.table, True, True)
            new._h.table = t
            new._h.w.used = t.nentries
        return new

    @classmethod
    def fromkeys(cls, iterable, value=None, /):
        """A new dict with keys from iterable and values set to value."""
        d = cls()
        if type(d) is ConcurrentDict:
            (<ConcurrentDict>d).update(dict.fromkeys(iterable, value))
        else:
            for k in iterable:
                d[k] = value
        return d

    @classmethod
    def immortal(cls, *args, **kwargs):
        """A new dict, like ``cls(*args, **kwargs)``, that is never freed.

        Free-threaded builds: made immortal before ``__init__`` runs, so
        threads that reach it by name (local, global, ``self.c``, closure)
        never write its reference count.  Its items are released as usual
        when removed; copies, pickles and ``|`` give ordinary dicts.  For
        module-level, process-lifetime caches and registries only.  GIL
        builds: ``cls(*args, **kwargs)``.  Rules: docs/guarantees.md,
        "Immortal containers".

        >>> REGISTRY = ConcurrentDict.immortal(a=1)
        >>> REGISTRY
        {'a': 1}
        """
        return _new_immortal(cls, ConcurrentDict, args, kwargs)

    # ------------------------------------------------------------------
    # Atomic compound operations beyond dict

    def compare_and_set(self, key, expected, new):
        """Atomically: if d[key] is expected (identity, then ==), set it to
        new and return True; else return False.  expected=ABSENT means "key
        absent"; new=ABSENT deletes the key.  True means "the key was in the
        expected state and is now in the new one": compare_and_set(k, ABSENT,
        ABSENT) on an absent key is True and changes nothing (pop_if, which
        reports deletions, returns False there)."""
        cdef ncd_probe p
        cdef Py_hash_t h = _hash(key)
        cdef PyObject *old = NULL
        cdef PyObject *okey = NULL
        cdef uint64_t version
        cdef PyObject *cur
        cdef int eq
        # The stored value last found equal to expected while a write ran
        # during its __eq__ (a strong reference: its address names it), and
        # the values compared so far, released after the lock is left (a
        # decref may run __del__).  docs/design.md, "Restarts after a
        # concurrent write: the bounds".
        cdef PyObject *equal_value = NULL
        cdef list compared = None
        cdef object held
        # Restarts caused by a write during the value's __eq__: after
        # NCD_CAS_RESTARTS of them only identity is used, as the list's
        # compare_and_set does (an __eq__ that stores a new value under this
        # very key on every call would otherwise restart forever, and
        # `compared` would grow without bound).
        cdef int restarts = 0
        with cython.critical_section(self._wlock):
            while True:
                if self._find_locked(key, h, &p) == NCD_MISS:
                    if expected is not _ABSENT:
                        return False
                    if new is not _ABSENT and not self._insert_new(key, h, new, p.slot):
                        continue    # the table grew: look the key up again
                    return True
                if expected is _ABSENT:
                    return False
                cur = ncd_entry_at(self._h.table, p.ix).value
                if cur != <PyObject *>expected and cur != equal_value:
                    if restarts >= NCD_CAS_RESTARTS:
                        return False    # identity only (see `restarts`)
                    # Sampled before anything that can suspend the
                    # section (the list allocation may run the GC).
                    version = self._h.w.version
                    held = <object>cur   # a reference first: no allocation
                    if compared is None:
                        compared = []
                    compared.append(held)   # alive until we return
                    held = None
                    eq = self._value_eq(cur, expected)
                    if not eq:
                        # cur was key's value when read under the lock,
                        # before the call: the comparison failed then.
                        return False
                    if self._h.w.version != version:
                        # __eq__ let a write in: look the key up again;
                        # if it still holds this value, it is equal.
                        equal_value = cur   # kept alive by `compared`
                        restarts += 1
                        continue
                if new is _ABSENT:
                    self._delete_at(&p, &okey, &old)
                else:
                    old = self._replace_value(p.ix, new)
                break
        # `compared` is released when the function returns, after the
        # critical section is left (a decref may run __del__).
        Py_XDECREF(okey)
        Py_XDECREF(old)
        return True

    @cython.final
    cdef int _value_eq(self, PyObject *cur, object expected) except -1:
        """cur == expected for a value stored in the table (critical section
        held).  The reference taken here is dropped here too: if the value was
        replaced while __eq__ ran, that decref may be the last one."""
        cdef object v = <object>cur
        NCC_SUSPEND_POINT_CHECKED("dict.value_eq", &self._h.w.version)
        eq = PyObject_RichCompareBool(v, expected, Py_EQ)
        NCC_SUSPEND_POINT_CHECKED("dict.value_eq.decref", &self._h.w.version)
        v = None
        return eq

    def pop_if(self, key, expected):
        """Atomically delete key if its value is expected (identity, then
        ==).  Return True if it was deleted.  pop_if(key, ABSENT) deletes
        nothing and returns False."""
        if expected is _ABSENT:
            # "Delete key if it is absent" never deletes anything; validate the
            # key (hashable) as every other call does.
            _hash(key)
            return False
        return self.compare_and_set(key, expected, _ABSENT)

    def get_or_insert(self, key, factory):
        """Return d[key]; if absent, insert factory() and return it.

        factory runs at most once per key inserted this way: concurrent calls
        for an equal key wait for the one whose factory is running (per key:
        calls for other keys never wait, so factories may wait for each
        other's threads); if it raises, nothing is inserted and one waiter
        runs its own factory.  A value inserted by another writer meanwhile
        wins and is returned.  A factory that calls get_or_insert for the
        same key on the same dict raises RuntimeError (it would wait for
        itself)."""
        cdef PyObject *v
        cdef Py_hash_t h = _hash(key)
        cdef dict inflight
        cdef _Flight flight, other
        if self._lookup(key, h, &v):
            return ncd_steal(v)
        with cython.critical_section(self._wlock):
            if self._inflight is None:
                self._inflight = {}
            inflight = self._inflight
        me = _get_ident()
        fkey = _FlightKey(key, h)
        while True:
            flight = _Flight(me)
            # Atomic on dict (both builds): at most one flight per key.
            other = <_Flight>inflight.setdefault(fkey, flight)
            if other is not flight:
                if other.owner == me:
                    raise RuntimeError(
                        "get_or_insert(): the factory for this key called "
                        "get_or_insert() for the same key")
                other.wait()
                if self._lookup(key, h, &v):
                    return ncd_steal(v)
                if other.finished and inflight.get(fkey) is other:
                    # Its owner could not remove it (the key's __eq__ raised
                    # while the entry was looked up): remove it for them.
                    del inflight[fkey]
                continue    # its factory raised (or the key went away): our turn
            try:
                if self._lookup(key, h, &v):
                    return ncd_steal(v)
                value = factory()
                return self.setdefault(key, value)
            finally:
                # Waiters are released even if removing the entry raises
                # (fkey is the stored object, found by identity, but colliding
                # keys' __eq__ may run and raise on the way).
                try:
                    del inflight[fkey]
                finally:
                    flight.done()

    def update_item(self, key, fn, default=_MISSING):
        """Atomically replace d[key] with fn(d[key]) and return the new value.
        If key is absent, fn(default) is inserted (KeyError without default).
        fn runs outside the lock and may run more than once under contention
        (compare-and-set retry loop); only one result per update is stored.

        >>> d = ConcurrentDict()
        >>> d.update_item("hits", lambda v: v + 1, 0)
        1
        """
        while True:
            cur = self._get_or_absent(key)
            if cur is _ABSENT:
                if default is _MISSING:
                    raise KeyError(key)
                new = fn(default)
            else:
                new = fn(cur)
            if self.compare_and_set(key, cur, new):
                return new

    def handle(self):
        """A per-thread handle: this dict's whole API, reached without
        touching the dict's reference count (see ConcurrentDictHandle and
        docs/guarantees.md, "Handles").  Take one per worker thread."""
        return _Handle._new(self)

    # ------------------------------------------------------------------
    # Comparisons, operators, protocols

    def __eq__(self, other):
        if isinstance(other, ConcurrentDict):
            if other is self:
                return True
            return self.snapshot() == (<ConcurrentDict>other).snapshot()
        if isinstance(other, dict):
            return self.snapshot() == other
        if isinstance(other, _Mapping):
            return self.snapshot() == dict(other.items())
        return NotImplemented

    def __ne__(self, other):
        r = self.__eq__(other)
        if r is NotImplemented:
            return r
        return not r

    __hash__ = None

    def __or__(self, other):
        if not isinstance(other, (ConcurrentDict, dict, _Mapping)):
            return NotImplemented
        new = self.copy()
        new.update(other)
        return new

    def __ror__(self, other):
        if not isinstance(other, (dict, _Mapping)):
            return NotImplemented
        new = ConcurrentDict(other)
        new.update(self)
        return new

    def __ior__(self, other):
        self.update(other)
        return self

    def __repr__(self):
        if Py_ReprEnter(self):
            return "{...}"
        try:
            return "{" + ", ".join([f"{k!r}: {v!r}" for k, v in self._items_list()]) + "}"
        finally:
            Py_ReprLeave(self)

    def __reduce_ex__(self, protocol):
        # One consistent snapshot of the items (_items_list).  A subclass
        # copies and pickles exactly like a dict subclass (no __init__ call,
        # __dict__ and __slots__ state, items stored through its
        # __setitem__): nogil_collections/_reduce.py.
        if type(self) is ConcurrentDict:
            return (ConcurrentDict, (), None, None, iter(self._items_list()))
        return _reduce_subclass(self, protocol, ConcurrentDict, self._items_list(), True)

    def __sizeof__(self):
        cdef ncd_table *t
        cdef Py_ssize_t n
        with cython.critical_section(self._wlock):
            t = self._h.table
            n = t.nbytes
        return object.__sizeof__(self) + n

    # ------------------------------------------------------------------
    # Debug

    def _table_info(self):
        """Tests only: the current table's kind and geometry, read under
        the lock: pinned, entry_size (bytes), size (index slots), capacity,
        nentries (tombstones included), ndead_pinned, nbytes."""
        cdef ncd_table *t
        with cython.critical_section(self._wlock):
            t = self._h.table
            return {
                "pinned": bool(t.pinned),
                "entry_size": ncd_entry_size(t.pinned),
                "size": t.mask + 1,
                "capacity": t.capacity,
                "nentries": t.nentries,
                "ndead_pinned": t.ndead_pinned,
                "nbytes": t.nbytes,
            }

    def _check(self):
        """Raise AssertionError if an internal invariant is broken."""
        cdef ncd_table *t
        cdef Py_ssize_t ix, i, live = 0, dead_pinned = 0, last_live = -1, off
        cdef ncd_entry *ep
        cdef int idx
        off = <char *>&self._h - <char *><PyObject *>self
        assert off >= 128, f"hot fields at offset {off} near the header's cache line"
        assert off % 64 == 0, "reader words not at the start of a line"
        assert type(self).__basicsize__ % 64 == 0 or type(self) is not ConcurrentDict, \
            "ConcurrentDict's size is not a multiple of 64"
        # The writer words (version, used) are not in the dict at all: they
        # follow the writer lock's header, inside the first 64 bytes of the
        # _WriterLock object (on its mutex's line when the object is 64-byte
        # aligned, which tests/test_layout.py checks for real allocations).
        assert self._h.w == &self._wlock.w, "writer words not in the writer lock"
        off = <char *>self._h.w - <char *><PyObject *>self._wlock
        assert off + <Py_ssize_t>sizeof(ncd_wwords) <= 64, \
            f"writer words at offset {off}: off the lock's line"
        with cython.critical_section(self._wlock):
            assert self._h.w.version % 2 == 0, "odd version outside a write"
            assert self._h.tseq % 2 == 0, "odd tseq outside a write"
            t = self._h.table
            assert t.mask + 1 >= 8 and (t.mask + 1) & t.mask == 0, "size not a power of two"
            assert t.capacity == ((t.mask + 1) * 2) // 3, "capacity"
            assert 0 <= t.nentries <= t.capacity, "nentries out of range"
            seen = set()
            for i in range(t.mask + 1):
                idx = ncd_load_index_relaxed(t, i)
                assert idx >= NCD_DUMMY and idx < t.nentries, f"bad index {idx}"
                if idx >= 0:
                    assert idx not in seen, "two slots name one entry"
                    seen.add(idx)
                    assert ncd_entry_at(t, idx).value != NULL, "index names a tombstone"
            for ix in range(t.nentries):
                ep = ncd_entry_at(t, ix)
                if ep.value != NULL:
                    live += 1
                    last_live = ix
                    assert ep.key != NULL, "live entry without key"
                    assert ix in seen, "live entry not indexed"
                    if t.pinned:
                        assert ncd_key_pinnable(ep.key), "unpinnable key in a pinned table"
                        # The hash the table does not store is the key's own.
                        assert ncd_entry_hash(t, ix) == hash(<object>ep.key), "pinned hash"
                    elif ncd_key_pinnable(ep.key):   # never a user __hash__ here
                        assert ncd_entry_hash(t, ix) == hash(<object>ep.key), "stored hash"
                    assert ncd_slot_of(t, ncd_entry_hash(t, ix), ix) >= 0
                elif ep.key != NULL:
                    assert t.pinned, "generic tombstone holds a key"
                    dead_pinned += 1
            assert live == len(seen), "indexed entries != live entries"
            assert live == self._h.w.used, f"used {self._h.w.used} != live {live}"
            assert dead_pinned == t.ndead_pinned, "ndead_pinned"
            assert t.live_end > last_live and t.live_end <= t.nentries, "live_end"


# ----------------------------------------------------------------------
# Test hooks

def _set_mutant(int which):
    """Tests only: switch a deliberately broken writer on (1: a value
    replacement that exposes a transient NULL, which readers take for
    "deleted"), a widened window (2: an insert holds its write window open
    between publishing the key and counting it; correct code must hide it
    from len()) or neither (0).  Process-wide."""
    global ncd_mutant
    ncd_mutant = which


def _index_counts(ConcurrentDict d):
    """Tests only: (EMPTY, DUMMY, entry-number) index slots of d's table,
    counted under its lock."""
    cdef ncd_table *t
    cdef Py_ssize_t i, empty = 0, dummy = 0, named = 0
    cdef int ix
    with cython.critical_section(d._wlock):
        t = d._h.table
        for i in range(t.mask + 1):
            ix = ncd_load_index_relaxed(t, i)
            if ix == NCD_EMPTY:
                empty += 1
            elif ix == NCD_DUMMY:
                dummy += 1
            else:
                named += 1
    return (empty, dummy, named)


def _writer_lock_layout(ConcurrentDict d):
    """Tests only: (address of d's writer-lock object, offset of the writer
    words in it, their size)."""
    return (id(d._wlock), <char *>d._h.w - <char *><PyObject *>d._wlock,
            <Py_ssize_t>sizeof(ncd_wwords))


def _writer_lock_of(ConcurrentDict d):
    """Tests only: the object whose critical section is d's writer lock."""
    return d._wlock


def _reader_retries():
    """Tests only: how many lock-free lookups of the calling thread had to
    start again since it started."""
    return ncd_reader_retries


# ----------------------------------------------------------------------
# Views: live, like dict's (collections.abc semantics for set operations).

class _ConcurrentDictView:
    """What the three views share beyond collections.abc.MappingView (whose
    __len__ is already len(self._mapping)): dict's repr style and .mapping."""

    __slots__ = ()

    def __repr__(self):
        return f"{type(self).__name__}({list(self)!r})"

    @property
    def mapping(self):
        return _MappingProxyType(self._mapping)


class ConcurrentDictKeys(_ConcurrentDictView, _KeysView):
    """A live, set-like view of a ConcurrentDict's keys."""

    __slots__ = ()

    def __contains__(self, key):
        return key in self._mapping

    def __iter__(self):
        return iter(self._mapping)

    def __reversed__(self):
        return reversed(self._mapping)


class ConcurrentDictValues(_ConcurrentDictView, _ValuesView):
    """A live view of a ConcurrentDict's values."""

    __slots__ = ()

    def __contains__(self, value):
        # ValuesView's version looks every key up again (KeyError when one is
        # deleted meanwhile); this scans one consistent snapshot of the values.
        for v in (<ConcurrentDict?>self._mapping)._values_list():
            if v is value or v == value:
                return True
        return False

    def __iter__(self):
        return (<ConcurrentDict?>self._mapping)._iter_of(_ITER_VALUES, False)

    def __reversed__(self):
        return (<ConcurrentDict?>self._mapping)._iter_of(_ITER_VALUES, True)


class ConcurrentDictItems(_ConcurrentDictView, _ItemsView):
    """A live, set-like view of a ConcurrentDict's (key, value) pairs."""

    __slots__ = ()

    def __contains__(self, item):
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        key, value = item
        v = (<ConcurrentDict?>self._mapping)._get_or_absent(key)
        return v is not _ABSENT and (v is value or v == value)

    def __iter__(self):
        return (<ConcurrentDict?>self._mapping)._iter_of(_ITER_ITEMS, False)

    def __reversed__(self):
        return (<ConcurrentDict?>self._mapping)._iter_of(_ITER_ITEMS, True)


# ----------------------------------------------------------------------
# Garbage collection: the table's references are invisible to the
# Cython-generated tp_traverse/tp_clear, so wrap them.

cdef Py_ssize_t _hot_offset = 0
cdef traverseproc _base_traverse = NULL
cdef inquiry _base_clear = NULL


cdef inline int _visit_pair(PyObject *key, PyObject *value, visitproc visit,
                            void *arg) noexcept:
    # Py_VISIT of a key and a value, either of which may be NULL; the first
    # non-zero result stops the traversal.
    cdef int r = 0
    if key != NULL:
        r = visit(key, arg)
    if r == 0 and value != NULL:
        r = visit(value, arg)
    return r


cdef int _cd_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    # Runs with the world stopped (free-threaded) or under the GIL at a point
    # where no write window is open (write windows run no Python code and do
    # not allocate Python objects).  No reference counting here.
    cdef ncd_hot *h = <ncd_hot *>((<char *>o) + _hot_offset)
    cdef ncd_table *t = h.table
    cdef ncd_entry *ep
    cdef Py_ssize_t ix
    cdef int r
    if t != NULL:
        for ix in range(t.nentries):
            ep = ncd_entry_at(t, ix)
            if ep.value != NULL:
                r = _visit_pair(ep.key, ep.value, visit, arg)
                if r:
                    return r
    if _base_traverse != NULL:
        return _base_traverse(o, visit, arg)
    return 0


cdef int _cd_clear(PyObject *o) noexcept:
    cdef ConcurrentDict d = <ConcurrentDict>o
    cdef _WriterLock wl = d._wlock
    cdef int r = 0
    try:
        d._clear_impl()   # not a subclass's clear()
    except BaseException:
        pass
    if _base_clear != NULL:
        r = _base_clear(o)
    # The generated clear sets _wlock to None; put it back: the writer words
    # (_h.w) live inside it, and a dict cleared by the GC may still be used
    # by a finalizer of its cycle.  It holds no references (no cycle).
    d._wlock = wl
    return r


cdef void _install_gc_hooks() noexcept:
    global _hot_offset, _base_traverse, _base_clear
    cdef ConcurrentDict probe = ConcurrentDict.__new__(ConcurrentDict)
    cdef NcdTypeObject *tp = <NcdTypeObject *><PyObject *>ConcurrentDict
    _hot_offset = <char *>&probe._h - <char *><PyObject *>probe
    _base_traverse = tp.tp_traverse
    _base_clear = tp.tp_clear
    tp.tp_traverse = _cd_traverse
    tp.tp_clear = _cd_clear


_install_gc_hooks()


cdef Py_ssize_t _si_pos_offset = 0, _si_end_offset = 0, _si_result_offset = 0
cdef Py_ssize_t _si_buf_offset = 0
cdef traverseproc _si_base_traverse = NULL


cdef int _si_traverse(PyObject *o, visitproc visit, void *arg) noexcept:
    # A snapshot iterator's unclaimed elements, buf[pos:end), and its reused
    # result tuple.  As _cd_traverse: the world is stopped (free-threaded) or
    # the GIL is held, and no claim is half done (a claim and the clearing of
    # its slot run no Python code; slots already claimed belong to whoever
    # received them).  Raw field reads: no reference counting during a
    # collection.
    cdef char *base = <char *>o
    cdef ncd_item *buf = (<ncd_item **>(base + _si_buf_offset))[0]
    cdef Py_ssize_t j = (<Py_ssize_t *>(base + _si_pos_offset))[0]
    cdef Py_ssize_t hi = (<Py_ssize_t *>(base + _si_end_offset))[0]
    cdef PyObject *result = (<PyObject **>(base + _si_result_offset))[0]
    cdef int r
    if buf != NULL:
        # The moving word may have overshot its bound (ncd_iter_claim).
        j = max(j, 0)
        while j < hi:
            r = _visit_pair(buf[j].key, buf[j].value, visit, arg)
            if r:
                return r
            j += 1
    if result != NULL:
        r = visit(result, arg)
        if r:
            return r
    if _si_base_traverse != NULL:
        return _si_base_traverse(o, visit, arg)
    return 0


cdef int _si_clear(PyObject *o) noexcept:
    (<_SnapshotIter>o)._drop_rest()
    return 0


cdef void _install_snapshot_iter_gc_hooks() noexcept:
    global _si_pos_offset, _si_end_offset, _si_result_offset, _si_buf_offset
    global _si_base_traverse
    cdef _SnapshotIter probe = _SnapshotIter.__new__(_SnapshotIter)
    cdef NcdTypeObject *tp = <NcdTypeObject *><PyObject *>_SnapshotIter
    cdef char *base = <char *><PyObject *>probe
    _si_pos_offset = <char *>&probe.pos - base
    _si_end_offset = <char *>&probe.end - base
    _si_result_offset = <char *>&probe.result - base
    _si_buf_offset = <char *>&probe.buf - base
    _si_base_traverse = tp.tp_traverse
    tp.tp_traverse = _si_traverse
    tp.tp_clear = _si_clear


_install_snapshot_iter_gc_hooks()


# ----------------------------------------------------------------------
# get and pop as plain METH_FASTCALL methods.  Cython's wrapper of a def
# method takes a new reference to every argument on free-threaded builds
# (__Pyx_ArgRef_FASTCALL) and drops it on return: for a key that another
# thread owns that is two atomic operations per call, a tenth of dict.pop's
# whole time.  These wrappers pass the caller's references on, borrowed
# (the caller keeps them alive for the call, as for dict's own methods),
# and raise dict's own messages for a wrong argument count.  The def
# methods above stay for their docstrings and as the path of subclasses
# that call ConcurrentDict.get/pop through super().

cdef extern from *:
    """
    typedef PyObject *(*ncd_impl2)(PyObject *self, PyObject *key, PyObject *dflt);
    static ncd_impl2 ncd_get_impl, ncd_pop_impl;
    static PyObject *ncd_missing;   /* pop's "no default" marker (module-owned) */

    static PyObject *ncd_fast_get(PyObject *self, PyObject *const *args, Py_ssize_t n) {
        if (n == 1) return ncd_get_impl(self, args[0], Py_None);
        if (n == 2) return ncd_get_impl(self, args[0], args[1]);
        PyErr_Format(PyExc_TypeError, n < 1 ? "get expected at least 1 argument, got %zd"
                                            : "get expected at most 2 arguments, got %zd", n);
        return NULL;
    }
    static PyObject *ncd_fast_pop(PyObject *self, PyObject *const *args, Py_ssize_t n) {
        if (n == 1) return ncd_pop_impl(self, args[0], ncd_missing);
        if (n == 2) return ncd_pop_impl(self, args[0], args[1]);
        PyErr_Format(PyExc_TypeError, n < 1 ? "pop expected at least 1 argument, got %zd"
                                            : "pop expected at most 2 arguments, got %zd", n);
        return NULL;
    }

    static PyMethodDef ncd_fast_defs[] = {
        {"get", (PyCFunction)(void (*)(void))ncd_fast_get, METH_FASTCALL,
         "get($self, key, default=None, /)\\n--\\n\\n"
         "Return d[key] if key is present, else default.  Lock-free, O(1)."},
        {"pop", (PyCFunction)(void (*)(void))ncd_fast_pop, METH_FASTCALL,
         "pop($self, key, default=<unrepresentable>, /)\\n--\\n\\n"
         "Remove key and return its value; if key is absent, return default\\n"
         "if given, else raise KeyError.  Atomic."},
    };

    /* Replace get and pop in the type's dict by these METH_FASTCALL methods. */
    static int ncd_install_fast(PyTypeObject *tp, void *get_impl, void *pop_impl,
                                PyObject *missing) {
        ncd_get_impl = (ncd_impl2)get_impl;
        ncd_pop_impl = (ncd_impl2)pop_impl;
        ncd_missing = missing;
        for (int k = 0; k < 2; k++) {
            PyObject *descr = PyDescr_NewMethod(tp, &ncd_fast_defs[k]);
            if (descr == NULL) return -1;
            int r = PyDict_SetItemString(tp->tp_dict, ncd_fast_defs[k].ml_name, descr);
            Py_DECREF(descr);
            if (r < 0) return -1;
        }
        PyType_Modified(tp);
        return 0;
    }
    """
    int ncd_install_fast(PyObject *tp, void *get_impl, void *pop_impl,
                         PyObject *missing) except -1


cdef object _get_borrowed(object self, object key, object default):
    return (<ConcurrentDict>self)._get_impl(key, default)


cdef object _pop_borrowed(object self, object key, object default):
    return (<ConcurrentDict>self)._pop_impl(key, default)


ncd_install_fast(<PyObject *>ConcurrentDict, <void *>_get_borrowed, <void *>_pop_borrowed,
                 <PyObject *>_MISSING)


def _set_contended_writes(int n):
    """Tests only: make this thread's next n single-key writes (d[k] = v,
    del d[k], pop) take the contended path, which probes before the lock
    (its fault-injection points are dict.setitem.prelock and
    dict.delete.prelock).  Without it a thread takes that path only after
    finding a dict's writer lock held."""
    global ncd_contended
    ncd_contended = n
