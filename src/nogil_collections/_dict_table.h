/* _dict_table.h -- ConcurrentDict's hash table and its lock-free probe.
 *
 * Layout (docs/design.md, "ConcurrentDict"): one PyMem_RawMalloc'ed block per
 * table, as CPython's PyDictKeysObject (Objects/dictobject.c):
 *
 *     ncd_table header | indices[size] | entries[capacity]
 *
 * Indices are int8 for size <= 128, int16 for size <= 2^15, else int32 (the
 * widths CPython's dict uses), which keeps memory per entry close to dict's.
 *
 * indices[i] is NCD_EMPTY, NCD_DUMMY (a deleted entry) or an entry number.
 * Entries are appended in insertion order and NEVER reused inside a table: a
 * deleted entry stays a tombstone (value NULL) until a resize copies the live
 * entries into a new table.  An index slot goes EMPTY -> ix -> DUMMY, and a
 * single-key insert may name a new entry in a DUMMY slot again (slot reuse,
 * docs/design.md), but a slot never goes back to EMPTY and only an appended
 * entry takes an EMPTY one, so a probe sequence always ends at an EMPTY slot
 * (nentries <= capacity = 2/3 size leaves >= 1/3 of the slots EMPTY forever).
 *
 * Two entry layouts, chosen per table by its `pinned` flag (below):
 *   - pinned tables: ncd_entry {key, value}, 16 bytes, as CPython's
 *     unicode-keys tables (PyDictUnicodeEntry).  No hash is stored: a str
 *     key's hash is the one cached in the str object (computed before the
 *     key is inserted, never changed), an exact int's is recomputed from its
 *     value (ncd_pinned_hash), and ints compare by value;
 *   - generic tables: ncd_hentry {key, value, hash}, 24 bytes, as CPython's
 *     PyDictKeyEntry: the hash filters collisions without touching the key.
 * Key and value sit at the same offsets in both, so code that touches only
 * them works on the ncd_entry * that ncd_entry_at() returns for either.
 *
 * "Pinned" tables: a table whose `pinned` flag is set (fixed at creation)
 * only ever holds exact str and exact int keys, and it keeps a strong
 * reference to every key it ever held -- a deleted entry keeps its key --
 * until the table itself is dropped, which happens only after
 * ncc_qsbr_dom->synchronize() proved that no reader is still inside a read
 * region that may have loaded the table.  Consequently a reader inside a
 * region may dereference (compare) any key it loads from a pinned table
 * WITHOUT taking a reference to it: no refcount traffic on shared keys, which
 * is what lets reads scale.  str and int have no finalizer and no weakrefs,
 * so deferring their decref is unobservable.  Inserting any other key turns
 * the table into a generic one (by a resize, like CPython's unicode->generic
 * conversion); in a generic table readers try-incref a key before comparing
 * and deleted keys are released at once.
 *
 * Concurrency: writers hold the dict's critical section and bracket every
 * change readers can see with the seqlock (seqlock.h).  Readers follow the
 * protocol in ncd_probe_run; everything they load from a table is loaded
 * inside a QSBR read region (qsbr.h), and a table is only freed through
 * ncc_retire or after synchronize().
 */
#ifndef NOGIL_COLLECTIONS_DICT_TABLE_H
#define NOGIL_COLLECTIONS_DICT_TABLE_H

#include <Python.h>
#include <string.h>
#include "atomics.h"
#include "refcount.h"
#include "seqlock.h"
#include "qsbr.h"
#include "faultinject.h"
#include "exact_eq.h"


#define NCD_EMPTY (-1)
#define NCD_DUMMY (-2)
#define NCD_MINSIZE_LOG2 3
#define NCD_MAXSIZE_LOG2 30      /* int32 indices; 2^30 slots = 700M entries */
#define NCD_PERTURB_SHIFT 5

/* An entry of a pinned table (16 bytes), and the key/value prefix of a
 * generic table's entry. */
typedef struct {
    PyObject *key;        /* atomic: set once; NULL'ed on delete in generic tables */
    PyObject *value;      /* atomic: replaced by setitem, NULL'ed on delete */
} ncd_entry;

/* An entry of a generic table (24 bytes). */
typedef struct {
    ncd_entry kv;
    Py_hash_t hash;       /* written before the entry is published, never changed */
} ncd_hentry;

/* A slot of a consistent copy's buffer (ncd_collect): never part of a
 * table, so it carries the hash whatever the table kind was. */
typedef struct {
    PyObject *key;
    PyObject *value;
    Py_hash_t hash;       /* only filled with NCD_WANT_HASHES */
} ncd_item;

typedef struct {
    /* ---- read by every lookup; written only while the table is private ---- */
    Py_ssize_t mask;          /* index slots - 1 (power of two - 1) */
    Py_ssize_t capacity;      /* entries that fit: USABLE_FRACTION(size) */
    void *indices;
    void *entries;            /* ncd_entry[] if pinned, else ncd_hentry[] */
    int pinned;               /* immutable, see the file comment */
    int index_bytes;          /* 1, 2 or 4 */
    size_t nbytes;            /* the whole block, for ncc_retire / __sizeof__ */
    /* Inserts and deletes store the fields below: NCD_HDR_GAP bytes keep
     * them off every cache line that holds a field above (the block is only
     * 16-byte aligned, so 48 + 64 bytes), or every insert would make every
     * lookup miss on the table header (docs/design.md, "Object layout"). */
    char _gap[64];
    Py_ssize_t nentries;      /* appended entries incl. tombstones (atomic) */
    Py_ssize_t live_end;      /* writer only: entries >= live_end are tombstones */
    Py_ssize_t ndead_pinned;  /* writer only: tombstones that still hold a key */
} ncd_table;

/* The words every writer stores: the seqlock of every change and the live
 * count.  They live INSIDE the dict's writer-lock object (_WriterLock in
 * _dict.pyx), right after its header, on the cache line that holds the
 * lock's mutex (ob_mutex): a writer has to own that line to take and
 * release the lock anyway, so a write moves one line between writer threads
 * instead of two (docs/design.md, "Object layout").  Only writers (under
 * the lock), consistent copies (ncd_collect) and len() load them. */
typedef struct {
    uint64_t version;         /* seqlock of every change (consistent copies) */
    Py_ssize_t used;          /* live entries (atomic, relaxed) */
} ncd_wwords;

/* The words every lookup loads: `tseq` and `table` (and `w`, constant).
 * Only changes that concern every key store them: a table replacement
 * (resize, clear) and a multi-key batch (update of >= 2 keys); single-key
 * writes store only the writer words, which are in another object
 * (docs/design.md, "Readers: who disturbs whom").
 * Aligned to 64 bytes: the words fill the start of a line of their own, and
 * the dict object's size is a multiple of 64 (256 bytes), which mimalloc
 * serves from a size class whose blocks are 64-byte aligned, so no
 * neighbouring heap object's header (reference counts other threads write)
 * shares the line (docs/design.md, memory layout). */
typedef struct {
    uint64_t tseq;            /* seqlock of table-wide changes (point readers) */
    ncd_table *table;         /* atomic; release-published inside a tseq window */
    ncd_wwords *w;            /* set before the dict is shared, never changed */
} __attribute__((aligned(64))) ncd_hot;

static inline Py_ssize_t ncd_usable(Py_ssize_t size) { return (size << 1) / 3; }

/* Smallest log2 size whose usable fraction holds `minused` entries. */
static inline int ncd_log2_for(Py_ssize_t minused) {
    int l = NCD_MINSIZE_LOG2;
    while (l <= NCD_MAXSIZE_LOG2 && ncd_usable((Py_ssize_t)1 << l) < minused) l++;
    return l;
}

/* Bytes per entry of a table of that kind. */
static inline size_t ncd_entry_size(int pinned) {
    return pinned ? sizeof(ncd_entry) : sizeof(ncd_hentry);
}

/* A new empty table, or NULL (no exception set) on failure or overflow. */
static ncd_table *ncd_table_new(int log2size, int pinned) {
    if (log2size > NCD_MAXSIZE_LOG2) return NULL;
    if (NCC_ALLOC_FAILS("dict.table_alloc")) return NULL;
    Py_ssize_t size = (Py_ssize_t)1 << log2size;
    Py_ssize_t capacity = ncd_usable(size);
    size_t hdr = (sizeof(ncd_table) + 15) & ~(size_t)15;
    int index_bytes = log2size <= 7 ? 1 : (log2size <= 15 ? 2 : 4);
    size_t ibytes = ((size_t)size * (size_t)index_bytes + 15) & ~(size_t)15;
    size_t esize = ncd_entry_size(pinned);
    size_t nbytes = hdr + ibytes + (size_t)capacity * esize;
    ncd_table *t = (ncd_table *)PyMem_RawMalloc(nbytes);
    if (t == NULL) return NULL;
    memset(t, 0, sizeof(ncd_table));
    t->nbytes = nbytes;
    t->mask = size - 1;
    t->capacity = capacity;
    t->nentries = 0;
    t->live_end = 0;
    t->ndead_pinned = 0;
    t->pinned = pinned;
    t->index_bytes = index_bytes;
    t->indices = (void *)((char *)t + hdr);
    t->entries = (void *)((char *)t + hdr + ibytes);
    memset(t->indices, 0xff, (size_t)size * (size_t)index_bytes);   /* all NCD_EMPTY */
    /* entries[ix] for ix >= nentries is never read. */
    return t;
}

/* Cached hash of an exact str, or -1 if not computed yet. */
static inline Py_hash_t ncd_str_cached_hash(PyObject *s) {
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15: the public accessor, the same relaxed load on free-threaded
     * builds (Include/cpython/unicodeobject.h 3.15.0rc2:303). */
    return PyUnstable_Unicode_GET_CACHED_HASH(s);
#else
    /* Relaxed: the hash is computed idempotently by whichever thread gets
     * there first (unicode_hash, Objects/unicodeobject.c 3.14.7:12003); any
     * value we see is either -1 or final.  PyASCIIObject.hash: 3.14.7
     * Include/cpython/unicodeobject.h:101. */
    return ncc_load_ssize_relaxed(&((PyASCIIObject *)s)->hash);
#endif
}

/* The hash of a key of a pinned table (an exact str or an exact int), which
 * such tables do not store.  A str's is the hash cached in the object: every
 * key's hash is computed before it is inserted (_hash in _dict.pyx) and a
 * str's cached hash never changes once set; a reader that reached the key
 * through the index slot's acquire load sees it set (read-read coherence:
 * the inserting writer read it before its release store of the index).  An
 * int's is long_hash's: the value itself for a compact int (-1 -> -2), else
 * long_hash, which runs no Python code and cannot fail (Objects/longobject.c). */
static inline Py_hash_t ncd_pinned_hash(PyObject *key) {
    Py_ssize_t v;
    if (PyUnicode_CheckExact(key)) return ncd_str_cached_hash(key);
    if (ncc_int_compact(key, &v)) return v == -1 ? -2 : (Py_hash_t)v;
    return PyLong_Type.tp_hash(key);
}

/* Entry ix of `entries` with entries of `esize` bytes: its key/value part
 * (an ncd_hentry begins with its ncd_entry, so the cast back to ncd_hentry
 * is valid for a generic table).  One multiply-add, no branch: the probe
 * loads esize once per call. */
static inline __attribute__((always_inline)) ncd_entry *
ncd_entry_in(void *entries, size_t esize, Py_ssize_t ix) {
    return (ncd_entry *)((char *)entries + (size_t)ix * esize);
}

static inline ncd_entry *ncd_entry_at(ncd_table *t, Py_ssize_t ix) {
    return ncd_entry_in(t->entries, ncd_entry_size(t->pinned), ix);
}

/* The hash of entry ix, whose key is present (a live entry, or a pinned
 * tombstone, which keeps its key). */
static inline Py_hash_t ncd_entry_hash(ncd_table *t, Py_ssize_t ix) {
    if (t->pinned) return ncd_pinned_hash(((ncd_entry *)t->entries)[ix].key);
    return ((ncd_hentry *)t->entries)[ix].hash;
}

/* Index slot accessors.  The width is fixed per table, so the switch is
 * perfectly predicted.  Acquire loads pair with ncd_ix_store_release. */
#define NCD_IX_SWITCH(t, EXPR8, EXPR16, EXPR32)                 \
    switch ((t)->index_bytes) {                                  \
    case 1: EXPR8; break;                                        \
    case 2: EXPR16; break;                                       \
    default: EXPR32; break;                                      \
    }

static inline int ncd_ix_load_acquire(ncd_table *t, size_t i) {
    int r;
    NCD_IX_SWITCH(t,
        r = __atomic_load_n(&((int8_t *)t->indices)[i], __ATOMIC_ACQUIRE),
        r = __atomic_load_n(&((int16_t *)t->indices)[i], __ATOMIC_ACQUIRE),
        r = __atomic_load_n(&((int32_t *)t->indices)[i], __ATOMIC_ACQUIRE))
    return r;
}
static inline int ncd_ix_load_relaxed(ncd_table *t, size_t i) {
    int r;
    NCD_IX_SWITCH(t,
        r = __atomic_load_n(&((int8_t *)t->indices)[i], __ATOMIC_RELAXED),
        r = __atomic_load_n(&((int16_t *)t->indices)[i], __ATOMIC_RELAXED),
        r = __atomic_load_n(&((int32_t *)t->indices)[i], __ATOMIC_RELAXED))
    return r;
}
static inline void ncd_ix_store_release(ncd_table *t, size_t i, int v) {
    NCD_IX_SWITCH(t,
        __atomic_store_n(&((int8_t *)t->indices)[i], (int8_t)v, __ATOMIC_RELEASE),
        __atomic_store_n(&((int16_t *)t->indices)[i], (int16_t)v, __ATOMIC_RELEASE),
        __atomic_store_n(&((int32_t *)t->indices)[i], (int32_t)v, __ATOMIC_RELEASE))
}

/* Writer (or private table): first EMPTY slot of hash's probe sequence. */
static inline Py_ssize_t ncd_find_empty(ncd_table *t, Py_hash_t hash) {
    size_t mask = (size_t)t->mask, perturb = (size_t)hash, i = (size_t)hash & mask;
    while (ncd_ix_load_relaxed(t, i) != NCD_EMPTY) {
        perturb >>= NCD_PERTURB_SHIFT;
        i = (i * 5 + perturb + 1) & mask;
    }
    return (Py_ssize_t)i;
}

/* Writer: append an entry (refs already owned by the table) and index it.
 * The caller has checked nentries < capacity and is inside a write window
 * if the table is published. */
static inline void ncd_append(ncd_table *t, Py_ssize_t slot, PyObject *key,
                              PyObject *value, Py_hash_t hash) {
    Py_ssize_t ix = t->nentries;
    ncd_entry *ep = ncd_entry_at(t, ix);
    /* A pinned table recomputes the hash from the key (ncd_pinned_hash). */
    if (!t->pinned) ((ncd_hentry *)t->entries)[ix].hash = hash;
    /* Relaxed: published by the release stores of nentries / the index below. */
    ncc_store_obj_relaxed(&ep->key, key);
    ncc_store_obj_relaxed(&ep->value, value);
    /* Release; pairs with the acquire load of nentries in ncd_collect. */
    ncc_store_ssize_release(&t->nentries, ix + 1);
    /* Release; pairs with the acquire load of the index in ncd_probe_run. */
    ncd_ix_store_release(t, (size_t)slot, (int)ix);
    t->live_end = ix + 1;
}

static inline int ncd_key_pinnable(PyObject *key) {
    return PyUnicode_CheckExact(key) || PyLong_CheckExact(key);
}

/* Equality of two exact ints.  Compact ints (the common keys) compare by
 * value inline (see ncc_int_compact); two longer ones go to
 * long_richcompare, which runs no Python code, does not allocate and cannot
 * fail for two ints. */
static inline int ncd_int_eq(PyObject *a, PyObject *b) {
    Py_ssize_t va, vb;
    int ca = ncc_int_compact(a, &va), cb = ncc_int_compact(b, &vb);
    if (ca && cb) return va == vb;
    if (ca || cb) return 0;
    PyObject *r = PyLong_Type.tp_richcompare(a, b, Py_EQ);
    int eq = (r == Py_True);
    Py_XDECREF(r);   /* a bool: never the last reference */
    return eq;
}

enum { NCD_MISS = 0, NCD_FOUND = 1, NCD_RETRY = 2, NCD_NEED_EQ = 3 };
enum { NCD_FRESH = 0, NCD_RESUME_NE = 1, NCD_RESUME_EQ = 2 };
/* __eq__ answers a writer's lookup remembers across restarts (ncd_eq_memo_*). */
#define NCD_EQ_MEMO 8
/* What a probe is for (ncd_probe_run's `mode`). */
enum {
    NCD_READ_PRESENCE = 0,   /* lock-free `in`: no reference to the value */
    NCD_READ_VALUE = 1,      /* lock-free lookup: a new reference to the value */
    NCD_WRITER = 2,          /* under the critical section: position only */
    /* Lock-free, BEFORE a single-key writer takes the lock (_prefind in
     * _dict.pyx): the entry of a present key, validated later under the
     * lock (tseq still p->version, value still non-NULL), so this mode
     * neither loads the value nor validates tseq at the end; or a miss with
     * the writer's insertion slot (first DUMMY, else the EMPTY one), valid
     * under the lock if `version` is still p->wversion; a stored key that
     * needs __eq__ gives up (NCD_RETRY): the locked path compares it. */
    NCD_PREWRITE = 3,
};

typedef struct {
    uint64_t version;      /* even sequence the probe started at (tseq or version) */
    ncd_table *table;      /* table it probes (compared only, after a resume) */
    size_t i, perturb;     /* position in the probe sequence */
    Py_ssize_t ix;         /* FOUND / NEED_EQ: entry number */
    Py_ssize_t slot;       /* FOUND: index slot; MISS (writer): insertion slot */
    Py_ssize_t freeslot;   /* writer: first DUMMY slot of the sequence, or -1 */
    uint64_t wversion;     /* NCD_PREWRITE: `version` sampled before the probe */
    PyObject *eqkey;       /* NEED_EQ: new reference to the stored key */
    int resume;            /* NCD_FRESH, or how the caller's __eq__ answered */
    /* NCD_WRITER: the answers of the __eq__ calls this lookup (or this
     * batch of lookups) already made, kept across its restarts
     * (ncd_eq_memo_*); owned by the caller of the lookup. */
    struct ncd_eq_memo *memo;
    uint64_t eq_tseq;      /* NEED_EQ (writer): `tseq` when entry ix was read */
} ncd_probe;

/* One remembered __eq__ answer: the looked-up key `probe` against entry
 * `ix` holding `key` (both compared as pointers, never dereferenced). */
typedef struct {
    Py_ssize_t ix;
    PyObject *key;
    PyObject *probe;
    int eq;
} ncd_eq_answer;

typedef struct ncd_eq_memo {
    Py_ssize_t n, cap;
    Py_ssize_t searchable;   /* answers given before the latest restart */
    uint64_t tseq;           /* the `tseq` every answer was read under */
    ncd_eq_answer *a;        /* `inl`, or a PyMem_RawMalloc'ed array */
    ncd_eq_answer inl[NCD_EQ_MEMO];
} ncd_eq_memo;

/* A writer's lookup restarts whenever any write happened while an __eq__ ran
 * (ncd_probe_run, NCD_WRITER), because it is about to write at the position
 * it found.  An __eq__ that itself writes to the dict on every call (a
 * counter, a cache) would then restart the lookup forever.  CPython's dict
 * restarts only when the stored key it compared changed; we keep the
 * restart (it re-reads every slot, so a key inserted meanwhile before the
 * position is seen, and the insertion slot is fresh) but remember EVERY
 * answer: on the restarted walk an entry with the same number still holding
 * the same key object, in the same table, compared with the same looked-up
 * key, gets the same answer without a second call.  That is sound under the
 * lock: `tseq` unchanged since the entry was read, before the call, means
 * the table was not replaced (a multi-key update also moves it: then the
 * answers are dropped); entries are never reused inside a table and a
 * generic entry's key only ever changes to NULL (a pinned one never
 * changes), so entry ix holding the pointer it held at the call holds the
 * SAME object, and reaching it through an index slot means it is live.  The
 * looked-up key is kept alive by the caller for the whole memo's life (one
 * lookup, or _apply_batch's `keys` list), so its pointer names one object.
 * Every __eq__ call during which a write ran (the only calls that can cause
 * a restart; _find_memo) adds an answer, and none is forgotten while `tseq`
 * holds (the array grows), so each walk after a restart asks again only
 * questions whose call let no write in: the lookup ends unless __eq__ keeps adding
 * colliding keys or replacing the table, which makes CPython's dict restart
 * too (docs/design.md, "Restarts after a concurrent write: the bounds").
 * Only answers from before the latest restart are searched: a first walk,
 * the common case, never searches (a long collision chain stays linear).
 * An entry met twice in one walk (the perturbed probe sequence may revisit
 * a slot) is asked twice, as CPython's dict does.  The bound holds: a walk
 * that ends in a restart asked at least one question not searchable before
 * it, which is searchable after it, so the set of distinct (entry, key,
 * looked-up key) answers grows with every restart, and it is finite while
 * `tseq` holds. */
static inline void ncd_eq_memo_init(ncd_eq_memo *m) {
    m->n = 0;
    m->cap = NCD_EQ_MEMO;
    m->searchable = 0;
    m->tseq = 0;
    m->a = m->inl;
}

static inline void ncd_eq_memo_free(ncd_eq_memo *m) {
    if (m->a != m->inl) PyMem_RawFree(m->a);
    ncd_eq_memo_init(m);
}

/* The lookup restarts: the answers given so far become searchable. */
static inline void ncd_eq_memo_restart(ncd_eq_memo *m) { m->searchable = m->n; }

/* After the __eq__ of the NEED_EQ step that left p->ix and p->eq_tseq: the
 * answer is kept under the `tseq` read with the entry, BEFORE the call (not
 * the one after it: if __eq__ let the table be replaced and the stored key be
 * freed, another object at the same address in the new table must not get
 * this answer).  0, or -1 with MemoryError set. */
static inline int ncd_eq_memo_add(ncd_probe *p, PyObject *probe, PyObject *key, int eq) {
    ncd_eq_memo *m = p->memo;
    uint64_t tseq = p->eq_tseq;
    if (m->n > 0 && m->tseq != tseq) {
        m->n = 0;
        m->searchable = 0;
    }
    m->tseq = tseq;
    if (m->n == m->cap) {
        Py_ssize_t cap = m->cap * 2;
        ncd_eq_answer *a = (ncd_eq_answer *)PyMem_RawMalloc((size_t)cap * sizeof(ncd_eq_answer));
        if (a == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(a, m->a, (size_t)m->n * sizeof(ncd_eq_answer));
        if (m->a != m->inl) PyMem_RawFree(m->a);
        m->a = a;
        m->cap = cap;
    }
    ncd_eq_answer *e = &m->a[m->n++];
    e->ix = p->ix;
    e->key = key;
    e->probe = probe;
    e->eq = (eq != 0);
    return 0;
}

/* 1 / 0: the remembered answer for `probe` against entry ix holding key
 * sk; -1: none.  Under the critical section (a relaxed load: tseq is stored
 * only by writers, which the lock serialises with us). */
static inline int ncd_eq_memo_find(ncd_hot *h, ncd_eq_memo *m, Py_ssize_t ix, PyObject *sk,
                                   PyObject *probe) {
    if (m->searchable == 0 || m->tseq != ncc_load_uint64_relaxed(&h->tseq)) return -1;
    for (Py_ssize_t k = 0; k < m->searchable; k++) {
        ncd_eq_answer *e = &m->a[k];
        if (e->ix == ix && e->key == sk && e->probe == probe) return e->eq;
    }
    return -1;
}

/* One lock-free step of a lookup.  Returns
 *   NCD_FOUND:   key present; p->ix/p->slot set; *pvalue a new reference
 *                in NCD_READ_VALUE mode;
 *   NCD_MISS:    key absent; in NCD_WRITER mode p->slot = the insertion
 *                slot: the first DUMMY slot of the probe sequence if any,
 *                else the EMPTY slot that ended it;
 *   NCD_NEED_EQ: a stored key with the same hash needs its __eq__: p->eqkey
 *                is a new reference; the caller compares OUTSIDE any region,
 *                sets p->resume and calls again (the call re-validates the
 *                sequence before touching the table: never the old table after
 *                Python code unless it is still published -- this excludes ABA
 *                on a freed and reallocated table);
 *   NCD_RETRY:   a change that concerns this key interfered; start again
 *                with p->resume = NCD_FRESH.
 * Never runs Python code, never blocks, never raises.
 *
 * Which writes make a probe retry (docs/design.md, "Readers: who disturbs
 * whom"):
 *   - readers validate `tseq` only, which moves only when the table is
 *     replaced (resize, clear) or a multi-key batch (update) is applied;
 *     an insert, delete or value replacement of ANOTHER key never makes a
 *     reader retry: index slots never go back to EMPTY (a DUMMY slot
 *     reused by an insert names a complete entry of another key), entries
 *     are never reused inside a table and a value never comes back from
 *     NULL, so what the probe loads about its own key is monotone, and a
 *     miss is linearizable (the argument in docs/design.md, "Slot reuse");
 *   - a reader retries for its OWN key only if the value it loaded was
 *     replaced before its try-incref re-check, or the try-incref was refused;
 *     a value found NULL (the entry was deleted after its index was loaded)
 *     is a miss, linearized just after that delete;
 *   - the writer (NCD_WRITER, under the lock) validates `version`: after an
 *     __eq__ (which may suspend the critical section) any write restarts it,
 *     because it is about to write at the position it found. */
/* always_inline: the lookup is the hot path of d[k], get and `in`; the
 * call it saves is worth ~5% of d[k] (measured, docs/performance.md). */
static inline __attribute__((always_inline)) int
ncd_probe_run(ncd_hot *h, PyObject *key, Py_hash_t hash, ncd_probe *p,
              PyObject **pvalue, int mode) {
    PyObject *drop = NULL, *val = NULL;
    ncd_table *t;
    ncd_entry *ep;
    size_t mask, i, perturb, n = 0;
    int ix, res;
    ncc_qsbr_thread *rec = NULL;
    if (mode == NCD_WRITER) {
        /* Under the critical section, which this call holds throughout (it
         * never blocks): no other writer can replace or free the table, so
         * no read region and no fences are needed.  Relaxed: only writers
         * store `version`, and they are serialised by the lock.  After an
         * __eq__ (which may have suspended the section) proceed only if no
         * write at all happened meanwhile: that also proves p->table was
         * not replaced, so not freed (a replacement moves `version`). */
        uint64_t cur = ncc_load_uint64_relaxed(&h->w->version);
        if (p->resume == NCD_FRESH) {
            p->version = cur;
            p->freeslot = -1;
        } else if (cur != p->version) {
            return NCD_RETRY;
        }
    } else {
        if (p->resume == NCD_FRESH) {
            if (mode == NCD_PREWRITE) {
                /* A miss is used under the lock only if `version` is still
                 * this value there: no write window opened since, so what
                 * the probe loaded is the state the writer then sees.
                 * Acquire; pairs with the release store in
                 * ncc_seq_write_end: the stores of every window closed
                 * before it are visible to the loads below.  (Odd: a
                 * window was open; never equal under the lock.) */
                p->wversion = ncc_load_uint64_acquire(&h->w->version);
                p->freeslot = -1;
            }
            /* Acquire; pairs with the release store in ncc_seq_write_end
             * of a table-wide writer. */
            p->version = ncc_seq_read_begin(&h->tseq);
            if (ncc_seq_is_writing(p->version)) return NCD_RETRY;
        }
        rec = ncc_read_begin();
        if (p->resume != NCD_FRESH) {
            /* Python code ran since the last region: proceed only if no
             * table-wide writer started since p->version; then p->table is
             * still published and, now that we are inside a region again,
             * cannot be freed.  Acquire fence + relaxed load; pairs with the
             * release fence in ncc_seq_write_begin. */
            if (!ncc_seq_read_validate(&h->tseq, p->version)) goto retry;
        }
    }
    /* Acquire; pairs with the release store of the table pointer in
     * ConcurrentDict._publish_table / _clear_impl (and initialisation). */
    t = (ncd_table *)ncc_load_ptr_acquire((void **)&h->table);
    mask = (size_t)t->mask;
    if (p->resume == NCD_FRESH) {
        p->table = t;
        perturb = (size_t)hash;
        i = (size_t)hash & mask;
    } else {
        if (t != p->table) goto retry;
        if (p->resume == NCD_RESUME_EQ) {
            i = p->i;
            ix = (int)p->ix;
            ep = ncd_entry_at(t, ix);
            goto found;
        }
        perturb = p->perturb >> NCD_PERTURB_SHIFT;
        i = (p->i * 5 + perturb + 1) & mask;
    }
    for (;;) {
        /* Acquire; pairs with the release store in ncd_append: the entry it
         * names is fully written. */
        ix = ncd_ix_load_acquire(t, i);
        if (ix == NCD_EMPTY) {
            /* A writer inserts at the first DUMMY slot it passed, if any:
             * re-inserting a deleted key then reuses its old slot instead of
             * lengthening its probe sequence by one DUMMY per delete+insert
             * (which made churned keys' probes O(deletes since the last
             * resize): docs/design.md, "Slot reuse"). */
            p->slot = ((mode == NCD_WRITER || mode == NCD_PREWRITE) && p->freeslot >= 0)
                      ? p->freeslot : (Py_ssize_t)i;
            res = NCD_MISS;
            goto done;
        }
        if ((mode == NCD_WRITER || mode == NCD_PREWRITE) && ix == NCD_DUMMY && p->freeslot < 0) {
            p->freeslot = (Py_ssize_t)i;
        }
        if (ix >= 0) {
            if (ix >= t->capacity) goto retry;   /* defensive: cannot happen */
            /* One branch per layout, each with a constant entry size (the
             * branch is perfectly predicted: `pinned` is fixed per table). */
            PyObject *sk;
            if (t->pinned) {
                ep = &((ncd_entry *)t->entries)[ix];
                /* Acquire; pairs with the relaxed store of ep->key in
                 * ncd_append, made visible by the index release.  Never
                 * NULL: a pinned table never clears a key (ncd_delete). */
                sk = ncc_load_obj_acquire(&ep->key);
                if (sk == key) goto found;
                /* sk is alive: pinned by t, which cannot be freed while we
                 * are in the region.  No stored hash: a str's is cached in
                 * the object (loaded only after the type check, from the
                 * line that holds ob_type too, as CPython's unicode-keys
                 * lookup does), ints compare by value; a str never equals
                 * an int. */
                if (PyUnicode_CheckExact(key)) {
                    if (PyUnicode_CheckExact(sk) && ncd_str_cached_hash(sk) == hash &&
                        ncc_str_eq(sk, key))
                        goto found;
                } else if (PyLong_CheckExact(key)) {
                    if (PyLong_CheckExact(sk) && ncd_int_eq(sk, key)) goto found;
                } else if (ncd_pinned_hash(sk) == hash) {
                    /* Another type (1.0, a str subclass, ...): its __eq__. */
                    if (mode == NCD_PREWRITE) goto retry;
                    if (mode == NCD_WRITER) {
                        int known = ncd_eq_memo_find(h, p->memo, ix, sk, key);
                        if (known == 1) goto found;
                        if (known == 0) goto next;
                    }
                    Py_INCREF(sk);
                    p->eqkey = sk;
                    goto need_eq;
                }
                goto next;
            }
            ep = &((ncd_hentry *)t->entries)[ix].kv;
            /* Acquire; pairs with the stores of ep->key in ncd_append (made
             * visible by the index release) and the NULL store on delete
             * (a NULL key: the entry was deleted, go on probing). */
            sk = ncc_load_obj_acquire(&ep->key);
            if (sk == key) goto found;
            if (sk != NULL && ((ncd_hentry *)ep)->hash == hash) {
                if (mode == NCD_PREWRITE) goto retry;   /* needs __eq__ */
                if (mode == NCD_WRITER) {
                    int known = ncd_eq_memo_find(h, p->memo, ix, sk, key);
                    if (known == 1) goto found;
                    if (known == 0) goto next;
                }
                PyObject *ref = ncc_try_getref_deferred(&ep->key, sk, &drop);
                if (ref == NULL) {
                    /* The key was deleted (NULL'ed) meanwhile: its entry
                     * is dead, go on probing -- unless the try-incref
                     * succeeded and handed its reference to `drop`,
                     * which holds one object only (a second one would
                     * leak): then retry, which releases it.  A refused
                     * try-incref of a live key is a retry. */
                    if (drop == NULL && ncc_load_obj_acquire(&ep->key) == NULL) goto next;
                    goto retry;
                }
                /* Before any Python code sees the key: was `t` still the
                 * published table?  A retired table's key slots are
                 * frozen, so the re-check inside the try-incref proves
                 * nothing there: the key may have been deleted from the
                 * new table and freed, and its memory reused by an
                 * unrelated object, which the try-incref then took and
                 * whose __eq__ would run (or raise) in this lookup.
                 * Acquire fence + relaxed load, as at the end of the
                 * probe; pairs with the release fence in
                 * ncc_seq_write_begin of the table-wide writer.  (Pinned
                 * keys need no check: a retired pinned table keeps them
                 * alive until synchronize(), see the file comment.) */
                if (mode != NCD_WRITER && !ncc_seq_read_validate(&h->tseq, p->version)) {
                    drop = ref;
                    goto retry;
                }
                p->eqkey = ref;
                goto need_eq;
            }
        }
    next:
        /* Bounded: perturb reaches 0 after at most 13 shifts of a 64-bit
         * hash, after which i -> 5i + 1 (mod 2^k) is a full-period LCG that
         * visits every slot within `size` steps, and >= 1/3 of the slots are
         * EMPTY.  So only a bug could exceed this; fail safe, never spin. */
        if (++n > mask + 64) goto retry;
        perturb >>= NCD_PERTURB_SHIFT;
        i = (i * 5 + perturb + 1) & mask;
    }
found:
    p->ix = ix;
    p->slot = (Py_ssize_t)i;
    res = NCD_FOUND;
    if (mode == NCD_READ_PRESENCE || mode == NCD_READ_VALUE) {
        /* Acquire; pairs with ncc_slot_store of the value (replacement,
         * release) and the relaxed store in ncd_append published by the
         * index release. */
        PyObject *v = ncc_load_obj_acquire(&ep->value);
        if (v == NULL) {
            /* Deleted after we loaded its index slot (a delete stores DUMMY
             * before NULL, and a value never comes back): the key was absent
             * just after that delete, inside our call. */
            res = NCD_MISS;
        } else if (mode == NCD_READ_VALUE) {
            /* Try-incref, then the seq_cst re-load of the slot: we hold the
             * value the entry held at that re-load (ncc_try_getref). */
            val = ncc_try_getref_deferred(&ep->value, v, &drop);
            if (val == NULL) goto retry;   /* replaced, deleted or dying */
        }
    }
done:
    if (mode == NCD_WRITER) {
        Py_XDECREF(drop);   /* always NULL: no slot changes under the lock */
        return res;
    }
    ncc_read_end(rec);
    Py_XDECREF(drop);
    /* NCD_PREWRITE: the caller validates p->version under the lock. */
    if (mode == NCD_PREWRITE) return res;
    /* The table was published for the whole call (no replacement started
     * since p->version), so every load above was of the live table.
     * Acquire fence + relaxed load; pairs with the release fence in
     * ncc_seq_write_begin of the table-wide writer. */
    if (!ncc_seq_read_validate(&h->tseq, p->version)) {
        Py_XDECREF(val);
        return NCD_RETRY;
    }
    if (pvalue != NULL) *pvalue = val;
    return res;
need_eq:
    p->i = i;
    p->perturb = perturb;
    p->ix = ix;
    /* Relaxed, under the lock: see ncd_eq_memo_find. */
    if (mode == NCD_WRITER) p->eq_tseq = ncc_load_uint64_relaxed(&h->tseq);
    if (mode != NCD_WRITER) ncc_read_end(rec);
    Py_XDECREF(drop);
    return NCD_NEED_EQ;
retry:
    if (mode != NCD_WRITER) ncc_read_end(rec);
    Py_XDECREF(drop);
    Py_XDECREF(val);
    return NCD_RETRY;
}

/* Writer, inside a write window: delete entry ix, indexed at `slot`.
 * Returns in *oval the table's reference to the value and in *okey a NEW
 * reference to the key -- except from a pinned table when !want_key: there
 * the table's reference becomes the tombstone's (released when the table is
 * dropped) and *okey is NULL, which saves an incref/decref pair per delete
 * (two atomic operations when another thread owns the key). */
static inline void ncd_delete(ncd_hot *h, ncd_table *t, Py_ssize_t slot, Py_ssize_t ix,
                              PyObject **okey, PyObject **oval, int want_key) {
    ncd_entry *ep = ncd_entry_at(t, ix);
    PyObject *key = ep->key, *value = ep->value;
    /* Release; pairs with the acquire index load in ncd_probe_run.  DUMMY
     * first: a reader that then finds the value NULL knows the delete
     * happened after it loaded the index (ncd_probe_run, "found"). */
    ncd_ix_store_release(t, (size_t)slot, NCD_DUMMY);
    /* Release stores; pair with the acquire loads of the entry in
     * ncd_probe_run (a NULL value: a miss) / ncd_collect (which then fails
     * the try-incref and retries under its version). */
    ncc_slot_store(&ep->value, NULL);
    if (t->pinned) {
        if (want_key) Py_INCREF(key);
        else key = NULL;
        t->ndead_pinned++;
    } else {
        ncc_slot_store(&ep->key, NULL);
    }
    /* Relaxed: len() is this one load; ncd_collect validates `version`. */
    ncc_store_ssize_relaxed(&h->w->used, h->w->used - 1);
    *okey = key;
    *oval = value;
}

/* Writer: the index slot that names live entry ix (-1 if the probe sequence
 * reaches an EMPTY slot first: a broken table, reported by _check). */
static inline Py_ssize_t ncd_slot_of(ncd_table *t, Py_hash_t hash, Py_ssize_t ix) {
    size_t mask = (size_t)t->mask, perturb = (size_t)hash, i = (size_t)hash & mask;
    int cur;
    while ((cur = ncd_ix_load_relaxed(t, i)) != (int)ix) {
        if (cur == NCD_EMPTY) return -1;
        perturb >>= NCD_PERTURB_SHIFT;
        i = (i * 5 + perturb + 1) & mask;
    }
    return (Py_ssize_t)i;
}

static inline int ncd_load_index_relaxed(ncd_table *t, Py_ssize_t slot) {
    return ncd_ix_load_relaxed(t, (size_t)slot);
}

/* What ncd_collect takes references to. */
#define NCD_WANT_KEYS 1
#define NCD_WANT_VALUES 2
#define NCD_WANT_HASHES 4     /* fill ncd_item.hash (copy() re-indexes them) */

/* Entries ncd_collect visits per read region.  A region must stay short: a
 * writer that waits in synchronize() (a pinned table's resize, the retire
 * backlog above its limit) waits for the longest region in progress, while
 * holding its critical section.  Per entry a region does two acquire loads
 * and at most two try-increfs, so 1024 entries bound it to a few
 * microseconds whatever the dict's size (docs/design.md). */
#define NCD_REGION_CHUNK 1024

/* Lock-free consistent copy of the live entries into buf (capacity bufcap).
 * On NCD_FOUND ("ok"): *count entries in insertion order, each key (if
 * want & NCD_WANT_KEYS) and value (if want & NCD_WANT_VALUES) a new
 * reference, the other field NULL, and the key's hash if want &
 * NCD_WANT_HASHES (else -1).  NCD_RETRY: a writer interfered, nothing
 * held.  Returns -(needed) - 10 when buf is too small (nothing held). */
static Py_ssize_t ncd_collect(ncd_hot *h, ncd_item *buf, Py_ssize_t bufcap,
                              Py_ssize_t *count, int want) {
    PyObject *drop = NULL;
    Py_ssize_t k = 0, ix, n;
    uint64_t v = ncc_seq_read_begin(&h->w->version);
    if (ncc_seq_is_writing(v)) return NCD_RETRY;
    ncc_qsbr_thread *rec = ncc_read_begin();
    NCC_FI_COUNT("dict.collect.region");
    /* Acquire; pairs with the release store of the table pointer. */
    ncd_table *t = (ncd_table *)ncc_load_ptr_acquire((void **)&h->table);
    /* Relaxed: validated by the version below. */
    Py_ssize_t used = ncc_load_ssize_relaxed(&h->w->used);
    if (used > bufcap) {
        ncc_read_end(rec);
        return -used - 10;
    }
    /* Acquire; pairs with the release store in ncd_append. */
    n = ncc_load_ssize_acquire(&t->nentries);
    if (n > t->capacity) n = t->capacity;   /* defensive */
    for (ix = 0; ix < n; ix++) {
        if (ix != 0 && ix % NCD_REGION_CHUNK == 0) {
            /* Leave the region (a reclaimer may now free `t` if it was
             * unpublished), drop the deferred reference, enter a new one and
             * continue only if no writer started since v: then `t` is still
             * the published table and cannot be freed while we are inside
             * this region (the argument of ncd_probe_run's resume). */
            ncc_read_end(rec);
            Py_XDECREF(drop);
            drop = NULL;
            rec = ncc_read_begin();
            NCC_FI_COUNT("dict.collect.region");
            if (!ncc_seq_read_validate(&h->w->version, v)) goto retry;
        }
        ncd_entry *ep = ncd_entry_at(t, ix);
        /* Acquire loads; pair with ncc_slot_store / ncd_append. */
        PyObject *val = ncc_load_obj_acquire(&ep->value);
        if (val == NULL) continue;
        if (k >= bufcap) goto retry;
        buf[k].key = NULL;
        buf[k].value = NULL;
        buf[k].hash = -1;
        if (want & NCD_WANT_HASHES) {
            /* A pinned table's key is alive while we are in the region and
             * its hash is final (ncd_pinned_hash); a generic entry's hash
             * was written before the entry was published. */
            if (t->pinned) buf[k].hash = ncd_pinned_hash(ncc_load_obj_acquire(&ep->key));
            else buf[k].hash = ((ncd_hentry *)t->entries)[ix].hash;
        }
        k++;
        if (want & NCD_WANT_VALUES) {
            buf[k - 1].value = ncc_try_getref_deferred(&ep->value, val, &drop);
            if (buf[k - 1].value == NULL) goto retry;
        }
        if (want & NCD_WANT_KEYS) {
            PyObject *key = ncc_load_obj_acquire(&ep->key);
            if (key == NULL) goto retry;
            buf[k - 1].key = ncc_try_getref_deferred(&ep->key, key, &drop);
            if (buf[k - 1].key == NULL) goto retry;
        }
    }
    ncc_read_end(rec);
    Py_XDECREF(drop);
    if (!ncc_seq_read_validate(&h->w->version, v)) goto release;
    *count = k;
    return NCD_FOUND;
retry:
    ncc_read_end(rec);
    Py_XDECREF(drop);
release:
    for (Py_ssize_t j = 0; j < k; j++) {
        Py_XDECREF(buf[j].key);
        Py_XDECREF(buf[j].value);
    }
    return NCD_RETRY;
}

/* Test-only fault switch: the sensitivity check in tests/test_race_dict.py
 * turns on a deliberately broken writer and proves the race campaigns catch
 * it.  0 in normal operation (one predictable branch in the writer). */
enum { NCD_MUTANT_NONE = 0, NCD_MUTANT_TORN_REPLACE = 1,
       /* Not a broken writer: widens the window between an insert's
        * publication of the key and its update of `used` (a window that
        * only preemption opens in practice), for the test that len() is
        * linearizable with the lookups (tests/test_review_regressions.py). */
       NCD_MUTANT_WIDE_COUNT_WINDOW = 2 };
static int ncd_mutant = NCD_MUTANT_NONE;

/* Lock-free lookups of this thread that had to start again (NCD_RETRY),
 * for the tests that prove writes to other keys disturb no reader.  Only the
 * retry path touches it. */
static __thread unsigned long long ncd_reader_retries = 0;

#endif /* NOGIL_COLLECTIONS_DICT_TABLE_H */
