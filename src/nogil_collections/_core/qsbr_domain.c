/* qsbr_domain.c -- the one process-wide QSBR domain (see qsbr.h and
 * docs/design.md, "Memory reclamation").  Compiled into the extension module
 * nogil_collections._core._qsbr, which exports it through a capsule.
 *
 * Locks: `registry_lock` guards record allocation/reuse; `pending_lock` guards
 * the retired list.  Neither is ever taken inside a read region, and neither
 * is held while Python code runs.  Plain pthread mutexes: they must work on
 * 3.11 (no PyMutex) and from pthread TLS destructors (no thread state).
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
 * with the acquire load in scan_min_seq), records are never freed. */
static ncc_qsbr_thread *records_head = NULL;
static ncc_retired *pending_head = NULL, *pending_tail = NULL;
static ncc_qsbr_stats st;     /* counters; guarded by pending_lock / registry_lock */
/* Default bound on retired-but-unfreed bytes before a writer waits for
 * readers (docs/design.md).  Adjustable for tests via _debug. */
#define NCC_QSBR_DEFAULT_LIMIT ((Py_ssize_t)1 << 20)

/* ------------------------------------------------------------------ */
/* thread registration                                                 */
/* ------------------------------------------------------------------ */

static void unregister_thread(void *arg) {
    ncc_qsbr_thread *rec = (ncc_qsbr_thread *)arg;
    /* A thread exits outside any read region, so rec->seq is already 0; store
     * it again (release) anyway so a record is never reused while "online". */
    ncc_store_uint64_release(&rec->seq, 0);
    rec->depth = 0;
    rec->ops = 0;
    pthread_mutex_lock(&registry_lock);
    rec->in_use = 0;
    st.registered_threads--;
    pthread_mutex_unlock(&registry_lock);
}

static ncc_qsbr_thread *register_thread(void) {
    ncc_qsbr_thread *rec;
    pthread_mutex_lock(&registry_lock);
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
    rec->depth = 0;
    rec->ops = 0;
    st.registered_threads++;
    pthread_mutex_unlock(&registry_lock);
    /* The destructor runs at thread exit (not for the main thread, which
     * never exits before the process). */
    pthread_setspecific(thread_key, rec);
    return rec;
}

/* ------------------------------------------------------------------ */
/* reclamation                                                         */
/* ------------------------------------------------------------------ */

/* Make every reader's region-entry store visible before we scan.  With
 * membarrier: promotes each running thread's compiler barrier in
 * ncc_read_begin to a full fence.  Otherwise: a seq_cst fence pairing with the
 * seq_cst fence after the reader's store of rec->seq. */
static void reader_fence(void) {
#if defined(__linux__)
    if (ncc_domain.uses_membarrier) {
        if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
        /* Cannot fail once registered; if it ever does, fall through to a fence
         * (unsafe alone, so switch all readers to the fence protocol first). */
    }
#endif
    ncc_fence_seq_cst();
}

/* Smallest seq among online readers, or UINT64_MAX if none is online.
 * Caller has run reader_fence(). */
static uint64_t scan_min_seq(void) {
    uint64_t min = UINT64_MAX;
    /* Acquire; pairs with the release store of records_head in register_thread. */
    for (ncc_qsbr_thread *r = (ncc_qsbr_thread *)ncc_load_ptr_acquire((void **)&records_head);
         r != NULL; r = r->next) {
        /* Acquire; pairs with the release store of 0 in ncc_read_end. */
        uint64_t s = ncc_load_uint64_acquire(&r->seq);
        if (s != 0 && s < min) min = s;
    }
    return min;
}

/* Free entries whose goal <= min_seq.  Caller holds pending_lock. */
static void free_safe_locked(uint64_t min_seq) {
    ncc_retired **pp = &pending_head, *e, *prev = NULL;
    while ((e = *pp) != NULL) {
        if (e->goal <= min_seq) {
            *pp = e->next;
            st.pending_bytes -= (Py_ssize_t)e->nbytes;
            st.pending_count--;
            st.freed_bytes += e->nbytes;
            st.freed_count++;
            PyMem_RawFree(e->ptr);
            PyMem_RawFree(e);
        } else {
            prev = e;
            pp = &e->next;
        }
    }
    pending_tail = prev;
    /* Relaxed: readers use it as a hint only (ncc_read_end). */
    ncc_store_ssize_relaxed(&ncc_domain.pending_count, st.pending_count);
}

static void poll(void) {
    /* Cheap check, then never block: another thread is already reclaiming. */
    if (ncc_load_ssize_relaxed(&ncc_domain.pending_count) == 0) return;
    if (pthread_mutex_trylock(&pending_lock) != 0) return;
    st.poll_count++;
    reader_fence();
    free_safe_locked(scan_min_seq());
    pthread_mutex_unlock(&pending_lock);
}

static int current_thread_in_region(void) {
    ncc_qsbr_thread *rec = (ncc_qsbr_thread *)pthread_getspecific(thread_key);
    return rec != NULL && rec->depth != 0;
}

/* Spin (yielding) until every online reader has seq >= goal.  Read regions
 * never block, so this ends as soon as each reader that was inside a region
 * leaves it.  Returns the minimum seq observed. */
static uint64_t wait_for_readers(uint64_t goal) {
    for (;;) {
        reader_fence();
        uint64_t min = scan_min_seq();
        if (min >= goal) return min;
        sched_yield();
    }
}

static void synchronize(void) {
    if (current_thread_in_region()) {
        /* Waiting would wait for ourselves.  Containers never retire from
         * inside a region; stay safe if a future caller does. */
        poll();
        return;
    }
    pthread_mutex_lock(&pending_lock);
    st.synchronize_count++;
    /* Every entry queued so far has goal <= target. */
    uint64_t target = ncc_load_uint64(&ncc_domain.wr_seq);
    free_safe_locked(wait_for_readers(target));
    pthread_mutex_unlock(&pending_lock);
}

static void retire(void *ptr, size_t nbytes) {
    if (ptr == NULL) return;
#if !NCC_FREE_THREADED
    /* GIL build: no read region can be active in another thread (regions never
     * release the GIL), and we are not in one ourselves. */
    pthread_mutex_lock(&pending_lock);
    st.retired_count++; st.freed_count++;
    st.retired_bytes += nbytes; st.freed_bytes += nbytes;
    pthread_mutex_unlock(&pending_lock);
    PyMem_RawFree(ptr);
    return;
#else
    /* seq_cst fetch-add (returns the old value).  It is a release operation
     * ordered after the caller's release store that unpublished ptr; pairs
     * with the acquire load of wr_seq in ncc_read_begin: a reader whose seq
     * is >= goal can only load the replacement, never ptr. */
    uint64_t goal = ncc_fetch_add_uint64(&ncc_domain.wr_seq, 2) + 2;
    ncc_retired *e = (ncc_retired *)PyMem_RawMalloc(sizeof(ncc_retired));
    if (e == NULL) {
        /* No memory to queue it: wait until no reader can hold it. */
        wait_for_readers(goal);
        PyMem_RawFree(ptr);
        return;
    }
    e->goal = goal;
    e->ptr = ptr;
    e->nbytes = nbytes;
    e->next = NULL;
    pthread_mutex_lock(&pending_lock);
    if (pending_tail) pending_tail->next = e; else pending_head = e;
    pending_tail = e;
    st.retired_count++;
    st.retired_bytes += nbytes;
    st.pending_count++;
    st.pending_bytes += (Py_ssize_t)nbytes;
    if (st.pending_bytes > st.max_pending_bytes) st.max_pending_bytes = st.pending_bytes;
    ncc_store_ssize_relaxed(&ncc_domain.pending_count, st.pending_count);
    int over = st.pending_bytes > st.pending_limit;
    pthread_mutex_unlock(&pending_lock);
    if (over) synchronize(); else poll();
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

/* Test hooks (nogil_collections._debug). */
static void ncc_qsbr_set_limit(Py_ssize_t limit) {
    pthread_mutex_lock(&pending_lock);
    st.pending_limit = limit;
    pthread_mutex_unlock(&pending_lock);
}
static void ncc_qsbr_reset_high_water(void) {
    pthread_mutex_lock(&pending_lock);
    st.max_pending_bytes = st.pending_bytes;
    pthread_mutex_unlock(&pending_lock);
}

static ncc_qsbr_domain *ncc_qsbr_domain_init(void) {
    static int initialised = 0;
    if (initialised) return &ncc_domain;
    initialised = 1;
    ncc_domain.wr_seq = 1;
    ncc_domain.pending_count = 0;
    ncc_domain.uses_membarrier = 0;
#if NCC_FREE_THREADED && defined(__linux__)
    const char *off = getenv("NOGIL_COLLECTIONS_NO_MEMBARRIER");
    if (!(off && off[0] && off[0] != '0')) {
        long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)
                && syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
            ncc_domain.uses_membarrier = 1;
        }
    }
#endif
    ncc_domain.register_thread = register_thread;
    ncc_domain.retire = retire;
    ncc_domain.poll = poll;
    ncc_domain.synchronize = synchronize;
    ncc_domain.get_stats = get_stats;
    st.pending_limit = NCC_QSBR_DEFAULT_LIMIT;
    pthread_key_create(&thread_key, unregister_thread);
    ncc_qsbr_dom = &ncc_domain;
    return &ncc_domain;
}
