/* seqlock.h -- the container version counter (a sequence lock).
 *
 * Writers (holding the container's critical section) make the version odd
 * before touching anything readers can see and even again afterwards; a
 * reader that saw the same even version before and after its loads knows no
 * writer touched the container in between, so what it read is a consistent
 * snapshot (this is what makes multi-slot reads -- slices, snapshot(),
 * comparisons -- linearizable without a lock).
 *
 * Memory ordering follows Boehm, "Can seqlocks get along with programming
 * language memory models?" (MSPC 2012):
 *   writer: v = v + 1 (relaxed); fence(release); data stores; store(v + 1, release)
 *   reader: v1 = load(v, acquire); data loads; fence(acquire); v2 = load(v, relaxed)
 * The writer's release fence pairs with the reader's acquire fence: if any
 * data load saw a store made after the writer's fence, the reader's second
 * load of v sees the odd value (or later) and the read is retried.
 *
 * Rule: never run Python code (a decref that may reach zero, __eq__, a key
 * function) while the version is odd -- readers spin on an odd version, and a
 * critical section suspended while odd would let another writer in.
 */
#ifndef NOGIL_COLLECTIONS_SEQLOCK_H
#define NOGIL_COLLECTIONS_SEQLOCK_H

#include "atomics.h"

static inline void ncc_seq_write_begin(uint64_t *v) {
    /* Relaxed: only writers (serialised by the container lock) store v. */
    uint64_t x = ncc_load_uint64_relaxed(v);
    ncc_store_uint64_relaxed(v, x + 1);
    /* Release fence; pairs with the acquire fence in ncc_seq_read_validate. */
    ncc_fence_release();
}

static inline void ncc_seq_write_end(uint64_t *v) {
    uint64_t x = ncc_load_uint64_relaxed(v);
    /* Release; pairs with the acquire load in ncc_seq_read_begin: a reader
     * that sees the new even value sees every store of this write. */
    ncc_store_uint64_release(v, x + 1);
}

/* Returns the version; odd means a writer is active (caller retries). */
static inline uint64_t ncc_seq_read_begin(uint64_t *v) {
    /* Acquire; pairs with the release store in ncc_seq_write_end. */
    return ncc_load_uint64_acquire(v);
}

static inline int ncc_seq_is_writing(uint64_t version) { return (version & 1) != 0; }

/* True if no writer ran since ncc_seq_read_begin returned `start` (even). */
static inline int ncc_seq_read_validate(uint64_t *v, uint64_t start) {
    /* Acquire fence; pairs with the release fence in ncc_seq_write_begin. */
    ncc_fence_acquire();
    return ncc_load_uint64_relaxed(v) == start;
}

#endif /* NOGIL_COLLECTIONS_SEQLOCK_H */
