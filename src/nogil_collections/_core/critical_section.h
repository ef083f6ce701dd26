/* critical_section.h -- a container's writer-lock critical section on a
 * BORROWED pointer.
 *
 * The same critical section as `with cython.critical_section(lock)`
 * (Py_BEGIN_CRITICAL_SECTION), for the hottest writes (lst.append, lst.pop,
 * lst[i] = v, d[k] = v, del d[k], d.pop): Cython wraps its form in an
 * incref/decref of the object, which on 3.13t is a pair of atomic operations
 * on the lock's shared refcount whenever the writer is not the thread that
 * created it.  Callers pass their own writer lock, which the container keeps
 * alive for its whole life.  GIL builds (every version): no-ops, the GIL is
 * the lock.  (On 3.13/3.14 GIL builds struct PyCriticalSection is not even
 * defined -- Include/cpython/critical_section.h 3.14.7:91-108 defines it only
 * under Py_GIL_DISABLED -- so a local ncc_cs must not name it there.)
 *
 * The borrowed-pointer form needs nothing private: PyCriticalSection_Begin
 * locks op->ob_mutex (Include/internal/pycore_critical_section.h
 * 3.14.7:113-116), is public on 3.13-3.15, and is what
 * Py_BEGIN_CRITICAL_SECTION expands to.  3.14+ also offers
 * PyCriticalSection_BeginMutex(c, &mutex) for a bare PyMutex; we lock a
 * separate lock object's ob_mutex, the same thing through the older API.
 * 3.14+ skips the lock when the top-most active section already holds the
 * same mutex (Python/critical_section.c 3.14.7:32, 3.15.0rc2:31); our code
 * never nests a section on the same lock, and correctness does not depend
 * on it either way. */
#ifndef NOGIL_COLLECTIONS_CRITICAL_SECTION_H
#define NOGIL_COLLECTIONS_CRITICAL_SECTION_H

#include <Python.h>

#if defined(Py_GIL_DISABLED)
typedef PyCriticalSection ncc_cs;
#define ncc_cs_begin(cs, o) PyCriticalSection_Begin((cs), (o))
#define ncc_cs_end(cs) PyCriticalSection_End(cs)
#endif

/* 1 if the per-object mutex that ncc_cs_begin(cs, o) locks is held by some
 * thread now, 0 if not (always 0 on GIL builds).  A hint: the answer may be
 * stale as soon as it is returned.  3.14+: the public PyMutex_IsLocked
 * (Include/cpython/lock.h 3.14.7:70, pylock.h 3.15.0rc2:74: a seq_cst load
 * of _bits & _Py_LOCKED).  3.13: the same test by hand: PyMutex is
 * { uint8_t _bits; } with _Py_LOCKED = 1 (Include/cpython/lock.h).
 * tests/test_core.py::test_assumption_ob_mutex_is_the_critical_section_lock. */
static inline int ncc_cs_is_locked(PyObject *o) {
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
    return PyMutex_IsLocked(&o->ob_mutex);
#elif defined(Py_GIL_DISABLED)
    /* Relaxed: a hint. */
    return __atomic_load_n(&o->ob_mutex._bits, __ATOMIC_RELAXED) & 1;
#else
    (void)o;
    return 0;
#endif
}

/* ncc_cs_try_lock(o) / ncc_cs_unlock(o): the mutex that ncc_cs_begin(cs, o)
 * locks, taken WITHOUT a critical section and without waiting, for a short
 * write that cannot block.  What CPython's own interpreter does for
 * `lst.append(x)` (CALL_LIST_APPEND: LOCK_OBJECT / UNLOCK_OBJECT,
 * Python/bytecodes.c 3.14.7:4409-4412, Python/ceval_macros.h 3.14.7:264):
 * PyMutex_LockFast's compare-exchange of ob_mutex._bits from unlocked to
 * locked (Include/internal/pycore_lock.h 3.14.7:21-26), and PyMutex_Unlock
 * (public and inline on 3.13-3.15: Include/cpython/lock.h 3.13.15,
 * 3.14.7:58-66; pylock.h 3.15.0rc2:62-70), which wakes a parked waiter.
 *
 * try_lock returns 1 when the caller now holds the mutex, 0 when it is
 * held or has parked waiters (the caller then takes the critical section,
 * which waits).  Holding the mutex excludes every critical section on o
 * exactly as holding the critical section does: a section that was
 * suspended re-locks this mutex before it resumes.
 *
 * THE RULE: between try_lock and unlock the thread must not block: no
 * allocation, no decref that can free, no call into Python, nothing that
 * can detach the thread state.  A critical section is suspended (its mutex
 * released) when its thread blocks; this bare mutex is not, so blocking
 * here could deadlock against a stop-the-world pause or a thread waiting
 * for the mutex.  Fault-injection builds check the rule: a suspension point
 * reached while this thread holds such a mutex is a fatal error
 * (ncc_cs_fast_held, faultinject.h:ncc_fi_point).
 *
 * Memory order: the compare-exchange is seq_cst (it includes the acquire
 * that pairs with the previous holder's release in PyMutex_Unlock or
 * PyCriticalSection_End), the unlock a seq_cst compare-exchange (release:
 * pairs with the next holder's acquire), both as PyMutex's own inline fast
 * paths do.  GIL builds: always 1 / no-op, the GIL is the lock. */
#if defined(Py_GIL_DISABLED)
#if defined(NCC_FAULT_INJECTION)
static __thread int ncc_cs_fast_held = 0;
#define NCC_CS_FAST_HELD(delta) (ncc_cs_fast_held += (delta))
#else
#define NCC_CS_FAST_HELD(delta) ((void)0)
#endif
static inline int ncc_cs_try_lock(PyObject *o) {
    uint8_t expected = _Py_UNLOCKED;
    if (_Py_atomic_compare_exchange_uint8(&o->ob_mutex._bits, &expected, _Py_LOCKED)) {
        NCC_CS_FAST_HELD(1);
        return 1;
    }
    return 0;
}
static inline void ncc_cs_unlock(PyObject *o) {
    NCC_CS_FAST_HELD(-1);
    PyMutex_Unlock(&o->ob_mutex);
}
#else
static inline int ncc_cs_try_lock(PyObject *o) { (void)o; return 1; }
static inline void ncc_cs_unlock(PyObject *o) { (void)o; }
#endif

#if !defined(Py_GIL_DISABLED)
typedef struct { int unused; } ncc_cs;
#define ncc_cs_begin(cs, o) ((void)(cs), (void)(o))
#define ncc_cs_end(cs) ((void)(cs))
#endif

#endif /* NOGIL_COLLECTIONS_CRITICAL_SECTION_H */
