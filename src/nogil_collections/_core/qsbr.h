/* qsbr.h -- the package's quiescent-state-based reclamation (QSBR) domain:
 * reader side (inline, in every consumer module) and the shared C API.
 *
 * Why our own: CPython's QSBR (Python/qsbr.c, Include/internal/pycore_qsbr.h,
 * _PyMem_FreeDelayed) is internal and not exported, so an extension cannot
 * defer frees through it.
 *
 * Model (docs/design.md, "Memory reclamation"):
 *   - One process-wide domain, owned by the extension module
 *     nogil_collections._core._qsbr; consumer modules reach it through a
 *     capsule (ncc_qsbr_import() at module init).
 *   - A global write sequence `wr_seq`: starts at 1, advances by 2, never 0.
 *   - Each thread owns one record whose `seq` sits on its own cache line.
 *     rec->seq == 0 means "offline" (not inside a read region); otherwise it
 *     is the wr_seq the thread read when it entered its current read region.
 *   - A read region is short and never runs Python code, never blocks, never
 *     detaches from the interpreter and never takes a lock: it is only the
 *     loads of a container's arrays and the try-increfs of the items (a
 *     failed try-incref-compare defers its decref until after the region, see
 *     ncc_try_getref_deferred in refcount.h).
 *   - retire(ptr) advances wr_seq and tags ptr with the new value (its "goal").
 *     ptr is freed once every record is offline or has seq >= goal, as seen
 *     after an asymmetric fence (membarrier) or a seq_cst fence.
 *
 * Unlike CPython, which reports quiescent states at eval-loop safe points, a
 * thread here is online ONLY inside a read region.  So an idle thread (one that
 * read once and then blocks forever) never holds memory hostage, and no thread
 * ever needs to "report" anything for reclamation to progress.
 *
 * On GIL builds no two threads are ever inside extension C code at once, and a
 * read region never releases the GIL, so no reader can be inside a region when
 * a writer runs: retire() frees immediately and regions compile to nothing.
 *
 * Public API (stable; the containers code against it):
 *   ncc_qsbr_import()            module init, once
 *   ncc_read_begin() -> rec      enter a read region (nestable)
 *   ncc_read_end(rec)            leave it
 *   ncc_retire(ptr, nbytes)      hand over an unpublished PyMem_RawMalloc block
 *   ncc_qsbr_poll()              free what has become safe (never waits)
 *   ncc_qsbr_synchronize()       grace period: wait out every reader now in a region
 *   ncc_qsbr_in_region()         1 if this thread is inside a read region
 */
#ifndef NOGIL_COLLECTIONS_QSBR_H
#define NOGIL_COLLECTIONS_QSBR_H

#include <Python.h>
#include <stdint.h>
#include "atomics.h"
#include "refcount.h"

#define NCC_QSBR_CAPSULE "nogil_collections._core._qsbr._C_API"
/* Bumped whenever ncc_qsbr_domain's layout changes; checked at import so that
 * a stale consumer build fails loudly instead of corrupting memory. */
#define NCC_QSBR_ABI_VERSION 2
/* Readers poll for reclaimable memory once every this many read regions, and
 * only while something is pending.  See docs/design.md for the cost argument. */
#define NCC_QSBR_READER_POLL_PERIOD 1024u
/* Each consumer module caches the thread's record in its own thread-local
 * variable; the record remembers up to this many cache addresses so the
 * thread-exit destructor can clear them (see unregister_thread). */
#define NCC_QSBR_MAX_CACHES 6

typedef struct ncc_qsbr_thread {
    /* ---- hot line: written by the owner at every region entry/exit ---- */
    /* Owner: release store of wr_seq at region entry, release store of 0 at
     * exit.  Reclaimers: acquire load in scan_min_seq (qsbr_domain.c). */
    uint64_t seq;
    uint32_t depth;          /* owner-only: nesting of read regions */
    uint32_t ops;            /* owner-only: regions ended while memory was pending */
    /* ---- cold line: written under the domain's registry lock only ---- */
    int in_use __attribute__((aligned(NCC_CACHE_LINE)));  /* owned by a live thread */
    int ncaches;
    struct ncc_qsbr_thread *next;    /* append-only list of all records */
    /* Addresses of the owner thread's per-module cache variables
     * (ncc_qsbr_tls_rec below); cleared when the thread exits. */
    struct ncc_qsbr_thread **caches[NCC_QSBR_MAX_CACHES];
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
    Py_ssize_t max_pending_count;    /* high-water mark since the last reset */
    Py_ssize_t pending_limit;        /* LIMIT: bytes above which a writer waits */
    Py_ssize_t pending_count_limit;  /* same, in number of retired blocks */
    Py_ssize_t max_retired_block;    /* largest single block retired (bytes) */
    uint64_t   synchronize_count;    /* times a writer waited for readers */
    uint64_t   poll_count;           /* scans (each costs one fence / membarrier) */
    uint64_t   wr_seq;
    int        uses_membarrier;
} ncc_qsbr_stats;

typedef struct ncc_qsbr_domain {
    /* Hot, read by every reader at region entry: its own cache line.
     * Advanced (seq_cst fetch-add) by retire(). */
    uint64_t wr_seq __attribute__((aligned(NCC_CACHE_LINE)));
    /* Read (relaxed) by readers at region exit to decide whether to poll;
     * written under the pending lock.  Own cache line. */
    Py_ssize_t pending_count __attribute__((aligned(NCC_CACHE_LINE)));
    /* Read-mostly line.  uses_membarrier: 1 when
     * MEMBARRIER_CMD_PRIVATE_EXPEDITED is registered: readers then need only a
     * compiler barrier at region entry.  Written once at init (and possibly
     * in a fork child, where no other thread exists). */
    int uses_membarrier __attribute__((aligned(NCC_CACHE_LINE)));
    int abi_version;
    /* Slow-path API, filled in by the _qsbr module. */
    /* Returns this thread's record (registering it on first use) and stores it
     * in *cache, a thread-local variable of the calling module, which the
     * domain clears at thread exit.  Never fails (aborts on OOM). */
    ncc_qsbr_thread *(*register_thread)(ncc_qsbr_thread **cache);
    /* Takes ownership of ptr (allocated with PyMem_RawMalloc) and frees it
     * with PyMem_RawFree once no reader can hold it.  Call it after the
     * pointer was unpublished (release store of the replacement), outside any
     * read region. */
    void (*retire)(void *ptr, size_t nbytes);
    /* Free whatever has become safe.  Never blocks on readers or on locks. */
    void (*poll)(void);
    /* A grace period (RCU's synchronize_rcu): returns once every reader
     * that was inside a read region when it was called has left it, and
     * frees everything retired so far.  Bounded: read regions are short.
     * Call it outside any read region (inside one it aborts: it would wait
     * for itself); it may be called while holding a critical section. */
    void (*synchronize)(void);
    void (*get_stats)(ncc_qsbr_stats *out);
    /* 1 if the calling thread is inside a read region (of any module). */
    int (*in_region)(void);
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
        ncc_qsbr_domain *dom = (ncc_qsbr_domain *)PyCapsule_Import(NCC_QSBR_CAPSULE, 0);
        if (dom == NULL) return -1;
        if (dom->abi_version != NCC_QSBR_ABI_VERSION) {
            PyErr_Format(PyExc_ImportError,
                         "nogil_collections: QSBR ABI mismatch (module built for %d, "
                         "domain is %d): rebuild all extension modules",
                         NCC_QSBR_ABI_VERSION, dom->abi_version);
            return -1;
        }
        ncc_qsbr_dom = dom;
    }
    return 0;
}

#if NCC_FREE_THREADED

static inline ncc_qsbr_thread *ncc_read_begin(void) {
    ncc_qsbr_thread *rec = ncc_qsbr_tls_rec;
    if (__builtin_expect(rec == NULL, 0)) {
        /* Outside any region (depth is 0 for a fresh record): may lock. */
        rec = ncc_qsbr_dom->register_thread(&ncc_qsbr_tls_rec);
    }
    if (rec->depth++ == 0) {
        /* Acquire; pairs with the seq_cst (release) fetch-add of wr_seq in
         * retire(), which is ordered after the caller's release store that
         * unpublished the array: a reader that loads s >= goal therefore
         * loads the replacement array, never the retired one. */
        uint64_t s = ncc_load_uint64_acquire(&ncc_qsbr_dom->wr_seq);
        /* Release; pairs with the acquire load of rec->seq in scan_min_seq:
         * everything this thread did before (including the loads of its
         * previous region) happens-before a reclaimer that reads s. */
        ncc_store_uint64_release(&rec->seq, s);
        /* Order the store above before this region's loads of container
         * arrays (store->load ordering).  With membarrier a compiler barrier
         * suffices: the reclaimer's membarrier() is a full fence on every
         * running thread of the process, at an instruction boundary
         * (asymmetric fence).  Without it: a seq_cst fence that pairs with
         * the seq_cst fence in the reclaimer's reader_fence() (Dekker). */
        if (__builtin_expect(ncc_load_int_relaxed(&ncc_qsbr_dom->uses_membarrier), 1)) {
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

static inline int ncc_qsbr_in_region(void) {
    ncc_qsbr_thread *rec = ncc_qsbr_tls_rec;
    if (rec != NULL) return rec->depth != 0;
    /* Not cached in this module: the thread may have entered a region
     * through another consumer module. */
    return ncc_qsbr_dom->in_region();
}

#else  /* GIL build: no reader can be inside a region while a writer runs. */

static inline ncc_qsbr_thread *ncc_read_begin(void) { return NULL; }
static inline void ncc_read_end(ncc_qsbr_thread *rec) { (void)rec; }
static inline int ncc_qsbr_in_region(void) { return 0; }

#endif

static inline void ncc_retire(void *ptr, size_t nbytes) {
    if (ptr != NULL) ncc_qsbr_dom->retire(ptr, nbytes);
}

static inline void ncc_qsbr_poll(void) {
    ncc_qsbr_dom->poll();
}

/* Grace period: see ncc_qsbr_domain.synchronize.  After unpublishing a
 * block (release store), ncc_qsbr_synchronize() then free(block) is safe. */
static inline void ncc_qsbr_synchronize(void) {
    ncc_qsbr_dom->synchronize();
}

#endif /* NOGIL_COLLECTIONS_QSBR_H */
