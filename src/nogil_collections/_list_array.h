/* _list_array.h -- ConcurrentList's backing array and its lock-free reads.
 *
 * The symmetric counterpart of _dict_table.h.  docs/design.md ("ConcurrentList")
 * states the invariants and the memory-ordering argument of every path; each
 * atomic below names the operation it pairs with.
 *
 * Layout: one PyMem_RawMalloc'ed block per array: a 64-byte header (the
 * capacity; no slot shares its cache line) + slots.
 * Slots at and beyond `size` are always NULL.  A reader bounds-checks an index
 * against the capacity of the array it actually loaded.
 *
 * Two change counters, both seqlocks (seqlock.h), on different cache lines:
 *   version      bumped by STRUCTURAL changes: anything that moves items
 *                between indices, shrinks the list, or replaces the array
 *                (insert, delete, pop, sort, reverse, slice assignment,
 *                clear, a reallocating append/extend).  Every lock-free
 *                reader validates it.
 *   replace_seq  bumped by VALUE REPLACEMENTS (lst[i] = v, compare_and_set,
 *                update): one slot changes in place; and also, inside
 *                their version window, by the structural changes that move,
 *                replace or remove items (all but a pure reallocation), so
 *                that "no item changed index or value since" is ONE word to
 *                check (the batched iterator and `in`, per item).  Only
 *                readers that read several slots as one state (slices,
 *                snapshot, copy, comparisons, the iterator's runs) validate
 *                it; a single-item reader validates the slot it read
 *                instead (try-incref, then re-check that the slot still
 *                holds it).
 * An append/extend that fits in the array changes neither: it stores the new
 * slots, then the size with a release store.
 *
 * In-place reallocation (the growth or shrink of an array nobody else reads):
 * a writer may realloc() the array in place -- free the old block at once,
 * without a QSBR grace period -- only while `shared` is 0.  A thread that is
 * not the list's owner sets `shared` (seq_cst exchange) before its first
 * lock-free read of the array (ncl_reader_announce), and the writer checks
 * it (seq_cst load) after making the version odd with a seq_cst store; see
 * docs/design.md, "Growth and shrink policy; in-place resizing", for the argument.
 */
#ifndef NOGIL_COLLECTIONS_LIST_ARRAY_H
#define NOGIL_COLLECTIONS_LIST_ARRAY_H

#include <Python.h>
#include <stddef.h>
#include <string.h>
#include "atomics.h"
#include "refcount.h"
#include "seqlock.h"
#include "qsbr.h"
#include "faultinject.h"
#include "exact_eq.h"

typedef struct {
    /* Loaded by every lock-free reader (the bounds check against the array
     * actually loaded).  The slots start 64 bytes after it, so whatever the
     * block's alignment the capacity's cache line holds no slot: a value
     * replacement of lst[0] does not invalidate the line that readers of
     * every other index load. */
    Py_ssize_t capacity;
    char _pad[64 - sizeof(Py_ssize_t)];
    PyObject *items[1];
} ncl_array;

#define NCL_ARRAY_BYTES(cap) \
    (offsetof(ncl_array, items) + (size_t)(cap) * sizeof(PyObject *))

/* Optimistic attempts of a single-item read before it takes the lock. */
#define NCL_READ_RETRIES 8

/* Zeroed (slots at and beyond `size` are always NULL).  NULL on overflow or
 * out of memory; never called with cap <= 0. */
static ncl_array *ncl_array_new(Py_ssize_t cap) {
    if (cap > (Py_ssize_t)((PY_SSIZE_T_MAX - sizeof(ncl_array)) / sizeof(PyObject *))) {
        return NULL;
    }
    if (NCC_ALLOC_FAILS("list.array_alloc")) return NULL;
    ncl_array *a = (ncl_array *)PyMem_RawCalloc(1, NCL_ARRAY_BYTES(cap));
    if (a != NULL) {
        a->capacity = cap;
    }
    return a;
}

static void ncl_array_free(ncl_array *a) { PyMem_RawFree(a); }

/* realloc() an array that no reader can be inside (the caller proved it:
 * unshared list, or a GIL build); `a` may be NULL.  Slots [n, newcap) are
 * zeroed.  NULL on failure, `a` then unchanged. */
static ncl_array *ncl_array_regrow(ncl_array *a, Py_ssize_t n, Py_ssize_t newcap) {
    if (newcap > (Py_ssize_t)((PY_SSIZE_T_MAX - sizeof(ncl_array)) / sizeof(PyObject *))) {
        return NULL;
    }
    if (NCC_ALLOC_FAILS("list.array_alloc")) return NULL;
    ncl_array *na = (ncl_array *)PyMem_RawRealloc(a, NCL_ARRAY_BYTES(newcap));
    if (na == NULL) {
        return NULL;
    }
    if (a == NULL) {
        n = 0;
    }
    memset(&na->items[n], 0, (size_t)(newcap - n) * sizeof(PyObject *));
    na->capacity = newcap;
    return na;
}

/* Growth, as CPython's list_resize (Objects/listobject.c): about 1.125x plus
 * a constant, rounded to 4 slots.  `shared` lists grow by 1.25x instead:
 * their growth copies the array (readers may be inside the old one) and
 * retires the old block, so fewer steps pay off. */
static inline Py_ssize_t ncl_grow_capacity(Py_ssize_t newsize, Py_ssize_t oldsize, int shared) {
    if (newsize <= 0) {
        return 0;
    }
    if (newsize > PY_SSIZE_T_MAX / 2) {
        return newsize;
    }
    Py_ssize_t extra = shared ? (newsize >> 2) : (newsize >> 3);
    Py_ssize_t cap = (newsize + extra + 6) & ~(Py_ssize_t)3;
    /* A big jump (extend by many): no over-allocation beyond rounding. */
    if (newsize - oldsize > cap - newsize) {
        cap = (newsize + 3) & ~(Py_ssize_t)3;
    }
    return cap;
}

/* The hot fields.  Line A (version .. shared) is loaded by every reader and
 * stored only by structural writers, appends (size) and reallocations;
 * replace_seq, stored by every value replacement, is kept at least one
 * cache line away so that a replacement never invalidates a reader's copy
 * of line A. */
typedef struct {
    uint64_t version;      /* seqlock: structural changes */
    Py_ssize_t size;
    ncl_array *array;      /* NULL when capacity is 0 */
    /* Sticky: set once a thread other than the list's owner reads or writes
     * it.  Until then writers skip ncc_publish and may realloc in place. */
    uint32_t shared;
    char _pad_a[64];
    uint64_t replace_seq;  /* seqlock: value replacements */
} ncl_state;

/* ---------------------------------------------------------------- mutants */
/* Deliberately broken variants, switched on by tests only (the race
 * campaigns must catch them; tests/test_race_list.py).  0 = correct code. */
enum {
    NCL_MUTANT_NONE = 0,
    /* compare_and_set stores the new value into the slot before it has
     * compared the old one, and puts the old one back if the comparison
     * fails: harmless while every replacement bumped the global version
     * (readers retried), visible now that a replacement does not. */
    NCL_MUTANT_SPECULATIVE_CAS = 1,
};
static int ncl_mutant = NCL_MUTANT_NONE;
/* Set only while no other thread uses any list (tests, between runs). */
static void ncl_set_mutant(int m) { ncl_mutant = m; }

/* ---------------------------------------------------------------- threads */

/* An id of the calling thread, cheap on free-threaded builds. */
static inline uintptr_t ncl_thread_id(void) {
#ifdef Py_GIL_DISABLED
    return _Py_ThreadId();
#else
    return (uintptr_t)PyThread_get_thread_ident();
#endif
}

/* True if the calling thread does not own `op` (3.13t+: ob_tid).  On GIL
 * builds no reader runs concurrently with a writer: never foreign. */
static inline int ncl_foreign(PyObject *op) {
#ifdef Py_GIL_DISABLED
    /* Relaxed: ob_tid only changes from our id to 0 (merge) or was never
     * ours; either way a stale value only makes us announce earlier. */
    return (uintptr_t)ncc_load_ptr_relaxed((void **)&op->ob_tid) != _Py_ThreadId();
#else
    (void)op;
    return 0;
#endif
}

/* Readers: call before the first load of the version in every lock-free read.
 * A foreign thread marks the list shared, so that no writer reallocates the
 * array in place under it from then on. */
static inline void ncl_reader_announce(PyObject *self, ncl_state *s) {
#ifdef Py_GIL_DISABLED
    /* seq_cst load (a plain load on x86); pairs with the seq_cst exchange
     * below made by another foreign reader: see ncl_read_version. */
    if (__builtin_expect(ncc_load_uint32(&s->shared) == 0, 0) && ncl_foreign(self)) {
        /* seq_cst; pairs with the writer's seq_cst load of `shared` after its
         * seq_cst odd-version store in ncl_inplace_allowed (store-buffering:
         * the writer sees 1, or our next version load sees its odd value). */
        ncc_exchange_uint32(&s->shared, 1);
    }
#else
    (void)self;
    (void)s;
#endif
}

/* A reader's first load of the version.  seq_cst (a plain load on x86, ldar
 * on arm64, the same as acquire): it pairs with the release store in
 * ncc_seq_write_end like ncc_seq_read_begin, and, for in-place growth, with
 * the writer's seq_cst odd store: in the single total order, writer's odd
 * store < writer's load of `shared` (read 0) < the announcing exchange <=
 * our seq_cst load of `shared` < this load, so it returns that odd value or
 * a later one. */
static inline uint64_t ncl_read_version(ncl_state *s) {
    return ncc_load_uint64(&s->version);
}

/* Writers (lock held), before an in-place realloc: make the version odd with
 * a seq_cst store and decide whether realloc is allowed.  The caller then
 * ends the window with ncc_seq_write_end.  Returns 1 if no lock-free reader
 * can be inside the array (GIL build, or `shared` still 0). */
static inline int ncl_inplace_begin(ncl_state *s) {
    uint64_t x = ncc_load_uint64_relaxed(&s->version);
    /* seq_cst; pairs with the readers' seq_cst version load (ncl_read_version). */
    ncc_store_uint64(&s->version, x + 1);
    /* Release fence: the seqlock's writer side (as ncc_seq_write_begin). */
    ncc_fence_release();
#ifdef Py_GIL_DISABLED
    /* seq_cst; pairs with the seq_cst exchange in ncl_reader_announce. */
    return ncc_load_uint32(&s->shared) == 0;
#else
    return 1;
#endif
}

/* ---------------------------------------------------------------- readers */

enum { NCL_READ_OUT_OF_RANGE = 0, NCL_READ_GOT = 1, NCL_READ_LOCKED = -1 };

/* Failed optimistic attempts of single-item reads, process-wide (tests use
 * it to show which writes disturb which readers; _list._read_retries()).
 * Relaxed: a statistic.  Only touched on the retry path. */
static Py_ssize_t ncl_stat_read_retries = 0;
#define NCL_COUNT_RETRY() ((void)ncc_fetch_add_ssize_relaxed(&ncl_stat_read_retries, 1))
static Py_ssize_t ncl_take_read_retries(void) {
    return ncc_exchange_ssize(&ncl_stat_read_retries, 0);
}

/* Lock-free read of self[i] (negative i counts from the end).  Returns
 * NCL_READ_GOT with a new reference in *out, NCL_READ_OUT_OF_RANGE, or
 * NCL_READ_LOCKED when the caller must read under the lock (too many
 * disturbed attempts, or an item that was stored unpublished).  Never raises,
 * runs no Python code inside the read region.
 *
 * A value replacement of another slot does not disturb it (no counter it
 * loads changes); a replacement of the same slot between the slot load and
 * the re-check costs one retry; a structural change or reallocation that
 * overlaps the read costs one retry.  Bound: NCL_READ_RETRIES attempts,
 * then the lock. */
/* always_inline: the hottest read path (`lst[i]`); a call with six saved
 * registers cost ~2 ns against the builtin's inline list_get_item_ref. */
static inline __attribute__((always_inline))
int ncl_read_item(PyObject *self, ncl_state *s, Py_ssize_t i, PyObject **out) {
    ncl_reader_announce(self, s);
    for (int attempt = 0; attempt < NCL_READ_RETRIES; attempt++) {
        if (attempt > 0) {
            NCL_COUNT_RETRY();
        }
        uint64_t v = ncl_read_version(s);
        if (ncc_seq_is_writing(v)) {
            ncc_cpu_relax();
            continue;
        }
        /* Acquire; pairs with the release store of the size by an append
         * (_append_lh, _append_many_lh): the slots below the size we load
         * are filled.  Structural size changes are also validated by
         * `version`. */
        Py_ssize_t n = ncc_load_ssize_acquire(&s->size);
        Py_ssize_t j = i < 0 ? i + n : i;
        if ((size_t)j >= (size_t)n) {
            if (ncc_seq_read_validate(&s->version, v)) {
                return NCL_READ_OUT_OF_RANGE;
            }
            continue;
        }
        PyObject *r = NULL, *drop = NULL;
        int refused = 0;
        ncc_qsbr_thread *rec = ncc_read_begin();
        /* Acquire; pairs with the release store of the array pointer
         * (ncl_publish_array): the slots of the array we load are filled. */
        ncl_array *a = (ncl_array *)ncc_load_ptr_acquire((void **)&s->array);
        if (a != NULL && j < a->capacity) {
            /* Acquire; pairs with ncc_slot_store (release) by writers. */
            PyObject *o = ncc_load_obj_acquire(&a->items[j]);
            if (o != NULL) {
                if (ncc_try_incref(o)) {
                    /* seq_cst re-check (as _Py_TryIncrefCompare); pairs with
                     * the release store that replaced `o` (ncc_slot_store):
                     * ordered after the seq_cst CAS that took the reference,
                     * so a replacement made before it is seen here. */
                    if (ncc_load_obj(&a->items[j]) == o) {
                        r = o;
                    } else {
                        drop = o;
                    }
                } else {
                    /* Refused: dying (replaced meanwhile) or never published.
                     * seq_cst load, as the re-check above. */
                    refused = ncc_load_obj(&a->items[j]) == o;
                }
            }
        }
        ncc_read_end(rec);
        if (drop != NULL) {
            Py_DECREF(drop);   /* outside the region: may run __del__ */
        }
        if (r != NULL) {
            if (ncc_seq_read_validate(&s->version, v)) {
                *out = r;
                return NCL_READ_GOT;
            }
            Py_DECREF(r);
        } else if (refused && ncc_seq_read_validate(&s->version, v)) {
            /* The slot still holds an object try-incref refuses: it was
             * stored before the list was shared, unpublished.  The locked
             * read publishes it; retrying would fail the same way. */
            return NCL_READ_LOCKED;
        }
    }
    NCL_COUNT_RETRY();   /* the last attempt failed too: the lock */
    return NCL_READ_LOCKED;
}

/* Lock-free read of a run of up to `max` items starting at index `start`
 * (>= 0) into buf (new references), all checked against one structural
 * version and one replacement sequence; the latter is returned in *rv_out
 * for the caller to re-check later (ncl_run_still_valid).  Returns the
 * number read (0: at or past the end at that moment), or -1 if the caller
 * must fall back (disturbed, or an unpublished item).  One read region.
 *
 * With `match` non-NULL (`in`), the run stops at the first slot that holds
 * exactly `match`, without a reference to it, and sets *matched: that slot
 * is index start + (the number returned) in the validated state.  No ABA:
 * the caller holds a reference to `match`, so no other object can be at
 * its address. */
/* always_inline: each caller gets its own copy, with `match` a constant NULL
 * for the iterator (no identity test per item there). */
static inline __attribute__((always_inline))
Py_ssize_t ncl_read_run(PyObject *self, ncl_state *s, Py_ssize_t start,
                                      PyObject **buf, Py_ssize_t max, uint64_t *rv_out,
                                      PyObject *match, int *matched) {
    ncl_reader_announce(self, s);
    for (int attempt = 0; attempt < NCL_READ_RETRIES; attempt++) {
        uint64_t v = ncl_read_version(s);
        /* Acquire; pairs with the release store in ncc_seq_write_end of a
         * value replacement. */
        uint64_t rv = ncc_load_uint64_acquire(&s->replace_seq);
        if (ncc_seq_is_writing(v) || ncc_seq_is_writing(rv)) {
            ncc_cpu_relax();
            continue;
        }
        /* Acquire; pairs with the release store of the size by an append. */
        Py_ssize_t n = ncc_load_ssize_acquire(&s->size);
        Py_ssize_t want = n - start;
        if (want <= 0) {
            if (ncc_seq_read_validate(&s->version, v)) {
                *rv_out = rv;
                return 0;
            }
            continue;
        }
        if (want > max) {
            want = max;
        }
        Py_ssize_t got = 0;
        PyObject *drop = NULL;
        int refused = 0, hit = 0;
        ncc_qsbr_thread *rec = ncc_read_begin();
        /* Acquire; pairs with the release store in ncl_publish_array. */
        ncl_array *a = (ncl_array *)ncc_load_ptr_acquire((void **)&s->array);
        if (a != NULL && start + want <= a->capacity) {
            PyObject **slot = &a->items[start];
            for (; got < want; got++) {
                /* Acquire; pairs with ncc_slot_store (release). */
                PyObject *o = ncc_load_obj_acquire(&slot[got]);
                if (o == NULL) {
                    break;
                }
                if (o == match) {
                    hit = 1;
                    break;
                }
                if (ncc_is_immortal(o)) {
                    /* No reference to take, and no re-check: an immortal
                     * object is never freed, so the pointer cannot have
                     * been reused (the ABA case the re-check is for); the
                     * run's validation below covers the slot load. */
                    buf[got] = o;
                    continue;
                }
                if (!ncc_try_incref(o)) {
                    refused = ncc_load_obj(&slot[got]) == o;
                    break;
                }
                /* seq_cst re-check; pairs with ncc_slot_store (release), as
                 * in ncl_read_item. */
                if (ncc_load_obj(&slot[got]) != o) {
                    drop = o;
                    break;
                }
                buf[got] = o;
            }
        }
        ncc_read_end(rec);
        if (drop != NULL) {
            Py_DECREF(drop);
        }
        if ((got == want || hit)
                && ncc_seq_read_validate(&s->version, v)
                /* Relaxed after the acquire fence in the validation above:
                 * pairs with the release fence in ncc_seq_write_begin of a
                 * value replacement, as the version does. */
                && ncc_load_uint64_relaxed(&s->replace_seq) == rv) {
            *rv_out = rv;
            *matched = hit;
            return got;
        }
        for (Py_ssize_t k = 0; k < got; k++) {
            Py_DECREF(buf[k]);
        }
        if (refused && ncc_seq_read_validate(&s->version, v)) {
            break;
        }
    }
    return -1;
}

/* True if replace_seq did not move since a run read with rv: the items of
 * that run are still at their indices now (every write that replaces, moves
 * or removes an item moves replace_seq; appends and reallocations do not,
 * and change no item's index).  Acquire load (this decides whether buffered
 * references are still the list's current items); pairs with the release
 * store in ncc_seq_write_end of replace_seq, and the release fence in
 * ncc_seq_write_begin orders the odd value before the writer's slot
 * stores. */
static inline int ncl_run_still_valid(ncl_state *s, uint64_t rv) {
    return ncc_load_uint64_acquire(&s->replace_seq) == rv;
}

/* ---------------------------------------------------------------- iterator */

/* Items a forward iterator (and `in`) reads per validation. */
#define NCL_ITER_BATCH 32

/* The forward iterator's state (a field of _ConcurrentListIterator).
 *
 * Shared-iterator invariant (docs/design.md, "Shared iterators"): every
 * index is handed out by at most one next() call.  `index` is the next
 * UNCLAIMED index (-1 once exhausted); a thread claims indices only by a
 * CAS that moves it forward (ncl_iter_claim), so two claims never overlap.
 * The thread that created the iterator (`owner`) claims a range of up to
 * NCL_ITER_BATCH indices at once, [bstart + bpos, bend), and hands them out
 * from its read-ahead buffer with no atomic read-modify-write (the fast
 * path below); any other thread claims one index per next().  The fields
 * other than `index` and `owner` are touched only by the owner thread (and
 * by the GC, with the world stopped). */
typedef struct {
    Py_ssize_t index;          /* next unclaimed index; -1 once exhausted (CAS) */
    uintptr_t owner;
    ncl_state *ls;             /* the list's state; the iterator holds the list */
    Py_ssize_t bstart;         /* buf[j] holds the item read at index bstart + j */
    Py_ssize_t bpos;           /* buf[0:bpos] handed out, buf[bpos:blen] owned */
    Py_ssize_t blen;
    Py_ssize_t bend;           /* the owner's claim ends here: bstart + blen <= bend */
    uint64_t brv;              /* the replace_seq the run was validated against */
    PyObject *buf[NCL_ITER_BATCH];
} ncl_iter_state;

/* The fast path of next(): 1 and a new reference in *out to the next
 * buffered item if the calling thread owns the batch and the run is still
 * valid (ncl_run_still_valid: the item is the one at that index now); else
 * 0 (the caller takes the slow path, which refills or raises).  The owner
 * claimed the buffered indices when it read them (ncl_iter_claim), so
 * handing one out needs no atomic read-modify-write.  A flag rather than a
 * NULL result: a buffered item is never NULL, and the caller then needs no
 * test of it. */
static inline int ncl_iter_fast_next(ncl_iter_state *st, PyObject **out) {
    /* owner first, relaxed: the owner clears it while it refills the buffer
     * (see _refill) and restores it; a foreign thread only compares it with
     * its own id, and then never reads the owner-only fields below. */
    if ((uintptr_t)ncc_load_ptr_relaxed((void **)&st->owner) != ncl_thread_id()) {
        return 0;
    }
    Py_ssize_t p = st->bpos;
    if (p >= st->blen || !ncl_run_still_valid(st->ls, st->brv)) {
        return 0;
    }
    st->bpos = p + 1;
    *out = st->buf[p];
    return 1;
}

/* Claim up to `want` (>= 1) consecutive indices of a shared iterator's
 * cursor `*index` (forward: step +1, reverse: step -1): returns the first
 * one, or -1 if the iterator is exhausted.  seq_cst CAS; it pairs with the
 * other claimers' CASes and with the exhausting store (ncl_iter_exhaust):
 * all of them are read-modify-writes or stores of one location, so they
 * are totally ordered, and no two claims overlap.  A forward claim takes
 * [i, i + want); a reverse one (want is 1) takes i. */
static inline Py_ssize_t ncl_iter_claim(Py_ssize_t *index, Py_ssize_t want, int step) {
    /* Relaxed: only a first guess, the CAS below re-checks it. */
    Py_ssize_t i = ncc_load_ssize_relaxed(index);
    for (;;) {
        if (i < 0) {
            return -1;
        }
        if (ncc_cas_ssize(index, &i, step > 0 ? i + want : i - 1)) {
            return i;
        }
    }
}

/* Claim a forward run for the owner: as many indices as the list has from
 * the cursor on (at least 1, at most `max`), so that a claim does not reach
 * past the end of an unchanged list; *want_out gets the number claimed. */
static inline Py_ssize_t ncl_iter_claim_run(Py_ssize_t *index, ncl_state *s, Py_ssize_t max,
                                            Py_ssize_t *want_out) {
    /* Relaxed: only a first guess, the CAS below re-checks it. */
    Py_ssize_t i = ncc_load_ssize_relaxed(index);
    for (;;) {
        if (i < 0) {
            return -1;
        }
        /* Relaxed: only sizes the claim; the run read validates what it
         * reads. */
        Py_ssize_t want = ncc_load_ssize_relaxed(&s->size) - i;
        want = want < 1 ? 1 : want > max ? max : want;
        /* seq_cst CAS: see ncl_iter_claim. */
        if (ncc_cas_ssize(index, &i, i + want)) {
            *want_out = want;
            return i;
        }
    }
}

/* Claim a reverse run for the owner of a reverse iterator: the indices
 * (i - w, i] for the cursor i and w = min(max, i + 1); returns i (-1:
 * exhausted) and the claim's exclusive lower end in *stop_out.  seq_cst CAS:
 * see ncl_iter_claim. */
static inline Py_ssize_t ncl_iter_claim_down(Py_ssize_t *index, Py_ssize_t max,
                                             Py_ssize_t *stop_out) {
    /* Relaxed: only a first guess, the CAS below re-checks it. */
    Py_ssize_t i = ncc_load_ssize_relaxed(index);
    for (;;) {
        if (i < 0) {
            return -1;
        }
        Py_ssize_t w = i + 1 < max ? i + 1 : max;
        if (ncc_cas_ssize(index, &i, i - w)) {
            *stop_out = i - w;
            return i;
        }
    }
}

/* Mark a shared cursor exhausted: every later claim fails.  seq_cst store;
 * pairs with the claimers' CAS (ncl_iter_claim). */
static inline void ncl_iter_exhaust(Py_ssize_t *index) {
    ncc_store_ssize(index, -1);
}

/* Owner thread only: empty the batch, moving the references it still owns
 * into `out` (at least NCL_ITER_BATCH slots); returns their number.  The
 * owner keeps its claim on those indices (bstart moves to the first of
 * them), so the next refill reads them again.  The caller releases the
 * references once the state is consistent again (a __del__ may call next()
 * on the same iterator). */
static inline Py_ssize_t ncl_iter_take_batch(ncl_iter_state *st, PyObject **out) {
    Py_ssize_t m = st->blen - st->bpos;
    if (m > 0) {
        memcpy(out, &st->buf[st->bpos], (size_t)m * sizeof(PyObject *));
    } else {
        m = 0;
    }
    st->bstart += st->bpos;
    st->bpos = st->blen = 0;
    return m;
}

/* What `in` knows about its operand before the scan: an exact compact int
 * or an exact str can be compared with an item of the same exact type here
 * (exact_eq.h), without PyObject_RichCompareBool: the same result, and no
 * Python code can run, which is what the per-item call would cost.  Any
 * other pair goes through PyObject_RichCompareBool. */
enum { NCL_EQ_GENERIC = 0, NCL_EQ_INT = 1, NCL_EQ_STR = 2 };

static inline int ncl_eq_kind(PyObject *value) {
    Py_ssize_t v;
    if (PyLong_CheckExact(value) && ncc_int_compact(value, &v)) {
        return NCL_EQ_INT;
    }
    if (PyUnicode_CheckExact(value)) {
        return NCL_EQ_STR;
    }
    return NCL_EQ_GENERIC;
}

/* item == value for the kinds above: 1 or 0; -1 if the pair needs the
 * generic comparison (item of another type). */
static inline int ncl_eq_inline(PyObject *item, PyObject *value, int kind) {
    if (kind == NCL_EQ_INT) {
        if (Py_TYPE(item) != &PyLong_Type) {
            return -1;
        }
        Py_ssize_t vi, vv;
        (void)ncc_int_compact(value, &vv);   /* compact: ncl_eq_kind */
        return ncc_int_compact(item, &vi) && vi == vv;
    }
    if (kind == NCL_EQ_STR) {
        if (Py_TYPE(item) != &PyUnicode_Type) {
            return -1;
        }
        return ncc_str_eq(item, value);
    }
    return -1;
}

/* `value in list`: 1, 0, or -1 with an exception set (from __eq__).  Reads
 * runs (ncl_read_run) and compares each item only while its run is still
 * valid, so every comparison is against the item at that index at that
 * moment, as an item-by-item scan.  `item_ref(self, i)` is the item-by-item
 * read with the locked fallback (new reference, or NULL: out of range; never
 * raises), used when a run cannot be read.  No region is held while __eq__
 * runs. */
static int ncl_contains(PyObject *self, ncl_state *s, PyObject *value,
                        PyObject *(*item_ref)(PyObject *, Py_ssize_t)) {
    PyObject *buf[NCL_ITER_BATCH];
    Py_ssize_t i = 0;
    uint64_t rv = 0;
    int kind = ncl_eq_kind(value);
    for (;;) {
        int matched = 0;
        Py_ssize_t got = ncl_read_run(self, s, i, buf, NCL_ITER_BATCH, &rv, value, &matched);
        if (got == 0 && !matched) {
            return 0;
        }
        if (got < 0) {
            PyObject *r = item_ref(self, i);
            if (r == NULL) {
                return 0;
            }
            buf[0] = r;
            got = 1;
        }
        Py_ssize_t k = 0;
        int cmp = 0;
        while (k < got) {
            if (k > 0 && !ncl_run_still_valid(s, rv)) {
                break;   /* changed: re-read from index i + k */
            }
            cmp = ncl_eq_inline(buf[k], value, kind);
            if (cmp < 0) {
                cmp = PyObject_RichCompareBool(buf[k], value, Py_EQ);
            }
            Py_DECREF(buf[k]);
            k++;
            if (cmp != 0) {
                break;
            }
        }
        for (Py_ssize_t j = k; j < got; j++) {
            Py_DECREF(buf[j]);
        }
        if (cmp != 0) {
            return cmp;
        }
        /* The run stopped at a slot holding `value` itself, and every item
         * before it compared unequal: if the run is still valid, `value` is
         * at index i + got now, which is what `==` would have found
         * (PyObject_RichCompareBool tests identity first), without taking
         * a reference to it.  If it is not, re-read from there. */
        if (matched && k == got && (got == 0 || ncl_run_still_valid(s, rv))) {
            return 1;
        }
        i += k;
    }
}

#endif /* NOGIL_COLLECTIONS_LIST_ARRAY_H */
