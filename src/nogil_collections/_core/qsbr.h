/* qsbr.h -- the package's quiescent-state-based reclamation (QSBR) domain:
 * reader side (inline, in every consumer module) and the shared C API.
 *
 * Why our own: CPython's QSBR (Python/qsbr.c, _PyMem_FreeDelayed) is internal
 * and not exported, so an extension cannot defer frees through it.
 *
 * Model (docs/design.md, "Memory reclamation"):
 *   - One process-wide domain, owned by the extension module
 *     nogil_collections._core._qsbr; consumer modules reach it through a
 *     capsule (ncc_qsbr_import() at module init).
 *   - A global write sequence `wr_seq`: starts at 1, advances by 2, never 0.
 *   - Each thread owns one 64-byte record.  rec->seq == 0 means "offline" (not
 *     inside a read region); otherwise it is the wr_seq the thread read when it
 *     entered its current read region.
 *   - A read region is short and never runs Python code, never blocks and
 *     never takes a lock: it is only the loads of a container's arrays and the
 *     try-increfs of the items (a failed try-incref-compare defers its decref
 *     until after the region, see ncc_try_getref_deferred in refcount.h).
 *   - retire(ptr) advances wr_seq and tags ptr with the new value (its "goal").
 *     ptr is freed once every record is offline or has seq >= goal.
 *
 * A thread outside a read region is offline, so an idle thread (one that read
 * once and then blocks forever) never holds memory hostage.
 *
 * On GIL builds no two threads are ever inside extension C code at once, and a
 * read region never releases the GIL, so no reader can be inside a region when
 * a writer runs: retire() frees immediately and regions compile to nothing.
 */
#ifndef NOGIL_COLLECTIONS_QSBR_H
#define NOGIL_COLLECTIONS_QSBR_H

#include <Python.h>
#include <stdint.h>
#include "atomics.h"
#include "refcount.h"

#define NCC_QSBR_CAPSULE "nogil_collections._core._qsbr._C_API"
/* Readers poll for reclaimable memory once every this many read regions, and
 * only while something is pending.  See docs/design.md for the cost argument. */
#define NCC_QSBR_READER_POLL_PERIOD 1024u

typedef struct ncc_qsbr_thread {
    /* Written by the owner (relaxed store at region entry, release store at
     * exit); read by reclaimers (acquire load in the scan). */
    uint64_t seq;
    /* Owner-only fields. */
    uint32_t depth;          /* nesting of read regions */
    uint32_t ops;            /* regions entered, for amortised reader polling */
    /* Registry fields, written under the domain's registry mutex. */
    int in_use;                      /* owned by a live thread */
    struct ncc_qsbr_thread *next;    /* append-only list of all records */
} __attribute__((aligned(NCC_CACHE_LINE))) ncc_qsbr_thread;

typedef struct ncc_qsbr_stats {
    Py_ssize_t registered_threads;   /* records currently owned by a live thread */
    Py_ssize_t thread_records;       /* records ever allocated (reused, never freed) */
    uint64_t   retired_count;
    uint64_t   freed_count;
    uint64_t   retired_bytes;        /* cumulative */
    uint64_t   freed_bytes;          /* cumulative */
    Py_ssize_t pending_bytes;        /* retired, not yet freed */
    Py_ssize_t pending_count;
    Py_ssize_t max_pending_bytes;    /* high-water mark since the last reset */
    Py_ssize_t pending_limit;        /* the documented bound's LIMIT */
    uint64_t   synchronize_count;    /* times a writer waited for readers */
    uint64_t   poll_count;
    uint64_t   wr_seq;
    int        uses_membarrier;
} ncc_qsbr_stats;

typedef struct ncc_qsbr_domain {
    /* Hot, read by every reader at region entry: its own cache line.
     * Advanced (seq_cst fetch-add) by retire(). */
    uint64_t wr_seq __attribute__((aligned(NCC_CACHE_LINE)));
    /* Read (relaxed) by readers at region exit to decide whether to poll;
     * written under the pending mutex.  Own cache line. */
    Py_ssize_t pending_count __attribute__((aligned(NCC_CACHE_LINE)));
    /* 1 when MEMBARRIER_CMD_PRIVATE_EXPEDITED is registered: readers then need
     * only a compiler barrier at region entry.  Written once at init. */
    int uses_membarrier __attribute__((aligned(NCC_CACHE_LINE)));
    /* Slow-path API, filled in by the _qsbr module. */
    ncc_qsbr_thread *(*register_thread)(void);
    /* Takes ownership of ptr (allocated with PyMem_RawMalloc) and frees it
     * with PyMem_RawFree once no reader can hold it.  Call it after the
     * pointer was unpublished (release store of the replacement). */
    void (*retire)(void *ptr, size_t nbytes);
    /* Free whatever has become safe.  Never blocks on readers. */
    void (*poll)(void);
    /* Block until everything retired so far is freed (bounded: read regions
     * are short).  Must not be called inside a read region. */
    void (*synchronize)(void);
    void (*get_stats)(ncc_qsbr_stats *out);
} ncc_qsbr_domain;

/* Per consumer module: the domain and this thread's record (cached). */
static ncc_qsbr_domain *ncc_qsbr_dom = NULL;
#if NCC_FREE_THREADED
static __thread ncc_qsbr_thread *ncc_qsbr_tls_rec
    __attribute__((tls_model("initial-exec"))) = NULL;
#endif

/* Call once from the consumer module's init.  Returns -1 with an exception set. */
static int ncc_qsbr_import(void) {
    if (ncc_qsbr_dom == NULL) {
        /* Import the submodule first: PyCapsule_Import walks attributes from
         * the top-level package, which may still be initialising. */
        PyObject *mod = PyImport_ImportModule("nogil_collections._core._qsbr");
        if (mod == NULL) return -1;
        Py_DECREF(mod);
        ncc_qsbr_dom = (ncc_qsbr_domain *)PyCapsule_Import(NCC_QSBR_CAPSULE, 0);
        if (ncc_qsbr_dom == NULL) return -1;
    }
    return 0;
}

#if NCC_FREE_THREADED

static inline ncc_qsbr_thread *ncc_read_begin(void) {
    ncc_qsbr_thread *rec = ncc_qsbr_tls_rec;
    if (__builtin_expect(rec == NULL, 0)) {
        rec = ncc_qsbr_dom->register_thread();   /* aborts on OOM: cannot fail */
        ncc_qsbr_tls_rec = rec;
    }
    if (rec->depth++ == 0) {
        /* Acquire; pairs with the seq_cst fetch-add of wr_seq in retire(),
         * which comes after the release store that unpublished the array:
         * a reader that sees seq >= goal therefore loads the new array. */
        uint64_t s = ncc_load_uint64_acquire(&ncc_qsbr_dom->wr_seq);
        /* Relaxed store, then a barrier that orders it before this region's
         * loads of container arrays.  With membarrier, a compiler barrier
         * suffices: the reclaimer's membarrier() promotes it to a full fence
         * on every running thread before it scans (asymmetric fence).
         * Without membarrier: a seq_cst fence pairing with the seq_cst fence
         * in the reclaimer's scan (Dekker). */
        ncc_store_uint64_relaxed(&rec->seq, s);
        if (__builtin_expect(ncc_qsbr_dom->uses_membarrier, 1)) {
            ncc_compiler_barrier();
        } else {
            ncc_fence_seq_cst();
        }
    }
    return rec;
}

static inline void ncc_read_end(ncc_qsbr_thread *rec) {
    if (--rec->depth == 0) {
        /* Release; pairs with the acquire load of rec->seq in the
         * reclaimer's scan: every load this region made from a retired array
         * happens-before the reclaimer sees 0 and frees the array. */
        ncc_store_uint64_release(&rec->seq, 0);
        /* Relaxed: a hint only; a stale value delays a poll, nothing else. */
        if (__builtin_expect(ncc_load_ssize_relaxed(&ncc_qsbr_dom->pending_count) != 0, 0)
                && (++rec->ops % NCC_QSBR_READER_POLL_PERIOD) == 0) {
            ncc_qsbr_dom->poll();
        }
    }
}

#else  /* GIL build: no reader can be inside a region while a writer runs. */

static inline ncc_qsbr_thread *ncc_read_begin(void) { return NULL; }
static inline void ncc_read_end(ncc_qsbr_thread *rec) { (void)rec; }

#endif

static inline void ncc_retire(void *ptr, size_t nbytes) {
    if (ptr != NULL) ncc_qsbr_dom->retire(ptr, nbytes);
}

#endif /* NOGIL_COLLECTIONS_QSBR_H */
