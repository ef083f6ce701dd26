/* faultinject.h -- suspension points and allocation-failure injection.
 *
 * On 3.13t a critical section is suspended whenever its thread blocks: a
 * decref that takes the biased-refcount queue's PyMutex (Python/brc.c), a
 * PyMutex wait, any call into Python code.  Another thread may then take the
 * section and change the container, so whatever a writer checked before such
 * a point must be re-checked after it (docs/design.md, "Suspension points").
 * Real suspensions are rare and timing-dependent; this header makes them
 * happen on purpose.
 *
 *   NCC_SUSPEND_POINT("area.what")   marks a place where the running critical
 *                                    section may be suspended;
 *   NCC_ALLOC_FAILS("area.what")     true when a test armed an allocation
 *                                    failure there (MemoryError injection);
 *   NCC_FI_COUNT("area.what")        only counts (e.g. read regions started).
 *
 * Normal builds: both compile to nothing.  Built with
 * NOGIL_COLLECTIONS_FAULT_INJECTION=1 (setup.py defines NCC_FAULT_INJECTION;
 * `make fault-injection`), every suspension point
 *   1. counts the hit (per name; nogil_collections._fault_injection.hits());
 *   2. if a test installed a hook, calls hook(name) -- the hook may block on
 *      another thread (a real suspension) or run arbitrary code;
 *   3. otherwise, unless disabled, detaches the thread state for a moment
 *      (ncc_fi_detach: PyEval_SaveThread ... PyEval_RestoreThread), which on
 *      3.13t-3.15t suspends every critical section the thread holds, exactly
 *      as a contended PyMutex would, and lets a waiting writer in (counted:
 *      ncc_fi_detach_stats).
 * A point inside a read region or a write window (odd version) would be a bug
 * in itself; the point aborts the process there (Py_FatalError).
 *
 * The list of points is documented in docs/design.md and kept in sync by
 * tests/test_fault_injection.py, which greps the sources for the macros.
 * Each module that includes this header has its own counters and hook
 * (static state); nogil_collections._fault_injection drives all of them.
 */
#ifndef NOGIL_COLLECTIONS_FAULTINJECT_H
#define NOGIL_COLLECTIONS_FAULTINJECT_H

#include <Python.h>

#ifdef NCC_FAULT_INJECTION

#include <sched.h>
#include <string.h>
#include <stdint.h>
#include "qsbr.h"
#include "critical_section.h"

#define NCC_FI_MAX_POINTS 64
#define NCC_FI_NAME_MAX 64

typedef struct {
    const char *name;     /* a string literal; set once (CAS from NULL) */
    uint64_t hits;        /* atomic add */
} ncc_fi_counter;

static ncc_fi_counter ncc_fi_counters[NCC_FI_MAX_POINTS];
/* A Python callable (a strong reference kept forever: a hook that another
 * thread may be calling is never freed) or NULL. */
static PyObject *ncc_fi_hook = NULL;
/* 1: suspend at points without a hook (the default); 0: only count. */
static int ncc_fi_suspend = 1;
/* Allocation failure injection: the `countdown`-th next hit of the point
 * named ncc_fi_fail_name fails (then disarms).  Written by tests while no
 * container operation runs. */
static char ncc_fi_fail_name[NCC_FI_NAME_MAX];
static long ncc_fi_fail_countdown = 0;
static __thread int ncc_fi_in_hook = 0;
/* Detaches at points reached with an active critical section, and how many
 * of those found the section suspended while detached (ncc_fi_point). */
static uint64_t ncc_fi_detached_active = 0;
static uint64_t ncc_fi_detached_suspended = 0;

static ncc_fi_counter *ncc_fi_counter_for(const char *name) {
    for (int i = 0; i < NCC_FI_MAX_POINTS; i++) {
        /* Acquire; pairs with the CAS below that claimed the slot. */
        const char *cur = __atomic_load_n(&ncc_fi_counters[i].name, __ATOMIC_ACQUIRE);
        if (cur == NULL) {
            const char *expected = NULL;
            if (__atomic_compare_exchange_n(&ncc_fi_counters[i].name, &expected, name, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                return &ncc_fi_counters[i];
            }
            cur = expected;
        }
        if (cur == name || strcmp(cur, name) == 0) return &ncc_fi_counters[i];
    }
    return NULL;   /* table full: counted nowhere (the sync test would notice) */
}

static void ncc_fi_count(const char *name) {
    ncc_fi_counter *c = ncc_fi_counter_for(name);
    /* Relaxed: a statistic. */
    if (c != NULL) __atomic_fetch_add(&c->hits, 1, __ATOMIC_RELAXED);
}

#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
/* The innermost active critical section's mutexes (NULL where none). */
static void ncc_fi_section_mutexes(PyMutex **m1, PyMutex **m2) {
    *m1 = *m2 = NULL;
    /* Include/cpython/critical_section.h: bit 0 _Py_CRITICAL_SECTION_INACTIVE,
     * bit 1 _Py_CRITICAL_SECTION_TWO_MUTEXES. */
    uintptr_t tag = PyThreadState_Get()->critical_section;
    if (tag == 0 || (tag & 1)) return;
    PyCriticalSection *c = (PyCriticalSection *)(tag & ~(uintptr_t)3);
    *m1 = c->_cs_mutex;
    if (tag & 2) *m2 = ((PyCriticalSection2 *)c)->_cs_mutex2;
}

/* PyMutex._bits (Include/cpython/lock.h): 1 locked, 2 a waiter is parked. */
static int ncc_fi_mutex_bits(PyMutex *m) {
    return m == NULL ? 0 : __atomic_load_n(&m->_bits, __ATOMIC_RELAXED);
}
#endif

/* Suspend the thread's critical sections for a moment: detach, which
 * unlocks them (_PyThreadState_Detach -> _PyCriticalSection_SuspendAll,
 * 3.13 to 3.15), let another thread in, re-attach (which re-locks them).
 *
 * No sched_yield() when nobody waits: on an overloaded machine (more
 * runnable threads than cores) every sched_yield() gives away the rest of
 * the time slice, milliseconds, and a test doing O(n) points per operation
 * (append_if_absent, clear) then cannot finish, and a lock-free reader on the
 * same core only ever runs while the writer sits at a point.  Instead:
 *   - a thread parked on one of the section's mutexes is woken by the
 *     unlock; wait (bounded) until some thread has taken the mutex, so the
 *     suspension really hands the section over, as a contended PyMutex does;
 *   - otherwise spin briefly, a window for a thread spinning on the mutex
 *     (PyMutex spins before it parks, Python/lock.c) on another core. */
static void ncc_fi_detach(void) {
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
    PyMutex *m1, *m2;
    ncc_fi_section_mutexes(&m1, &m2);
    int waiter = ((ncc_fi_mutex_bits(m1) | ncc_fi_mutex_bits(m2)) & 2) != 0;
    /* The detach suspends the thread's critical sections
     * (PyEval_SaveThread -> _PyThreadState_Detach -> detach_thread ->
     * _PyCriticalSection_SuspendAll: Python/ceval_gil.c 3.14.7:639-642,
     * Python/pystate.c 3.14.7:2249-2255; 3.15.0rc2 ceval_gil.c:643-646,
     * pystate.c:2287-2293).  Checked, not assumed: a section that was active
     * before the detach must be tagged _Py_CRITICAL_SECTION_INACTIVE (bit 0)
     * while we are detached; ncc_fi_detach_stats() reports both counts and
     * tests/test_fault_injection.py requires them equal. */
    uintptr_t before = PyThreadState_Get()->critical_section;
    PyThreadState *ts = PyEval_SaveThread();
    /* Our own, detached thread state: only this thread writes its
     * critical_section (SuspendAll ran above, in this thread). */
    uintptr_t during = ts->critical_section;
    if (before != 0 && (before & 1) == 0) {
        /* Relaxed: statistics, read after the threads are joined. */
        __atomic_fetch_add(&ncc_fi_detached_active, 1, __ATOMIC_RELAXED);
        if ((during & 1) != 0) {
            __atomic_fetch_add(&ncc_fi_detached_suspended, 1, __ATOMIC_RELAXED);
        }
    }
    if (waiter) {
        /* Bounded: the woken waiter may not get a CPU soon. */
        for (int i = 0; i < 64; i++) {
            if ((ncc_fi_mutex_bits(m1) | ncc_fi_mutex_bits(m2)) & 1) break;
            sched_yield();
        }
    }
    else {
        for (int i = 0; i < 8; i++) ncc_cpu_relax();
    }
    PyEval_RestoreThread(ts);
#else
    /* GIL builds: no critical sections; releasing the GIL and yielding lets
     * a thread waiting for it run. */
    PyThreadState *ts = PyEval_SaveThread();
    sched_yield();
    PyEval_RestoreThread(ts);
#endif
}

static void ncc_fi_point(const char *name) {
    ncc_fi_count(name);
    if (ncc_fi_in_hook) return;
    if (ncc_qsbr_in_region()) {
        Py_FatalError("nogil_collections fault injection: a suspension point inside a read region");
    }
#if defined(Py_GIL_DISABLED)
    if (ncc_cs_fast_held) {
        Py_FatalError("nogil_collections fault injection: a suspension point while a writer lock "
                      "is held without a critical section (ncc_cs_try_lock)");
    }
#endif
    /* Acquire; pairs with the release store in ncc_fi_set_hook. */
    PyObject *hook = __atomic_load_n(&ncc_fi_hook, __ATOMIC_ACQUIRE);
    if (hook != NULL) {
        ncc_fi_in_hook = 1;
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *arg = PyUnicode_FromString(name);
        PyObject *r = arg ? PyObject_CallOneArg(hook, arg) : NULL;
        Py_XDECREF(arg);
        if (r == NULL) PyErr_WriteUnraisable(hook);
        Py_XDECREF(r);
        PyErr_Restore(et, ev, tb);
        ncc_fi_in_hook = 0;
        return;
    }
    if (__atomic_load_n(&ncc_fi_suspend, __ATOMIC_RELAXED)) {
        ncc_fi_detach();
    }
}

/* Write-window check: a point must never be reached with an odd version. */
static inline void ncc_fi_point_checked(const char *name, uint64_t *version) {
    if (__atomic_load_n(version, __ATOMIC_RELAXED) & 1) {
        Py_FatalError("nogil_collections fault injection: a suspension point inside a write window");
    }
    ncc_fi_point(name);
}

static int ncc_fi_alloc_fails(const char *name) {
    ncc_fi_count(name);
    if (__atomic_load_n(&ncc_fi_fail_countdown, __ATOMIC_ACQUIRE) > 0
            && strcmp(ncc_fi_fail_name, name) == 0) {
        if (__atomic_sub_fetch(&ncc_fi_fail_countdown, 1, __ATOMIC_ACQ_REL) == 0) return 1;
    }
    return 0;
}

#define NCC_FAULT_INJECTION_ENABLED 1
#define NCC_SUSPEND_POINT(name) ncc_fi_point(name)
#define NCC_SUSPEND_POINT_CHECKED(name, version) ncc_fi_point_checked((name), (version))
#define NCC_ALLOC_FAILS(name) ncc_fi_alloc_fails(name)
/* Count-only: makes a structural event (a read region's start) visible to
 * tests; never suspends (it may sit inside a read region). */
#define NCC_FI_COUNT(name) ncc_fi_count(name)

/* ---- control, for the module-level functions (faultinject.pxi) ---- */
static void ncc_fi_set_hook(PyObject *hook) {
    Py_XINCREF(hook);    /* never released: see ncc_fi_hook */
    /* Release; pairs with the acquire load in ncc_fi_point. */
    __atomic_store_n(&ncc_fi_hook, hook, __ATOMIC_RELEASE);
}
static void ncc_fi_set_suspend(int on) {
    __atomic_store_n(&ncc_fi_suspend, on, __ATOMIC_RELAXED);
}
static int ncc_fi_arm_alloc_failure(const char *name, long nth) {
    if (strlen(name) >= NCC_FI_NAME_MAX) return -1;
    __atomic_store_n(&ncc_fi_fail_countdown, 0, __ATOMIC_RELEASE);
    strcpy(ncc_fi_fail_name, name);
    /* Release; pairs with the acquire load in ncc_fi_alloc_fails. */
    __atomic_store_n(&ncc_fi_fail_countdown, nth, __ATOMIC_RELEASE);
    return 0;
}
static PyObject *ncc_fi_hits(void) {
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (int i = 0; i < NCC_FI_MAX_POINTS; i++) {
        const char *name = __atomic_load_n(&ncc_fi_counters[i].name, __ATOMIC_ACQUIRE);
        if (name == NULL) break;
        PyObject *v = PyLong_FromUnsignedLongLong(
            __atomic_load_n(&ncc_fi_counters[i].hits, __ATOMIC_RELAXED));
        if (v == NULL || PyDict_SetItemString(d, name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

/* (detaches with an active section, of which found suspended) */
static PyObject *ncc_fi_detach_stats(void) {
    return Py_BuildValue("(KK)",
        (unsigned long long)__atomic_load_n(&ncc_fi_detached_active, __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&ncc_fi_detached_suspended, __ATOMIC_RELAXED));
}

#else  /* normal build: no cost at all */

#define NCC_FAULT_INJECTION_ENABLED 0
#define NCC_SUSPEND_POINT(name) ((void)0)
#define NCC_SUSPEND_POINT_CHECKED(name, version) ((void)0)
#define NCC_ALLOC_FAILS(name) (0)
#define NCC_FI_COUNT(name) ((void)0)
static inline void ncc_fi_set_hook(PyObject *hook) { (void)hook; }
static inline void ncc_fi_set_suspend(int on) { (void)on; }
static inline int ncc_fi_arm_alloc_failure(const char *name, long nth) {
    (void)name; (void)nth; return -1;
}
static inline PyObject *ncc_fi_hits(void) { return PyDict_New(); }
static inline PyObject *ncc_fi_detach_stats(void) { return Py_BuildValue("(ii)", 0, 0); }

#endif

/* For tests in every build: 1 if the calling thread holds an active (not
 * suspended) critical section, 0 if not, -1 where there are none (GIL
 * builds).  3.13's PyThreadState.critical_section is the innermost section,
 * tagged with _Py_CRITICAL_SECTION_INACTIVE (bit 0) while suspended
 * (Include/internal/pycore_critical_section.h). */
static inline int ncc_in_critical_section(void) {
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
    uintptr_t cs = PyThreadState_Get()->critical_section;
    return cs != 0 && (cs & 1) == 0;
#else
    return -1;
#endif
}

#endif /* NOGIL_COLLECTIONS_FAULTINJECT_H */
