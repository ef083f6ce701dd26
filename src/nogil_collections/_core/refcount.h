/* refcount.h -- try-incref-if-nonzero-with-compare, and publish() for writers.
 *
 *   PyObject *ncc_try_getref(PyObject **slot, PyObject *expected)
 *       Returns a NEW reference to `expected` if the object is still alive
 *       (its refcount is not being dropped to zero / it is not being freed)
 *       and *slot still holds it after the reference was taken; otherwise
 *       NULL, with no reference held.  Never raises.  On a slot mismatch it
 *       gives the reference back with Py_DECREF, which may run a destructor:
 *       inside a read region use ncc_try_getref_deferred instead.
 *
 *   void ncc_publish(PyObject *obj)
 *       Writers call this on every object BEFORE storing it into a slot that
 *       lock-free readers can see.  On the free-threaded build it sets the
 *       "maybe weakref" flag in ob_ref_shared (CPython's
 *       _PyObject_SetMaybeWeakref, Include/internal/pycore_object.h).  Two
 *       reasons, both mandatory:
 *        1. liveness: without it an object whose references are all local to
 *           its owner thread has ob_ref_shared == 0, which try-incref must
 *           read as "may be freed without a handshake", so every optimistic
 *           read by another thread fails (CPython gh-124642);
 *        2. safety of the owner fast path: when the owner drops the last
 *           local reference of a flagged object, _Py_MergeZeroLocalRefcount
 *           (Objects/object.c 3.14.7:435, 3.15.0rc2:437) zeroes ob_tid
 *           before deallocating it.  An
 *           unflagged object is deallocated with ob_tid still naming its
 *           owner, so the owner thread's own try-incref of a stale pointer
 *           would "succeed" on freed memory.
 *
 * Implementations:
 *   - 3.14+ free-threaded: PyUnstable_EnableTryIncRef / PyUnstable_TryIncRef
 *     (public, Include/cpython/object.h 3.14.7:488-491, 3.15.0rc2:497-500).
 *     What they do (Objects/object.c 3.14.7:2785-2796, 3.15.0rc2:2878-2889):
 *     EnableTryIncRef is _PyObject_SetMaybeWeakref (no-op on an immortal
 *     object, else CAS the MAYBE_WEAKREF flag in unless a flag is set);
 *     TryIncRef is _Py_TryIncref = _Py_TryIncrefFast (immortal, or owner:
 *     local + 1) || _Py_TryIncRefShared (CAS loop adding 1 << SHIFT to
 *     ob_ref_shared, refusing 0 and _Py_REF_MERGED), i.e. exactly the 3.13
 *     reproduction below (pycore_object.h 3.14.7:550, 570, 757;
 *     3.15.0rc2:528, 548, 735).  Neither
 *     re-checks a slot: ncc_try_getref below does.  Their read-only first
 *     tests (immortal, owned, a flag already set) are made inline and the
 *     exported function is called only when they do not decide.
 *   - 3.13 free-threaded: reproduced from the public object header (ob_tid,
 *     ob_ref_local, ob_ref_shared, _Py_REF_* and _Py_ThreadId in
 *     Include/object.h), following _Py_TryIncrefFast / _Py_TryIncRefShared /
 *     _Py_TryIncrefCompare / _PyObject_SetMaybeWeakref in CPython 3.13's
 *     Include/internal/pycore_object.h.  Rewritten against this package's
 *     atomics, not copied.  (Py_REF_DEBUG's _Py_RefTotal is not maintained:
 *     debug builds of CPython may report a refcount-total drift.)
 *   - GIL builds: no concurrent reader exists while we hold the GIL, so a plain
 *     incref is exact, and publish is a no-op.
 */
#ifndef NOGIL_COLLECTIONS_REFCOUNT_H
#define NOGIL_COLLECTIONS_REFCOUNT_H

#include <Python.h>
#include "atomics.h"

#ifdef Py_GIL_DISABLED
#  define NCC_FREE_THREADED 1
#else
#  define NCC_FREE_THREADED 0
#endif

#if NCC_FREE_THREADED
/* The cases of a try-incref that need no atomic read-modify-write, inline:
 * an immortal object (nothing to do), or one this thread owns (ob_ref_local
 * + 1, which only the owner writes).  This is _Py_TryIncrefFast
 * (Include/internal/pycore_object.h 3.13, 3.14.7:550, 3.15.0rc2:528), and
 * the same two branches as the public inline Py_INCREF (Include/refcount.h
 * 3.14.7:268-276, 3.15.0rc2:272-280).  1 with a new reference, or 0 and
 * nothing done: then only the shared count can give one. */
static inline int ncc__is_immortal_or_owned_incref(PyObject *op) {
    /* Relaxed: only the owner thread writes ob_ref_local (non-atomically for
     * the owner itself); other threads merely test for the immortal value. */
    uint32_t local = ncc_load_uint32_relaxed(&op->ob_ref_local);
    if (local == _Py_IMMORTAL_REFCNT_LOCAL) {
        return 1;
    }
    /* Relaxed: ob_tid only equals our id if we own the object, in which case
     * we wrote it ourselves. */
    if ((uintptr_t)ncc_load_ptr_relaxed((void **)&op->ob_tid) == _Py_ThreadId()) {
        /* We are the owner: nobody else writes ob_ref_local. */
        ncc_store_uint32_relaxed(&op->ob_ref_local, local + 1);
        return 1;
    }
    return 0;
}
#endif

#if NCC_FREE_THREADED && PY_VERSION_HEX >= 0x030E00A5  /* added in 3.14.0a5, gh-128844 */
/* ---------------- 3.14+ free-threaded: public unstable API ---------------- */
/* The API calls are exported functions.  Their first, read-only tests are
 * done here inline, and the call is made only when they do not settle it,
 * so a read of an immortal or thread-owned item and a store of an object
 * already flagged make no call (a PLT call and its register spills were
 * about a tenth of a lock-free `lst[i]`, by callgrind on 3.14t). */
static inline void ncc_publish(PyObject *obj) {
    /* As _PyObject_SetMaybeWeakref (Objects/object.c 3.14.7:2785-2796 calls
     * it): nothing to do for an immortal object or one whose shared count
     * already carries a flag (maybe-weakref, queued or merged), which is only
     * ever cleared by its deallocation.  Relaxed loads: a stale "no flag"
     * only makes the call, which re-checks with a CAS. */
    if (ncc_load_uint32_relaxed(&obj->ob_ref_local) == _Py_IMMORTAL_REFCNT_LOCAL
            || (ncc_load_ssize_relaxed(&obj->ob_ref_shared) & _Py_REF_SHARED_FLAG_MASK) != 0) {
        return;
    }
    PyUnstable_EnableTryIncRef(obj);
}
static inline int ncc__try_incref(PyObject *obj) {
    /* PyUnstable_TryIncRef is _Py_TryIncrefFast || _Py_TryIncRefShared; the
     * first is ncc__is_immortal_or_owned_incref. */
    return ncc__is_immortal_or_owned_incref(obj) || PyUnstable_TryIncRef(obj);
}

#elif NCC_FREE_THREADED
/* ---------------- 3.13 free-threaded: reproduce from the object header ----- */
static inline int ncc__try_incref(PyObject *op) {
    if (ncc__is_immortal_or_owned_incref(op)) {
        return 1;
    }
    /* Relaxed load, then a seq_cst CAS: the CAS is the synchronisation point
     * with the owner's/other threads' decrefs of ob_ref_shared (which are
     * atomic adds in CPython's Py_DECREF). */
    Py_ssize_t shared = ncc_load_ssize_relaxed(&op->ob_ref_shared);
    for (;;) {
        /* 0: no shared refs and never flagged maybe-weakref -> may be freed
         * without any atomic handshake; _Py_REF_MERGED with count 0: the
         * object is being deallocated.  Either way we must not revive it. */
        if (shared == 0 || shared == _Py_REF_MERGED) {
            return 0;
        }
        if (ncc_cas_ssize(&op->ob_ref_shared, &shared,
                          shared + ((Py_ssize_t)1 << _Py_REF_SHARED_SHIFT))) {
            return 1;
        }
    }
}

static inline void ncc_publish(PyObject *op) {
    if (ncc_load_uint32_relaxed(&op->ob_ref_local) == _Py_IMMORTAL_REFCNT_LOCAL) {
        return;  /* immortal: try-incref always succeeds */
    }
    Py_ssize_t shared = ncc_load_ssize_relaxed(&op->ob_ref_shared);
    for (;;) {
        if ((shared & _Py_REF_SHARED_FLAG_MASK) != 0) {
            return;  /* already maybe-weakref, queued or merged: never 0 while alive */
        }
        /* seq_cst CAS pairs with the CAS in ncc__try_incref and with CPython's
         * atomic decref of ob_ref_shared. */
        if (ncc_cas_ssize(&op->ob_ref_shared, &shared, shared | _Py_REF_MAYBE_WEAKREF)) {
            return;
        }
    }
}

#else
/* ---------------- GIL builds ---------------- */
static inline void ncc_publish(PyObject *obj) { (void)obj; }
static inline int ncc__try_incref(PyObject *obj) { Py_INCREF(obj); return 1; }
#endif

/* 1 if obj is immortal (never deallocated, reference counting is a no-op on
 * it), 0 if not or unknown (3.11 has no immortal objects).  Relaxed: only the
 * immortal value is tested, which never changes once set. */
static inline int ncc_is_immortal(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030C0000
    return _Py_IsImmortal(obj);
#else
    (void)obj;
    return 0;
#endif
}

/* ncc_make_immortal(op): make a FRESH object immortal, as CPython 3.13t does
 * to functions and classes once a second thread starts (gh-117783:
 * _PyGC_ImmortalizeDeferredObjects -> _Py_SetImmortal, Objects/object.c and
 * Python/gc_free_threading.c; not exported, so reproduced here).  An
 * immortal object's reference count is only READ by Py_INCREF / Py_DECREF
 * (`ob_ref_local == _Py_IMMORTAL_REFCNT_LOCAL`, _Py_IsImmortal in
 * Include/object.h), so threads that load it through a name no longer bounce
 * its header's cache line.  It is never deallocated.
 *
 * Precondition, checked: the calling thread holds the ONLY reference and
 * owns the object (ob_tid is ours, ob_ref_local == 1, ob_ref_shared == 0:
 * no other thread has ever taken a reference that it still holds, no weakref
 * flag, nothing queued for a merge).  Returns 1 when the object is immortal
 * now, 0 (nothing changed) when the precondition does not hold.  Never raises.
 *
 * Free-threaded 3.13 and 3.14: the same three public header fields and the
 * same immortality test (_Py_IsImmortal reads ob_ref_local in both,
 * Include/refcount.h 3.14.7:125); 3.14 checks the precondition with the
 * public PyUnstable_Object_IsUniquelyReferenced.  3.14's own
 * _Py_SetImmortalUntracked (Objects/object.c 3.14.7:2681) also sets the
 * deferred-refcount GC bit (_PyGC_BITS_DEFERRED, internal: it only lets the
 * interpreter's stack references skip Py_INCREF's read of ob_ref_local,
 * pycore_stackref.h PyStackRef_FromPyObjectNew), which we do not: no write
 * to the refcount happens either way.  3.15: the public
 * PyUnstable_SetImmortal (Objects/object.c 3.15.0rc2:2892), which returns 0
 * unless _PyObject_IsUniquelyReferenced(op) (the same precondition) and
 * refuses every str; it untracks the object and sets the same fields and
 * the deferred bit.  GIL builds: returns 0 and changes nothing; callers do
 * not immortalize there (the GIL serializes every refcount write anyway).
 * Checked by tests/test_immortal.py (test_immortal_header_is_cpythons_own:
 * the resulting header, on each version). */
#if NCC_FREE_THREADED && PY_VERSION_HEX >= 0x030F00A7
#  define NCC_CAN_MAKE_IMMORTAL 1
static inline int ncc_make_immortal(PyObject *op) { return PyUnstable_SetImmortal(op) == 1; }
#elif NCC_FREE_THREADED
#  define NCC_CAN_MAKE_IMMORTAL 1
static inline int ncc_make_immortal(PyObject *op) {
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14: the public test of the same precondition (owned by this thread,
     * ob_ref_local == 1, ob_ref_shared == 0 with no flag:
     * _PyObject_IsUniquelyReferenced, Include/internal/pycore_object.h
     * 3.14.7:184), the one 3.15's PyUnstable_SetImmortal applies. */
    if (!PyUnstable_Object_IsUniquelyReferenced(op)) {
        return 0;
    }
#else
    /* All loads relaxed: while we own the object and hold its only
     * reference, no other thread can write these fields (an incref from
     * another thread needs a reference or a pointer it could only have got
     * from us). */
    if ((uintptr_t)ncc_load_ptr_relaxed((void **)&op->ob_tid) != _Py_ThreadId()
            || ncc_load_uint32_relaxed(&op->ob_ref_local) != 1
            || ncc_load_ssize_relaxed(&op->ob_ref_shared) != 0) {
        return 0;
    }
#endif
    /* As _Py_SetImmortal: an immortal object leaves the cyclic GC (3.13t's
     * collector would untrack it itself, update_refs in
     * gc_free_threading.c).  Its items are then roots, which is right: the
     * container keeps them alive until they are removed. */
    if (PyObject_IS_GC(op)) {
        PyObject_GC_UnTrack(op);
    }
    /* Relaxed stores: no other thread can see the object yet.  Whatever later
     * hands the pointer to another thread (a store into a dict, a lock, a
     * thread start) orders these stores before that thread's first relaxed
     * load of ob_ref_local in Py_INCREF / Py_DECREF.  ob_ref_local first, so
     * that from here on our own increfs and decrefs are no-ops; ob_tid = 0
     * (_Py_UNOWNED_TID): every thread, the creator included, is a non-owner,
     * which all our owner tests (ncl_foreign, the try-incref fast path) treat
     * correctly, only more conservatively. */
    ncc_store_uint32_relaxed(&op->ob_ref_local, _Py_IMMORTAL_REFCNT_LOCAL);
    ncc_store_ssize_relaxed(&op->ob_ref_shared, 0);
    ncc_store_ptr_relaxed((void **)&op->ob_tid, (void *)(uintptr_t)0);
    return 1;
}
#else
#  define NCC_CAN_MAKE_IMMORTAL 0
static inline int ncc_make_immortal(PyObject *op) { (void)op; return 0; }
#endif

/* Try-incref-if-nonzero without the slot re-check: 1 and a new reference if
 * the object is alive, 0 and nothing otherwise.  Only meaningful for a pointer
 * whose memory is still a PyObject (CPython keeps freed object memory
 * type-stable for attached threads; see docs/design.md). */
static inline int ncc_try_incref(PyObject *obj) { return ncc__try_incref(obj); }

/* Try to take a reference to `expected`, which was loaded from `slot`. */
static inline PyObject *ncc_try_getref(PyObject **slot, PyObject *expected) {
    if (expected == NULL || !ncc__try_incref(expected)) {
        return NULL;
    }
    /* seq_cst load (as _Py_TryIncrefCompare's _Py_atomic_load_ptr); pairs
     * with the release store that put a different object into `slot`
     * (ncc_slot_store).  It is ordered after the seq_cst CAS that took the
     * reference, so if the object was removed before that CAS, we see it. */
    if (ncc_load_obj(slot) != expected) {
        /* We may hold the last reference (the writer that replaced the slot
         * dropped its own after its release store); Py_DECREF then frees the
         * object here, which is correct: it is no longer reachable from slot. */
        Py_DECREF(expected);
        return NULL;
    }
    return expected;
}

/* Variant for use INSIDE a read region (qsbr.h): no Python code may run in a
 * region, and a Py_DECREF might run a destructor.  On a mismatch the extra
 * reference is handed to the caller in *drop (initially NULL), which must
 * Py_DECREF it after ncc_read_end().  At most one object per call. */
static inline PyObject *ncc_try_getref_deferred(PyObject **slot, PyObject *expected,
                                                PyObject **drop) {
    if (expected == NULL || !ncc__try_incref(expected)) {
        return NULL;
    }
    /* seq_cst load; pairs with the release store in ncc_slot_store (see
     * ncc_try_getref). */
    if (ncc_load_obj(slot) != expected) {
        *drop = expected;
        return NULL;
    }
    return expected;
}

/* Optimistically read a slot: load it and try-getref.  NULL on empty slot or
 * on a race; the caller retries or falls back to its lock. */
static inline PyObject *ncc_try_load_ref(PyObject **slot) {
    /* Acquire; pairs with the release store in ncc_slot_store. */
    PyObject *obj = ncc_load_obj_acquire(slot);
    return ncc_try_getref(slot, obj);
}

/* Store an object into a slot that lock-free readers may load.  The caller
 * holds the container's lock and has already called ncc_publish(obj) (or
 * obj is NULL).  Release; pairs with the acquire loads in ncc_try_load_ref /
 * ncc_try_getref, so a reader that sees `obj` also sees its initialised
 * contents. */
static inline void ncc_slot_store(PyObject **slot, PyObject *obj) {
    ncc_store_obj_release(slot, obj);
}

#endif /* NOGIL_COLLECTIONS_REFCOUNT_H */
