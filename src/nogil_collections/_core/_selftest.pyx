# cython: freethreading_compatible = True
"""Private test module for the concurrency core (not a public API).

It exposes the primitives of atomics.h, refcount.h, seqlock.h and qsbr.h to
the tests (tests/test_core.py, tests/test_qsbr.py), microbenchmarks for the
read-region cost, and ``QSBRArray``: a minimal resizable array that follows the
containers' protocol exactly (per-object lock for writes, seqlock version,
read regions, try-incref, a fresh backing array published with a release store
and retired on every resize), so that the reclamation domain can be
stress-tested independently of ConcurrentList and ConcurrentDict.
"""

cimport cython
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memset

from nogil_collections._core.critical_section cimport ncc_cs_is_locked
from nogil_collections._core.atomics cimport (
    ncc_cas_ssize,
    ncc_cas_uint64,
    ncc_cas_ptr,
    ncc_exchange_uint64,
    ncc_exchange_ssize,
    ncc_exchange_ptr,
    ncc_fetch_add_ssize,
    ncc_fetch_add_uint64,
    ncc_fetch_add_uint64_relaxed,
    ncc_fetch_add_int,
    ncc_load_ptr_acquire,
    ncc_load_ssize_relaxed,
    ncc_store_ptr_release,
    ncc_store_ssize_relaxed,
)
from nogil_collections._core.qsbr cimport (
    ncc_qsbr_import,
    ncc_qsbr_in_region,
    ncc_qsbr_poll,
    ncc_qsbr_thread,
    ncc_read_begin,
    ncc_read_end,
    ncc_retire,
)
from nogil_collections._core.refcount cimport (
    NCC_FREE_THREADED,
    ncc_publish,
    ncc_slot_store,
    ncc_try_getref,
    ncc_try_getref_deferred,
    ncc_try_incref,
    ncc_try_load_ref,
)
from nogil_collections._core.seqlock cimport (
    ncc_seq_is_writing,
    ncc_seq_read_begin,
    ncc_seq_read_validate,
    ncc_seq_write_begin,
    ncc_seq_write_end,
)

cdef extern from *:
    """
    #include <time.h>
    #include <stddef.h>
    #include "qsbr.h"
    #include "seqlock.h"

    /* ---------- atomics round trips ---------- */
    /* Store v with each ordering and load it back with each ordering; returns
     * the number of mismatches (0 expected). */
    #define NCC_ST_ROUNDTRIP(SUFFIX, T)                                        \\
        static int ncc_st_roundtrip_##SUFFIX(T v) {                           \\
            T cell = (T)0; int bad = 0;                                       \\
            ncc_store_##SUFFIX##_relaxed(&cell, v);                           \\
            bad += ncc_load_##SUFFIX##_relaxed(&cell) != v;                   \\
            ncc_store_##SUFFIX##_release(&cell, (T)0);                        \\
            bad += ncc_load_##SUFFIX##_acquire(&cell) != (T)0;                \\
            ncc_store_##SUFFIX(&cell, v);                                     \\
            bad += ncc_load_##SUFFIX(&cell) != v;                             \\
            bad += ncc_load_##SUFFIX##_acquire(&cell) != v;                   \\
            return bad;                                                       \\
        }
    NCC_ST_ROUNDTRIP(ptr, void *)
    NCC_ST_ROUNDTRIP(ssize, Py_ssize_t)
    NCC_ST_ROUNDTRIP(uint64, uint64_t)
    NCC_ST_ROUNDTRIP(uint32, uint32_t)
    NCC_ST_ROUNDTRIP(int, int)

    /* ---------- shared counters for the atomicity hammer ---------- */
    static struct {
        uint64_t counter __attribute__((aligned(NCC_CACHE_LINE)));
        /* seqlock-protected pair: a writer keeps a == b */
        uint64_t version __attribute__((aligned(NCC_CACHE_LINE)));
        uint64_t a;
        uint64_t b;
        /* region holder handshake */
        int holding __attribute__((aligned(NCC_CACHE_LINE)));
        int release;
    } ncc_st_g;

    static inline double ncc_st_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
    }

    static void ncc_st_counter_add_loop(Py_ssize_t n, int use_cas) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (use_cas) {
                uint64_t cur = ncc_load_uint64_relaxed(&ncc_st_g.counter);
                /* On failure cur is reloaded by the CAS. */
                while (!ncc_cas_uint64(&ncc_st_g.counter, &cur, cur + 1)) { }
            } else {
                ncc_fetch_add_uint64(&ncc_st_g.counter, 1);
            }
        }
    }

    /* Single seqlock writer: keeps a == b at every even version. */
    static void ncc_st_seq_writer(Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) {
            ncc_seq_write_begin(&ncc_st_g.version);
            /* Relaxed data stores: ordered by the seqlock's fences. */
            uint64_t x = ncc_load_uint64_relaxed(&ncc_st_g.a) + 1;
            ncc_store_uint64_relaxed(&ncc_st_g.a, x);
            ncc_store_uint64_relaxed(&ncc_st_g.b, x);
            ncc_seq_write_end(&ncc_st_g.version);
        }
    }

    /* Returns the number of validated reads that saw a != b (0 expected);
     * *ok counts validated reads, *retries the rest. */
    static Py_ssize_t ncc_st_seq_reader(Py_ssize_t n, Py_ssize_t *ok, Py_ssize_t *retries) {
        Py_ssize_t torn = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t v = ncc_seq_read_begin(&ncc_st_g.version);
            if (ncc_seq_is_writing(v)) { (*retries)++; continue; }
            uint64_t a = ncc_load_uint64_relaxed(&ncc_st_g.a);
            uint64_t b = ncc_load_uint64_relaxed(&ncc_st_g.b);
            if (!ncc_seq_read_validate(&ncc_st_g.version, v)) { (*retries)++; continue; }
            (*ok)++;
            torn += (a != b);
        }
        return torn;
    }

    /* ---------- fake object headers: the try-incref state machine ---------- */
    /* Runs ncc_try_incref on a zeroed, never-shared PyObject header with the
     * given refcount fields and reports the fields afterwards.  Free-threaded
     * builds only (the GIL build has a single ob_refcnt). */
    static int ncc_st_fake_try_incref(uint32_t local, Py_ssize_t shared, int owned,
                                      uint32_t *local_out, Py_ssize_t *shared_out) {
    #if NCC_FREE_THREADED
        PyObject fake;
        memset(&fake, 0, sizeof(fake));
        fake.ob_ref_local = local;
        fake.ob_ref_shared = shared;
        fake.ob_tid = owned ? _Py_ThreadId() : (uintptr_t)0;
        fake.ob_type = &PyBaseObject_Type;
        int r = ncc_try_incref(&fake);
        *local_out = fake.ob_ref_local;
        *shared_out = fake.ob_ref_shared;
        return r;
    #else
        (void)local; (void)shared; (void)owned; (void)local_out; (void)shared_out;
        return -1;
    #endif
    }

    static int ncc_st_fake_publish(uint32_t local, Py_ssize_t shared, Py_ssize_t *shared_out) {
    #if NCC_FREE_THREADED
        PyObject fake;
        memset(&fake, 0, sizeof(fake));
        fake.ob_ref_local = local;
        fake.ob_ref_shared = shared;
        fake.ob_type = &PyBaseObject_Type;
        ncc_publish(&fake);
        *shared_out = fake.ob_ref_shared;
        return 0;
    #else
        (void)local; (void)shared; (void)shared_out;
        return -1;
    #endif
    }

    /* Refcount fields of a real object (free-threaded only). */
    static int ncc_st_ref_fields(PyObject *op, int *owned, uint32_t *local, Py_ssize_t *shared) {
    #if NCC_FREE_THREADED
        *owned = ncc_load_ptr_relaxed((void **)&op->ob_tid) == (void *)_Py_ThreadId();
        *local = ncc_load_uint32_relaxed(&op->ob_ref_local);
        *shared = ncc_load_ssize_relaxed(&op->ob_ref_shared);
        return 0;
    #else
        (void)op; (void)owned; (void)local; (void)shared;
        return -1;
    #endif
    }

    #if NCC_FREE_THREADED
    #  define NCC_ST_REF_MAYBE_WEAKREF _Py_REF_MAYBE_WEAKREF
    #  define NCC_ST_REF_QUEUED _Py_REF_QUEUED
    #  define NCC_ST_REF_MERGED _Py_REF_MERGED
    #  define NCC_ST_REF_SHARED_SHIFT _Py_REF_SHARED_SHIFT
    #  define NCC_ST_IMMORTAL_LOCAL _Py_IMMORTAL_REFCNT_LOCAL
    #else
    #  define NCC_ST_REF_MAYBE_WEAKREF 0
    #  define NCC_ST_REF_QUEUED 0
    #  define NCC_ST_REF_MERGED 0
    #  define NCC_ST_REF_SHARED_SHIFT 0
    #  define NCC_ST_IMMORTAL_LOCAL 0
    #endif

    /* ---------- the QSBRArray backing store ---------- */
    #define NCC_ST_MAGIC 0x5153425241525259ULL   /* "QSBRARRY" */
    typedef struct {
        uint64_t magic;          /* NCC_ST_MAGIC while live; poisoned on free */
        Py_ssize_t capacity;     /* immutable after publication */
        PyObject *items[];
    } ncc_st_array;

    static size_t ncc_st_array_bytes(Py_ssize_t cap) {
        return sizeof(ncc_st_array) + (size_t)cap * sizeof(PyObject *);
    }

    static ncc_st_array *ncc_st_array_new(Py_ssize_t cap) {
        ncc_st_array *a = (ncc_st_array *)PyMem_RawMalloc(ncc_st_array_bytes(cap));
        if (a == NULL) return NULL;
        a->magic = NCC_ST_MAGIC;
        a->capacity = cap;
        memset(a->items, 0, (size_t)cap * sizeof(PyObject *));
        return a;
    }

    enum { NCC_ST_OK = 0, NCC_ST_RETRY = 1, NCC_ST_OOR = 2, NCC_ST_CORRUPT = 3 };

    /* One optimistic read of item i (the protocol of docs/design.md, rule 3).
     * On NCC_ST_OK, *out is a new reference. */
    static int ncc_st_try_read(uint64_t *version, Py_ssize_t *size, ncc_st_array **arrp,
                               Py_ssize_t i, PyObject **out, int dwell) {
        uint64_t v = ncc_seq_read_begin(version);
        if (ncc_seq_is_writing(v)) return NCC_ST_RETRY;
        PyObject *drop = NULL, *item = NULL;
        int rc;
        ncc_qsbr_thread *rec = ncc_read_begin();
        /* Acquire; pairs with the release store of the array pointer in
         * QSBRArray._resize: the array's header and slots are initialised. */
        ncc_st_array *a = (ncc_st_array *)ncc_load_ptr_acquire((void **)arrp);
        /* Relaxed; the seqlock validates it.  The index is checked against
         * the capacity of the array actually loaded, too. */
        Py_ssize_t n = ncc_load_ssize_relaxed(size);
        /* Test knob: stay inside the region between loading the array and
         * reading it, widening the window in which a broken reclaimer would
         * free (and poison) it under us. */
        for (int d = 0; d < dwell; d++) ncc_cpu_relax();
        if (ncc_load_uint64_relaxed(&a->magic) != NCC_ST_MAGIC) {
            rc = NCC_ST_CORRUPT;     /* touched a reclaimed array: a QSBR bug */
        } else if (i < 0 || i >= n || i >= ncc_load_ssize_relaxed(&a->capacity)) {
            rc = NCC_ST_OOR;
        } else {
            /* Acquire; pairs with ncc_slot_store (release) in the writers. */
            PyObject *o = ncc_load_obj_acquire(&a->items[i]);
            item = ncc_try_getref_deferred(&a->items[i], o, &drop);
            rc = item != NULL ? NCC_ST_OK : NCC_ST_RETRY;
        }
        ncc_read_end(rec);
        Py_XDECREF(drop);        /* outside the region: may run a destructor */
        if (rc == NCC_ST_CORRUPT) {
            Py_XDECREF(item);
            return rc;
        }
        if (!ncc_seq_read_validate(version, v)) {
            Py_XDECREF(item);
            return NCC_ST_RETRY;
        }
        *out = item;
        return rc;
    }

    /* ---------- microbenchmarks ---------- */
    static double ncc_st_bench_region(Py_ssize_t n) {
        double t0 = ncc_st_now_ns();
        for (Py_ssize_t i = 0; i < n; i++) {
            ncc_qsbr_thread *r = ncc_read_begin();
            ncc_compiler_barrier();
            ncc_read_end(r);
        }
        return (ncc_st_now_ns() - t0) / (double)(n > 0 ? n : 1);
    }
    static double ncc_st_bench_empty(Py_ssize_t n) {
        double t0 = ncc_st_now_ns();
        for (Py_ssize_t i = 0; i < n; i++) {
            ncc_compiler_barrier();
        }
        return (ncc_st_now_ns() - t0) / (double)(n > 0 ? n : 1);
    }
    static double ncc_st_bench_fence(Py_ssize_t n) {
        double t0 = ncc_st_now_ns();
        for (Py_ssize_t i = 0; i < n; i++) {
            ncc_fence_seq_cst();
        }
        return (ncc_st_now_ns() - t0) / (double)(n > 0 ? n : 1);
    }

    /* Enter a region and stay in it until released or max_ns elapsed.
     * Returns 1 if released.  Test hook only: a region normally lasts
     * nanoseconds. */
    static int ncc_st_hold_region(double max_ns) {
        int released = 0;
        ncc_qsbr_thread *r = ncc_read_begin();
        /* Release; pairs with the acquire load in ncc_st_region_held. */
        ncc_store_int_release(&ncc_st_g.holding, 1);
        double t0 = ncc_st_now_ns();
        while (ncc_st_now_ns() - t0 < max_ns) {
            /* Acquire; pairs with the release store in ncc_st_release_region. */
            if (ncc_load_int_acquire(&ncc_st_g.release)) { released = 1; break; }
            ncc_cpu_relax();
        }
        ncc_read_end(r);
        ncc_store_int_release(&ncc_st_g.holding, 0);
        ncc_store_int_release(&ncc_st_g.release, 0);
        return released;
    }
    static int ncc_st_region_held(void) { return ncc_load_int_acquire(&ncc_st_g.holding); }
    static void ncc_st_release_region(void) { ncc_store_int_release(&ncc_st_g.release, 1); }
    static void ncc_st_reset_hold(void) {
        ncc_store_int_release(&ncc_st_g.release, 0);
        ncc_store_int_release(&ncc_st_g.holding, 0);
    }

    static size_t ncc_st_sizeof_pyobject(void) { return sizeof(PyObject); }

    /* Hold the critical section of `op` (its header's ob_mutex) and stay in
     * it, spinning without ever detaching (so the section is never
     * suspended), until released or max_ns elapsed.  Returns 1 if released.
     * Tests only: it shows which mutex a container's writers take. */
    static struct {
        int holding __attribute__((aligned(NCC_CACHE_LINE)));
        int release;
    } ncc_st_cs;
    static int ncc_st_hold_section(PyObject *op, double max_ns) {
        int released = 0;
        /* A release meant for an earlier holder (a test that released in its
         * body and again in its teardown, after that holder had reset it)
         * must not end this one at once. */
        ncc_store_int_release(&ncc_st_cs.release, 0);
    #if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
        PyCriticalSection cs;
        PyCriticalSection_Begin(&cs, op);
    #else
        (void)op;
    #endif
        /* Release; pairs with the acquire load in ncc_st_section_held. */
        ncc_store_int_release(&ncc_st_cs.holding, 1);
        double t0 = ncc_st_now_ns();
        while (ncc_st_now_ns() - t0 < max_ns) {
            /* Acquire; pairs with the release store in ncc_st_release_section. */
            if (ncc_load_int_acquire(&ncc_st_cs.release)) { released = 1; break; }
            ncc_cpu_relax();
        }
        /* Cleared before the section ends: a thread that saw `holding`
         * set after its own operation finished ran it while we held. */
        ncc_store_int_release(&ncc_st_cs.holding, 0);
    #if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
        PyCriticalSection_End(&cs);
    #endif
        ncc_store_int_release(&ncc_st_cs.release, 0);
        return released;
    }
    static int ncc_st_section_held(void) { return ncc_load_int_acquire(&ncc_st_cs.holding); }
    static void ncc_st_release_section(void) { ncc_store_int_release(&ncc_st_cs.release, 1); }

    /* ---------- assumption checks (docs/design.md, "CPython internals") ---------- */
    /* Offsets of the free-threaded object header's fields (-1 each on GIL
     * builds). */
    static void ncc_st_header_offsets(Py_ssize_t out[6]) {
    #if NCC_FREE_THREADED
        out[0] = (Py_ssize_t)offsetof(PyObject, ob_tid);
        out[1] = (Py_ssize_t)offsetof(PyObject, ob_mutex);
        out[2] = (Py_ssize_t)offsetof(PyObject, ob_ref_local);
        out[3] = (Py_ssize_t)offsetof(PyObject, ob_ref_shared);
        out[4] = (Py_ssize_t)offsetof(PyObject, ob_type);
        out[5] = (Py_ssize_t)sizeof(PyObject);
    #else
        for (int i = 0; i < 6; i++) out[i] = -1;
    #endif
    }

    /* A minimal static type whose tp_dealloc records the object's header as
     * CPython hands it over: shows what _Py_MergeZeroLocalRefcount did to
     * ob_tid / ob_ref_shared before deallocation. */
    typedef struct {
        int seen;
        int tid_ours;          /* ob_tid still names the dealloc'ing thread */
        int tid_zero;          /* ob_tid == 0 (_Py_UNOWNED_TID) */
        uint32_t local;
        Py_ssize_t shared;
    } ncc_st_probe_info;
    static ncc_st_probe_info ncc_st_probe_last;
    static void ncc_st_probe_dealloc(PyObject *op) {
    #if NCC_FREE_THREADED
        uintptr_t tid = (uintptr_t)ncc_load_ptr_relaxed((void **)&op->ob_tid);
        ncc_st_probe_last.tid_ours = tid == _Py_ThreadId();
        ncc_st_probe_last.tid_zero = tid == 0;
        ncc_st_probe_last.local = ncc_load_uint32_relaxed(&op->ob_ref_local);
        ncc_st_probe_last.shared = ncc_load_ssize_relaxed(&op->ob_ref_shared);
    #endif
        ncc_st_probe_last.seen = 1;
        PyObject_Free(op);
    }
    static PyTypeObject ncc_st_probe_type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "nogil_collections._core._selftest.DeallocProbe",
        .tp_basicsize = sizeof(PyObject),
        .tp_dealloc = ncc_st_probe_dealloc,
        .tp_flags = Py_TPFLAGS_DEFAULT,
    };
    static PyObject *ncc_st_probe_new(void) {
        if (ncc_st_probe_type.tp_flags & Py_TPFLAGS_READY) {
            /* ready */
        } else if (PyType_Ready(&ncc_st_probe_type) < 0) {
            return NULL;
        }
        memset(&ncc_st_probe_last, 0, sizeof(ncc_st_probe_last));
        return PyObject_New(PyObject, &ncc_st_probe_type);
    }
    """
    int ncc_st_roundtrip_ptr(void *v)
    int ncc_st_roundtrip_ssize(Py_ssize_t v)
    int ncc_st_roundtrip_uint64(uint64_t v)
    int ncc_st_roundtrip_uint32(uint32_t v)
    int ncc_st_roundtrip_int(int v)

    ctypedef struct ncc_st_globals:
        uint64_t counter
        uint64_t version
        uint64_t a
        uint64_t b
    ncc_st_globals ncc_st_g

    void ncc_st_counter_add_loop(Py_ssize_t n, int use_cas) nogil
    void ncc_st_seq_writer(Py_ssize_t n) nogil
    Py_ssize_t ncc_st_seq_reader(Py_ssize_t n, Py_ssize_t *ok, Py_ssize_t *retries) nogil
    int ncc_st_fake_try_incref(uint32_t local, Py_ssize_t shared, int owned,
                               uint32_t *local_out, Py_ssize_t *shared_out)
    int ncc_st_fake_publish(uint32_t local, Py_ssize_t shared, Py_ssize_t *shared_out)
    int ncc_st_ref_fields(PyObject *op, int *owned, uint32_t *local, Py_ssize_t *shared)
    Py_ssize_t NCC_ST_REF_MAYBE_WEAKREF
    Py_ssize_t NCC_ST_REF_QUEUED
    Py_ssize_t NCC_ST_REF_MERGED
    int NCC_ST_REF_SHARED_SHIFT
    uint32_t NCC_ST_IMMORTAL_LOCAL

    uint64_t NCC_ST_MAGIC
    ctypedef struct ncc_st_array:
        uint64_t magic
        Py_ssize_t capacity
        PyObject **items
    size_t ncc_st_array_bytes(Py_ssize_t cap)
    ncc_st_array *ncc_st_array_new(Py_ssize_t cap)
    int NCC_ST_OK, NCC_ST_RETRY, NCC_ST_OOR, NCC_ST_CORRUPT
    int ncc_st_try_read(uint64_t *version, Py_ssize_t *size, ncc_st_array **arrp,
                        Py_ssize_t i, PyObject **out, int dwell)

    double ncc_st_now_ns()
    double ncc_st_bench_region(Py_ssize_t n)
    double ncc_st_bench_empty(Py_ssize_t n)
    double ncc_st_bench_fence(Py_ssize_t n)
    int ncc_st_hold_region(double max_ns)
    int ncc_st_region_held()
    void ncc_st_release_region()
    void ncc_st_reset_hold()
    size_t ncc_st_sizeof_pyobject()
    int ncc_st_hold_section(PyObject *op, double max_ns)
    int ncc_st_section_held()
    void ncc_st_release_section()
    void ncc_st_header_offsets(Py_ssize_t *out)
    ctypedef struct ncc_st_probe_info:
        int seen
        int tid_ours
        int tid_zero
        uint32_t local
        Py_ssize_t shared
    ncc_st_probe_info ncc_st_probe_last
    object ncc_st_probe_new()

ncc_qsbr_import()

#: True on a free-threaded build (the C view, NCC_FREE_THREADED).
FREE_THREADED = bool(NCC_FREE_THREADED)
REF_MAYBE_WEAKREF = NCC_ST_REF_MAYBE_WEAKREF
REF_QUEUED = NCC_ST_REF_QUEUED
REF_MERGED = NCC_ST_REF_MERGED
REF_SHARED_SHIFT = NCC_ST_REF_SHARED_SHIFT
IMMORTAL_LOCAL = NCC_ST_IMMORTAL_LOCAL
SIZEOF_PYOBJECT = ncc_st_sizeof_pyobject()
CACHE_LINE = 64


# ---------------------------------------------------------------- atomics

def atomics_roundtrip(str kind, value):
    """Store/load ``value`` through every ordering of ncc_<kind>; returns the
    number of mismatches (0 expected)."""
    if kind == "ptr":
        return ncc_st_roundtrip_ptr(<void *><uintptr_t>value)
    if kind == "ssize":
        return ncc_st_roundtrip_ssize(value)
    if kind == "uint64":
        return ncc_st_roundtrip_uint64(value)
    if kind == "uint32":
        return ncc_st_roundtrip_uint32(value)
    if kind == "int":
        return ncc_st_roundtrip_int(value)
    raise ValueError(kind)


def cas_ssize(Py_ssize_t cell, Py_ssize_t expected, Py_ssize_t desired):
    """ncc_cas_ssize on a local cell: returns (succeeded, cell, expected)."""
    ok = ncc_cas_ssize(&cell, &expected, desired)
    return bool(ok), cell, expected


def cas_uint64(uint64_t cell, uint64_t expected, uint64_t desired):
    ok = ncc_cas_uint64(&cell, &expected, desired)
    return bool(ok), cell, expected


def cas_ptr(uintptr_t cell, uintptr_t expected, uintptr_t desired):
    cdef void *c = <void *>cell
    cdef void *e = <void *>expected
    ok = ncc_cas_ptr(&c, &e, <void *>desired)
    return bool(ok), <uintptr_t>c, <uintptr_t>e


def fetch_add_ssize(Py_ssize_t cell, Py_ssize_t delta):
    """Returns (value returned by fetch-add, cell afterwards)."""
    old = ncc_fetch_add_ssize(&cell, delta)
    return old, cell


def fetch_add_uint64(uint64_t cell, uint64_t delta):
    old = ncc_fetch_add_uint64(&cell, delta)
    return old, cell


def exchange_uint64(uint64_t cell, uint64_t value):
    old = ncc_exchange_uint64(&cell, value)
    return old, cell


def exchange_ssize(Py_ssize_t cell, Py_ssize_t value):
    old = ncc_exchange_ssize(&cell, value)
    return old, cell


def counter_reset():
    ncc_st_g.counter = 0


def counter_value():
    return ncc_st_g.counter


def counter_add_loop(Py_ssize_t n, bint use_cas=False):
    """Add 1 to a shared counter n times (fetch-add or a CAS loop), with the
    thread attached and in parallel with other callers on 3.13t."""
    ncc_st_counter_add_loop(n, use_cas)


def seq_reset():
    ncc_st_g.version = 0
    ncc_st_g.a = 0
    ncc_st_g.b = 0


def seq_writer(Py_ssize_t n):
    """n seqlock write sections, each storing a+1 into both a and b.  Single
    writer only (the seqlock does not exclude writers)."""
    ncc_st_seq_writer(n)
    return ncc_st_g.version


def seq_reader(Py_ssize_t n):
    """n seqlock reads of (a, b); returns (validated, torn, retries) where torn
    counts validated reads with a != b (must be 0)."""
    cdef Py_ssize_t ok = 0, retries = 0
    torn = ncc_st_seq_reader(n, &ok, &retries)
    return ok, torn, retries


# ---------------------------------------------------------------- refcount

def fake_try_incref(uint32_t local, Py_ssize_t shared, bint owned=False):
    """try-incref on a fake header: returns (succeeded, local, shared) after
    the call.  Free-threaded builds only."""
    cdef uint32_t lo = 0
    cdef Py_ssize_t sh = 0
    r = ncc_st_fake_try_incref(local, shared, owned, &lo, &sh)
    if r < 0:
        raise NotImplementedError("free-threaded builds only")
    return bool(r), lo, sh


def fake_publish(uint32_t local, Py_ssize_t shared):
    """publish() on a fake header; returns ob_ref_shared afterwards."""
    cdef Py_ssize_t sh = 0
    if ncc_st_fake_publish(local, shared, &sh) < 0:
        raise NotImplementedError("free-threaded builds only")
    return sh


def ref_fields(obj):
    """(owned by this thread, ob_ref_local, ob_ref_shared) on a free-threaded
    build; None on a GIL build."""
    cdef int owned = 0
    cdef uint32_t local = 0
    cdef Py_ssize_t shared = 0
    if ncc_st_ref_fields(<PyObject *>obj, &owned, &local, &shared) < 0:
        return None
    return bool(owned), local, shared


def publish(obj):
    """Run ncc_publish(obj) (the writer's duty before a shared store)."""
    ncc_publish(<PyObject *>obj)


def try_incref(obj):
    """ncc_try_incref(obj); on success the extra reference is given back at
    once.  Returns whether it succeeded."""
    if ncc_try_incref(<PyObject *>obj):
        Py_DECREF(obj)
        return True
    return False


@cython.final
cdef class Slot:
    """One reader-visible slot, written with ncc_publish + ncc_slot_store."""
    cdef PyObject *slot

    def __cinit__(self, obj=None):
        self.slot = NULL
        if obj is not None:
            self.set(obj)

    def set(self, obj):
        """Publish obj and store it (release); drops the previous object."""
        cdef PyObject *old
        with cython.critical_section(self):
            old = self.slot
            if obj is None:
                ncc_slot_store(&self.slot, NULL)
            else:
                Py_INCREF(obj)
                ncc_publish(<PyObject *>obj)
                ncc_slot_store(&self.slot, <PyObject *>obj)
        Py_XDECREF(old)

    def try_getref(self, expected):
        """ncc_try_getref(&slot, expected): the object, or None on failure."""
        cdef PyObject *r = ncc_try_getref(&self.slot, <PyObject *>expected)
        if r == NULL:
            return None
        obj = <object>r
        Py_DECREF(obj)      # <object> cast took its own reference
        return obj

    def try_getref_deferred(self, expected):
        """ncc_try_getref_deferred: (object or None, reference to drop or None)."""
        cdef PyObject *drop = NULL
        cdef PyObject *r
        cdef ncc_qsbr_thread *rec = ncc_read_begin()
        r = ncc_try_getref_deferred(&self.slot, <PyObject *>expected, &drop)
        ncc_read_end(rec)
        got = None
        dropped = None
        if r != NULL:
            got = <object>r
            Py_DECREF(got)
        if drop != NULL:
            dropped = <object>drop
            Py_DECREF(dropped)
        return got, dropped

    def try_load(self):
        """ncc_try_load_ref(&slot): the object, or None."""
        cdef PyObject *r = ncc_try_load_ref(&self.slot)
        if r == NULL:
            return None
        obj = <object>r
        Py_DECREF(obj)
        return obj

    def __dealloc__(self):
        Py_XDECREF(self.slot)
        self.slot = NULL


# ---------------------------------------------------------------- regions

def in_region():
    return bool(ncc_qsbr_in_region())


def region_roundtrip(int depth=1):
    """Enter `depth` nested regions; returns in_region() observed at the
    innermost level and after leaving."""
    cdef ncc_qsbr_thread *recs[16]
    cdef int i
    if not 1 <= depth <= 16:
        raise ValueError("depth must be in 1..16")
    for i in range(depth):
        recs[i] = ncc_read_begin()
    inner = bool(ncc_qsbr_in_region())
    for i in range(depth - 1, -1, -1):
        ncc_read_end(recs[i])
    return inner, bool(ncc_qsbr_in_region())


def retire_raw(Py_ssize_t nbytes):
    """Allocate an unpublished block of nbytes and retire it at once."""
    cdef void *p = PyMem_RawMalloc(<size_t>nbytes if nbytes > 0 else 1)
    if p == NULL:
        raise MemoryError()
    ncc_retire(p, <size_t>nbytes)


def poll():
    ncc_qsbr_poll()


def hold_region(double max_seconds):
    """Enter a read region and stay in it (spinning, attached) until
    release_region() is called from another thread or max_seconds pass.
    Returns True if released.  Free-threaded builds only: under a GIL the
    releasing thread could never run."""
    if not NCC_FREE_THREADED:
        raise RuntimeError("hold_region needs a free-threaded build")
    return bool(ncc_st_hold_region(max_seconds * 1e9))


def region_held():
    return bool(ncc_st_region_held())


def release_region():
    ncc_st_release_region()


def reset_hold():
    ncc_st_reset_hold()


def hold_section(obj, double max_seconds):
    """Enter the critical section of obj (the mutex in its header) and stay
    in it, spinning and attached so that it is never suspended, until
    release_section() is called from another thread or max_seconds pass.
    Returns True if released.  Free-threaded builds only (elsewhere a
    critical section is nothing).  While it spins, the holder does not reach
    a safe point: keep the cyclic GC off in the other threads meanwhile."""
    if not NCC_FREE_THREADED:
        raise RuntimeError("hold_section needs a free-threaded build")
    return bool(ncc_st_hold_section(<PyObject *>obj, max_seconds * 1e9))


def section_held():
    return bool(ncc_st_section_held())


def release_section():
    ncc_st_release_section()


# ------------------------------------------------- CPython assumption checks

def header_offsets():
    """Free-threaded builds: offsetof(PyObject, ...) for ob_tid, ob_mutex,
    ob_ref_local, ob_ref_shared, ob_type, and sizeof(PyObject), as the
    headers this module was compiled against define them; None on GIL
    builds."""
    cdef Py_ssize_t out[6]
    ncc_st_header_offsets(out)
    if out[0] < 0:
        return None
    return tuple(out[i] for i in range(6))


def mutex_is_locked(obj):
    """ncc_cs_is_locked(obj): is the mutex a critical section on obj takes
    held right now (critical_section.h)?"""
    return bool(ncc_cs_is_locked(<PyObject *>obj))


def dealloc_probe():
    """A new DeallocProbe (a bare static type): when it is deallocated, its
    tp_dealloc records the header it was given (see last_dealloc())."""
    return ncc_st_probe_new()


def last_dealloc():
    """None if no probe was deallocated since the last dealloc_probe(), else
    (ob_tid is this thread's id, ob_tid == 0, ob_ref_local, ob_ref_shared)
    as tp_dealloc saw them (free-threaded builds; zeros on GIL builds)."""
    if not ncc_st_probe_last.seen:
        return None
    return (bool(ncc_st_probe_last.tid_ours), bool(ncc_st_probe_last.tid_zero),
            ncc_st_probe_last.local, ncc_st_probe_last.shared)


# ---------------------------------------------------------------- benchmarks

def bench_read_region(Py_ssize_t n):
    """ns per ncc_read_begin() + ncc_read_end() (an empty read region)."""
    ncc_read_end(ncc_read_begin())      # register outside the timed loop
    return ncc_st_bench_region(n)


def bench_empty_loop(Py_ssize_t n):
    """ns per iteration of the same loop without the region (baseline)."""
    return ncc_st_bench_empty(n)


def bench_fence(Py_ssize_t n):
    """ns per seq_cst fence (what the fallback protocol adds per region)."""
    return ncc_st_bench_fence(n)


def now_ns():
    return ncc_st_now_ns()


# ---------------------------------------------------------------- QSBRArray

@cython.final
cdef class QSBRArray:
    """A fixed-pattern resizable array that follows the containers' protocol.

    Slot ``i`` always holds ``pool[i % len(pool)]``, so a reader can verify
    every item it reads by identity, without running Python code.  Every
    resize allocates a new backing array, publishes it with a release store
    and retires the old one through the QSBR domain.
    """
    # ---- cold fields: written rarely, read by writers ----
    cdef tuple _pool
    cdef Py_ssize_t _npool
    # Keep the fields readers load off the object header's cache line (on
    # 3.13t every access writes the header's refcount): docs/design.md,
    # "memory layout rule".
    cdef char _pad[128]
    # ---- hot fields: loaded by lock-free readers ----
    cdef uint64_t _version        # seqlock (seqlock.h)
    cdef Py_ssize_t _size         # relaxed; validated by the seqlock
    cdef ncc_st_array *_arr       # release store / acquire load

    def __cinit__(self, tuple pool not None, Py_ssize_t size=0):
        if len(pool) == 0:
            raise ValueError("pool must not be empty")
        if size < 0:
            raise ValueError("size must be >= 0")
        self._pool = pool
        self._npool = len(pool)
        self._version = 0
        self._size = 0
        self._arr = ncc_st_array_new(0)
        if self._arr == NULL:
            raise MemoryError()
        if size:
            self.resize(size)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._arr != NULL:
            for i in range(self._size):
                Py_XDECREF(self._arr.items[i])
            # Nobody can be reading a dying object: free it directly.
            PyMem_RawFree(self._arr)
            self._arr = NULL

    def __len__(self):
        return ncc_load_ssize_relaxed(&self._size)

    cdef int _resize(self, Py_ssize_t newsize) except -1:
        cdef ncc_st_array *old
        cdef ncc_st_array *new
        cdef Py_ssize_t i, keep, nold, cap
        cdef PyObject **dropped = NULL
        cdef Py_ssize_t ndropped = 0
        cdef PyObject *o
        if newsize < 0:
            raise ValueError("size must be >= 0")
        with cython.critical_section(self):
            old = self._arr
            nold = self._size
            keep = newsize if newsize < nold else nold
            cap = newsize + (newsize >> 3) + 4
            # Allocate and fill the new array before the version goes odd:
            # nothing below may run Python code.
            new = ncc_st_array_new(cap)
            if new == NULL:
                raise MemoryError()
            if nold > keep:
                dropped = <PyObject **>PyMem_RawMalloc((nold - keep) * sizeof(PyObject *))
                if dropped == NULL:
                    PyMem_RawFree(new)
                    raise MemoryError()
            for i in range(keep):
                # The new array is private until published: plain copies.
                new.items[i] = old.items[i]
            for i in range(keep, newsize):
                o = <PyObject *>self._pool[i % self._npool]
                Py_INCREF(<object>o)
                ncc_publish(o)
                new.items[i] = o
            for i in range(keep, nold):
                dropped[ndropped] = old.items[i]
                ndropped += 1
            ncc_seq_write_begin(&self._version)
            # Release; pairs with the acquire load of _arr in ncc_st_try_read.
            ncc_store_ptr_release(<void **>&self._arr, new)
            # Relaxed; readers validate it with the seqlock.
            ncc_store_ssize_relaxed(&self._size, newsize)
            ncc_seq_write_end(&self._version)
            # Unpublished (release store above): hand it to the domain.
            ncc_retire(old, ncc_st_array_bytes(old.capacity))
        # Decref outside the section and with the version even.
        for i in range(ndropped):
            Py_DECREF(<object>dropped[i])
        PyMem_RawFree(dropped)
        return 0

    def resize(self, Py_ssize_t newsize):
        """Resize to newsize (new slots get their pool item): one retire."""
        self._resize(newsize)

    def churn(self, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi):
        """n resizes alternating between lo and hi items (n retires)."""
        cdef Py_ssize_t k
        for k in range(n):
            self._resize(lo if (k & 1) else hi)

    def set(self, Py_ssize_t i, obj):
        """Store obj in slot i (publish + release store).  Breaks the pool
        pattern: for single-threaded tests of the slot protocol."""
        cdef PyObject *old
        with cython.critical_section(self):
            if i < 0 or i >= self._size:
                raise IndexError("QSBRArray index out of range")
            Py_INCREF(obj)
            ncc_publish(<PyObject *>obj)
            old = self._arr.items[i]
            ncc_seq_write_begin(&self._version)
            ncc_slot_store(&self._arr.items[i], <PyObject *>obj)
            ncc_seq_write_end(&self._version)
        Py_DECREF(<object>old)

    def call_in_section(self, fn):
        """Call fn() while holding this object's critical section and return
        the version before and after.  If fn blocks, the section is suspended
        and other threads may mutate the object meanwhile (docs/design.md,
        "the critical-section suspension rule")."""
        cdef uint64_t before, after
        with cython.critical_section(self):
            before = self._version
            fn()
            after = self._version
        return before, after

    cdef object _get_locked(self, Py_ssize_t i):
        with cython.critical_section(self):
            if i < 0 or i >= self._size:
                return None
            return <object>self._arr.items[i]

    def get(self, Py_ssize_t i):
        """Lock-free read of slot i (None if out of range); falls back to the
        lock after 8 failed optimistic attempts."""
        cdef PyObject *out = NULL
        cdef int rc, attempt
        for attempt in range(8):
            rc = ncc_st_try_read(&self._version, &self._size, &self._arr, i, &out, 0)
            if rc == NCC_ST_OK:
                obj = <object>out
                Py_DECREF(obj)
                return obj
            if rc == NCC_ST_OOR:
                return None
            if rc == NCC_ST_CORRUPT:
                raise AssertionError("read a reclaimed backing array")
        return self._get_locked(i)

    def read_loop(self, Py_ssize_t n, uint64_t seed=1, int dwell=0):
        """n lock-free reads at pseudo-random indexes, each verified by
        identity against the pool, with the thread attached (no Python code
        per read).  ``dwell`` pause instructions are spent inside each read
        region, between loading the array and reading from it.  Returns a
        dict of counts: ok, out_of_range, retries, fallbacks, corrupt,
        mismatch (the last two must be 0)."""
        cdef Py_ssize_t k, i, size, attempt
        cdef Py_ssize_t ok = 0, oor = 0, retries = 0, fallbacks = 0, corrupt = 0, mismatch = 0
        cdef uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1
        cdef PyObject *out
        cdef int rc
        cdef PyObject *expect
        for k in range(n):
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            size = ncc_load_ssize_relaxed(&self._size)
            i = <Py_ssize_t>(x % <uint64_t>(size + 1))   # sometimes out of range
            rc = NCC_ST_RETRY
            for attempt in range(8):
                out = NULL
                rc = ncc_st_try_read(&self._version, &self._size, &self._arr, i, &out, dwell)
                if rc != NCC_ST_RETRY:
                    break
                retries += 1
            if rc == NCC_ST_OK:
                expect = <PyObject *>self._pool[i % self._npool]
                if out != expect:
                    mismatch += 1
                ok += 1
                Py_DECREF(<object>out)
            elif rc == NCC_ST_OOR:
                oor += 1
            elif rc == NCC_ST_CORRUPT:
                corrupt += 1
            else:
                fallbacks += 1
                obj = self._get_locked(i)
                if obj is not None and obj is not self._pool[i % self._npool]:
                    mismatch += 1
        return {"ok": ok, "out_of_range": oor, "retries": retries,
                "fallbacks": fallbacks, "corrupt": corrupt, "mismatch": mismatch}

    def bench_get(self, Py_ssize_t n):
        """ns per complete optimistic read (seqlock + region + try-incref +
        decref) of slot 0, single thread."""
        cdef Py_ssize_t k
        cdef PyObject *out
        cdef double t0
        if ncc_load_ssize_relaxed(&self._size) == 0:
            raise ValueError("empty array")
        self.get(0)
        t0 = ncc_st_now_ns()
        for k in range(n):
            out = NULL
            if ncc_st_try_read(&self._version, &self._size, &self._arr, 0, &out, 0) == NCC_ST_OK:
                Py_DECREF(<object>out)
        return (ncc_st_now_ns() - t0) / (n if n > 0 else 1)

    def layout(self):
        """Byte offsets of the hot fields from the start of the object."""
        cdef char *base = <char *><void *>self
        return {
            "header": ncc_st_sizeof_pyobject(),
            "version": <char *>&self._version - base,
            "size": <char *>&self._size - base,
            "arr": <char *>&self._arr - base,
        }

    def _check(self):
        """Raise AssertionError if an internal invariant is broken."""
        cdef Py_ssize_t i
        cdef dict lay = self.layout()
        with cython.critical_section(self):
            if self._version & 1:
                raise AssertionError("version is odd outside a write")
            if self._arr == NULL or self._arr.magic != NCC_ST_MAGIC:
                raise AssertionError("backing array header corrupt")
            if not 0 <= self._size <= self._arr.capacity:
                raise AssertionError(f"size {self._size} outside 0..{self._arr.capacity}")
            for i in range(self._size):
                if self._arr.items[i] != <PyObject *>self._pool[i % self._npool]:
                    raise AssertionError(f"slot {i} does not hold its pool item")
        # Hot fields off the header's cache line for any 16-byte-aligned
        # object start: offset >= header + 48 (docs/design.md).
        for name in ("version", "size", "arr"):
            if lay[name] < lay["header"] + 48:
                raise AssertionError(f"hot field {name} at offset {lay[name]} shares "
                                     f"the header's cache line")
        if max(lay["version"], lay["size"], lay["arr"]) - min(
                lay["version"], lay["size"], lay["arr"]) >= CACHE_LINE:
            raise AssertionError("hot fields span more than one cache line")
