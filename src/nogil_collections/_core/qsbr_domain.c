/* qsbr_domain.c -- the one process-wide QSBR domain (see qsbr.h and
 * docs/design.md, "Memory reclamation").  Compiled into the extension module
 * nogil_collections._core._qsbr, which exports it through a capsule.
 *
 * Locks: `registry_lock` guards record allocation/reuse; `pending_lock` guards
 * the retired queue and the counters.  Lock order: pending_lock, then
 * registry_lock.  Neither is ever taken inside a read region, and neither is
 * held while Python code runs.  Plain pthread mutexes: they must work on 3.11
 * (no PyMutex), from pthread TLS destructors (no thread state) and across
 * fork (pthread_atfork handlers below).
 *
 * Retired blocks are queued in goal order (the goal is drawn under
 * pending_lock), so freeing is always a prefix of the queue.
 */
#include "qsbr.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#  include <linux/membarrier.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

typedef struct ncc_retired {
    void *ptr;
    size_t nbytes;
    uint64_t goal;            /* freed once every online reader has seq >= goal */
    struct ncc_retired *next;
} ncc_retired;

static ncc_qsbr_domain ncc_domain;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t thread_key;
/* Append-only list of records: head published with a release store (pairs
 * with the acquire load in scan_min_seq); records are never freed, only
 * reused, so a scanner can never touch freed record memory. */
static ncc_qsbr_thread *records_head = NULL;
/* FIFO of retired blocks, sorted by goal.  Guarded by pending_lock. */
static ncc_retired *pending_head = NULL, *pending_tail = NULL;
static ncc_qsbr_stats st;     /* counters; guarded by pending_lock / registry_lock */
static int poison_freed = 0;  /* test hook: fill blocks with 0xDB before freeing */

/* Default bounds on retired-but-unfreed memory before a retiring writer waits
 * for readers (docs/design.md, "the bound").  Adjustable via _debug. */
#define NCC_QSBR_DEFAULT_LIMIT ((Py_ssize_t)1 << 20)
#define NCC_QSBR_DEFAULT_COUNT_LIMIT ((Py_ssize_t)1024)

/* ------------------------------------------------------------------ */
/* thread registration                                                 */
/* ------------------------------------------------------------------ */

static void poll(void);

/* pthread-key destructor: runs in the exiting thread, after its Python thread
 * state is gone (so it must not touch Python), for every thread that
 * registered.  Not run for the main thread (process exit). */
static void unregister_thread(void *arg) {
    ncc_qsbr_thread *rec = (ncc_qsbr_thread *)arg;
    /* A thread cannot exit inside a read region (regions run no Python code
     * and never block); rec->seq is already 0.  Store it again (release;
     * pairs with the acquire load in scan_min_seq) so that a record is never
     * handed to a new owner while it looks online. */
    ncc_store_uint64_release(&rec->seq, 0);
    rec->depth = 0;
    rec->ops = 0;
    pthread_mutex_lock(&registry_lock);
    /* Clear every module's cached pointer to this record: should any code of
     * this thread run a read region after this destructor (another library's
     * TLS destructor calling into Python), it re-registers instead of using a
     * record that another thread may own by then. */
    for (int i = 0; i < rec->ncaches; i++) {
        *rec->caches[i] = NULL;
    }
    rec->ncaches = 0;
    rec->in_use = 0;
    st.registered_threads--;
    pthread_mutex_unlock(&registry_lock);
    /* A reader that exits may have been the one holding memory back: free
     * what became safe (trylock, no Python: fine in a TLS destructor). */
    poll();
}

static ncc_qsbr_thread *register_thread(ncc_qsbr_thread **cache) {
    /* Already registered through another consumer module? */
    ncc_qsbr_thread *rec = (ncc_qsbr_thread *)pthread_getspecific(thread_key);
    pthread_mutex_lock(&registry_lock);
    if (rec == NULL) {
        for (rec = records_head; rec != NULL; rec = rec->next) {
            if (!rec->in_use) break;
        }
        if (rec == NULL) {
            rec = (ncc_qsbr_thread *)aligned_alloc(NCC_CACHE_LINE, sizeof(ncc_qsbr_thread));
            if (rec == NULL) {
                pthread_mutex_unlock(&registry_lock);
                Py_FatalError("nogil_collections: out of memory registering a thread");
            }
            memset(rec, 0, sizeof(*rec));
            rec->next = records_head;
            /* Release; pairs with the acquire load of records_head in
             * scan_min_seq, which then sees a fully initialised record. */
            ncc_store_ptr_release((void **)&records_head, rec);
            st.thread_records++;
        }
        rec->in_use = 1;
        rec->ncaches = 0;
        rec->depth = 0;
        rec->ops = 0;
        st.registered_threads++;
        /* The destructor runs at thread exit (not for the main thread). */
        if (pthread_setspecific(thread_key, rec) != 0) {
            pthread_mutex_unlock(&registry_lock);
            Py_FatalError("nogil_collections: pthread_setspecific failed registering a thread");
        }
    }
    if (rec->ncaches < NCC_QSBR_MAX_CACHES) {
        rec->caches[rec->ncaches++] = cache;
    }
    /* (More consumer modules than slots: that module's cache is simply not
     * cleared at thread exit; see unregister_thread for the only case where
     * that matters.) */
    *cache = rec;
    pthread_mutex_unlock(&registry_lock);
    return rec;
}

static int in_region(void) {
    ncc_qsbr_thread *rec = (ncc_qsbr_thread *)pthread_getspecific(thread_key);
    return rec != NULL && rec->depth != 0;
}

/* ------------------------------------------------------------------ */
/* reclamation                                                         */
/* ------------------------------------------------------------------ */

#if defined(__linux__)
static long ncc_membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }
#endif

/* Make every reader's region-entry store visible before we scan.  With
 * membarrier: every running thread of the process executes a full memory
 * barrier before this returns, which promotes the compiler barrier in
 * ncc_read_begin to a fence.  Otherwise: a seq_cst fence that pairs with the
 * seq_cst fence after the reader's store of rec->seq. */
static void reader_fence(void) {
#if defined(__linux__)
    if (ncc_domain.uses_membarrier) {
        if (ncc_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
        /* Only EPERM (not registered) is possible once the command was
         * accepted at init; registration survives fork and is reset only by
         * exec.  Register again; readers rely on this barrier (they issue only
         * a compiler barrier), so a plain fence here would NOT be safe. */
        if (ncc_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
                && ncc_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
            return;
        }
        Py_FatalError("nogil_collections: membarrier(PRIVATE_EXPEDITED) failed after "
                      "registration; retired memory cannot be reclaimed safely");
    }
#endif
    ncc_fence_seq_cst();
}

/* Smallest seq among online readers, or UINT64_MAX if none is online.
 * Caller has run reader_fence() after the blocks it wants to free were
 * unpublished. */
static uint64_t scan_min_seq(void) {
    uint64_t min = UINT64_MAX;
    /* Acquire; pairs with the release store of records_head in register_thread. */
    for (ncc_qsbr_thread *r = (ncc_qsbr_thread *)ncc_load_ptr_acquire((void **)&records_head);
         r != NULL; r = r->next) {
        /* Acquire; pairs with the release stores of rec->seq in
         * ncc_read_begin / ncc_read_end. */
        uint64_t s = ncc_load_uint64_acquire(&r->seq);
        if (s != 0 && s < min) min = s;
    }
    return min;
}

/* Unlink the prefix of the queue whose goal <= min_seq and return it; the
 * caller frees it with free_list() after dropping pending_lock.  Caller holds
 * pending_lock. */
static ncc_retired *take_safe_locked(uint64_t min_seq) {
    ncc_retired *head = pending_head, *last = NULL, *e = pending_head;
    while (e != NULL && e->goal <= min_seq) {
        st.pending_bytes -= (Py_ssize_t)e->nbytes;
        st.pending_count--;
        st.freed_bytes += e->nbytes;
        st.freed_count++;
        last = e;
        e = e->next;
    }
    if (last == NULL) return NULL;
    last->next = NULL;
    pending_head = e;
    if (e == NULL) pending_tail = NULL;
    /* Relaxed: readers use it as a hint only (ncc_read_end). */
    ncc_store_ssize_relaxed(&ncc_domain.pending_count, st.pending_count);
    return head;
}

static void free_list(ncc_retired *e, int poison) {
    while (e != NULL) {
        ncc_retired *next = e->next;
        if (poison) memset(e->ptr, 0xDB, e->nbytes);
        PyMem_RawFree(e->ptr);
        PyMem_RawFree(e);
        e = next;
    }
}

/* One scan: free what is safe now.  Caller holds pending_lock. */
static ncc_retired *poll_locked(void) {
    if (pending_head == NULL) return NULL;
    st.poll_count++;
    reader_fence();
    return take_safe_locked(scan_min_seq());
}

static void poll(void) {
    /* Cheap check, then never block: another thread is already reclaiming. */
    if (ncc_load_ssize_relaxed(&ncc_domain.pending_count) == 0) return;
    if (pthread_mutex_trylock(&pending_lock) != 0) return;
    ncc_retired *done = poll_locked();
    int poison = poison_freed;
    pthread_mutex_unlock(&pending_lock);
    free_list(done, poison);
}

/* Wait until every online reader has seq >= goal (or is offline) and return
 * the minimum seq observed.  One fence suffices: a region whose entry store
 * the fence did not make visible loads arrays after the fence, so it loads
 * the replacements (docs/design.md).  Read regions never block, so this ends
 * as soon as each reader that was inside a region leaves it.  Must not be
 * called from inside a read region (it would wait for itself). */
static uint64_t wait_for_readers(uint64_t goal) {
    reader_fence();
    for (unsigned spins = 0;; spins++) {
        uint64_t min = scan_min_seq();
        if (min >= goal) return min;
        if (spins < 64) ncc_cpu_relax(); else sched_yield();
    }
}

/* A full grace period: every reader that was inside a read region when this
 * was called has left it when it returns, and everything queued is freed.
 * Caller holds pending_lock and is not in a region.
 *
 * wr_seq is advanced first, exactly as for a retire: a reader that was
 * already inside a region holds seq < target, one that enters afterwards
 * loads seq >= target and, through the release fetch-add, sees every store
 * the caller made before calling (its unpublish of whatever it will free).
 * Without the advance, a reader that entered after the last retire (seq ==
 * wr_seq) would not be waited for. */
static ncc_retired *synchronize_locked(void) {
    st.synchronize_count++;
    /* seq_cst fetch-add (release; pairs with the acquire load of wr_seq in
     * ncc_read_begin).  Under pending_lock: every queued goal is <= target. */
    uint64_t target = ncc_fetch_add_uint64(&ncc_domain.wr_seq, 2) + 2;
    return take_safe_locked(wait_for_readers(target));
}

static void synchronize(void) {
#if NCC_FREE_THREADED
    if (in_region()) {
        /* It would wait for ourselves forever; returning early would break
         * the caller's grace period.  A programming error either way. */
        Py_FatalError("nogil_collections: QSBR synchronize() called inside a read region");
    }
    pthread_mutex_lock(&pending_lock);
    ncc_retired *done = synchronize_locked();
    int poison = poison_freed;
    pthread_mutex_unlock(&pending_lock);
    free_list(done, poison);
#endif
    /* GIL build: nothing is ever pending, and no other thread can be inside
     * a region while this one runs. */
}

static void retire(void *ptr, size_t nbytes) {
    if (ptr == NULL) return;
#if !NCC_FREE_THREADED
    /* GIL build: no read region can be active in another thread (regions never
     * release the GIL), and we are not in one ourselves. */
    pthread_mutex_lock(&pending_lock);
    st.retired_count++; st.freed_count++;
    st.retired_bytes += nbytes; st.freed_bytes += nbytes;
    if ((Py_ssize_t)nbytes > st.max_retired_block) st.max_retired_block = (Py_ssize_t)nbytes;
    int poison = poison_freed;
    pthread_mutex_unlock(&pending_lock);
    if (poison) memset(ptr, 0xDB, nbytes);
    PyMem_RawFree(ptr);
    return;
#else
    int in_reg = in_region();
    ncc_retired *e = (ncc_retired *)PyMem_RawMalloc(sizeof(ncc_retired));
    ncc_retired *done;
    pthread_mutex_lock(&pending_lock);
    /* seq_cst fetch-add (returns the old value): a release operation ordered
     * after the caller's release store that unpublished ptr; pairs with the
     * acquire load of wr_seq in ncc_read_begin (a reader whose seq is >= goal
     * can only load the replacement).  Drawn under pending_lock so that the
     * queue stays sorted by goal. */
    uint64_t goal = ncc_fetch_add_uint64(&ncc_domain.wr_seq, 2) + 2;
    st.retired_count++;
    st.retired_bytes += nbytes;
    if ((Py_ssize_t)nbytes > st.max_retired_block) st.max_retired_block = (Py_ssize_t)nbytes;
    if (e == NULL) {
        /* No memory to queue it: free it (and the safe prefix) synchronously. */
        int poison = poison_freed;
        if (in_reg) {
            /* Contract violation (retire inside a region) and OOM: leak
             * rather than free memory a reader may hold, or wait for
             * ourselves. */
            pthread_mutex_unlock(&pending_lock);
            return;
        }
        st.synchronize_count++;
        done = take_safe_locked(wait_for_readers(goal));
        st.freed_count++;
        st.freed_bytes += nbytes;
        pthread_mutex_unlock(&pending_lock);
        if (poison) memset(ptr, 0xDB, nbytes);
        PyMem_RawFree(ptr);
        free_list(done, poison);
        return;
    }
    e->goal = goal;
    e->ptr = ptr;
    e->nbytes = nbytes;
    e->next = NULL;
    if (pending_tail) pending_tail->next = e; else pending_head = e;
    pending_tail = e;
    st.pending_count++;
    st.pending_bytes += (Py_ssize_t)nbytes;
    if (st.pending_bytes > st.max_pending_bytes) st.max_pending_bytes = st.pending_bytes;
    if (st.pending_count > st.max_pending_count) st.max_pending_count = st.pending_count;
    /* Relaxed: a hint for readers (ncc_read_end). */
    ncc_store_ssize_relaxed(&ncc_domain.pending_count, st.pending_count);
    if ((st.pending_bytes > st.pending_limit || st.pending_count > st.pending_count_limit)
            && !in_reg) {
        /* Over the bound: wait for the readers inside a region now (their
         * regions are short), still holding pending_lock so that no other
         * writer can grow the queue meanwhile.  This is what makes the bound
         * LIMIT + one block. */
        done = synchronize_locked();
    } else {
        done = poll_locked();
    }
    int poison = poison_freed;
    pthread_mutex_unlock(&pending_lock);
    free_list(done, poison);
#endif
}

static void get_stats(ncc_qsbr_stats *out) {
    pthread_mutex_lock(&pending_lock);
    pthread_mutex_lock(&registry_lock);
    *out = st;
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_unlock(&pending_lock);
    out->wr_seq = ncc_load_uint64(&ncc_domain.wr_seq);
    out->uses_membarrier = ncc_domain.uses_membarrier;
}

/* ------------------------------------------------------------------ */
/* fork                                                                */
/* ------------------------------------------------------------------ */

/* Hold both locks across fork() so the child's copy of the queue and the
 * registry is consistent (CPython's os.fork stops the world first, so no
 * Python thread is inside a read region; a thread may still hold
 * pending_lock in synchronize(), and that finishes without any other thread). */
static void atfork_prepare(void) {
    pthread_mutex_lock(&pending_lock);
    pthread_mutex_lock(&registry_lock);
}

static void atfork_parent(void) {
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_unlock(&pending_lock);
}

static void atfork_child(void) {
    /* Only the forking thread exists in the child: every other record
     * belongs to a thread that will never run its destructor.  Release those
     * records, or they would leak and -- had one been caught inside a region
     * -- block reclamation in the child forever. */
    ncc_qsbr_thread *self = (ncc_qsbr_thread *)pthread_getspecific(thread_key);
    Py_ssize_t live = 0;
    for (ncc_qsbr_thread *r = records_head; r != NULL; r = r->next) {
        if (r == self) {
            live += r->in_use;
            continue;
        }
        r->seq = 0;
        r->depth = 0;
        r->ops = 0;
        r->ncaches = 0;
        r->in_use = 0;
    }
    st.registered_threads = live;
#if defined(__linux__)
    /* Registration is inherited by fork; re-registering is idempotent and
     * covers kernels that might not inherit it.  No other thread exists, so
     * switching the readers to the fence protocol here is safe. */
    if (ncc_domain.uses_membarrier
            && ncc_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
        ncc_domain.uses_membarrier = 0;
    }
#endif
    /* The forking thread locked both in atfork_prepare. */
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_unlock(&pending_lock);
}

/* ------------------------------------------------------------------ */
/* test hooks (nogil_collections._debug)                               */
/* ------------------------------------------------------------------ */

static void ncc_qsbr_set_limits(Py_ssize_t limit, Py_ssize_t count_limit) {
    pthread_mutex_lock(&pending_lock);
    if (limit >= 0) st.pending_limit = limit;
    if (count_limit >= 0) st.pending_count_limit = count_limit;
    pthread_mutex_unlock(&pending_lock);
}

static void ncc_qsbr_reset_high_water(void) {
    pthread_mutex_lock(&pending_lock);
    st.max_pending_bytes = st.pending_bytes;
    st.max_pending_count = st.pending_count;
    st.max_retired_block = 0;
    pthread_mutex_unlock(&pending_lock);
}

static void ncc_qsbr_set_poison(int on) {
    pthread_mutex_lock(&pending_lock);
    poison_freed = on;
    pthread_mutex_unlock(&pending_lock);
}

/* ------------------------------------------------------------------ */
/* init                                                                */
/* ------------------------------------------------------------------ */

static ncc_qsbr_domain *ncc_qsbr_domain_init(void) {
    /* Called from the _qsbr module's init, under the import lock; a second
     * call (module re-initialisation after Py_Finalize/Py_Initialize) reuses
     * the domain, its pthread key and its atfork handlers. */
    static int initialised = 0;
    if (initialised) return &ncc_domain;
    if (pthread_key_create(&thread_key, unregister_thread) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "nogil_collections: pthread_key_create failed");
        return NULL;
    }
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "nogil_collections: pthread_atfork failed");
        return NULL;
    }
    initialised = 1;
    ncc_domain.wr_seq = 1;
    ncc_domain.pending_count = 0;
    ncc_domain.uses_membarrier = 0;
    ncc_domain.abi_version = NCC_QSBR_ABI_VERSION;
#if NCC_FREE_THREADED && defined(__linux__)
    const char *off = getenv("NOGIL_COLLECTIONS_NO_MEMBARRIER");
    if (!(off && off[0] && off[0] != '0')) {
        long cmds = ncc_membarrier(MEMBARRIER_CMD_QUERY);
        /* Register, then issue one barrier: a seccomp filter may accept
         * QUERY and REGISTER yet refuse the command itself. */
        if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)
                && ncc_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
                && ncc_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
            ncc_domain.uses_membarrier = 1;
        }
    }
#endif
    ncc_domain.register_thread = register_thread;
    ncc_domain.retire = retire;
    ncc_domain.poll = poll;
    ncc_domain.synchronize = synchronize;
    ncc_domain.get_stats = get_stats;
    ncc_domain.in_region = in_region;
    st.pending_limit = NCC_QSBR_DEFAULT_LIMIT;
    st.pending_count_limit = NCC_QSBR_DEFAULT_COUNT_LIMIT;
    ncc_qsbr_dom = &ncc_domain;
    return &ncc_domain;
}
