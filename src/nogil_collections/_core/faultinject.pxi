# Module-level control functions of the fault-injection build, included by
# each module that has suspension points (faultinject.h keeps per-module
# state).  nogil_collections._fault_injection drives them all; in a normal
# build they report "not enabled" and do nothing.

_FAULT_INJECTION = bool(NCC_FAULT_INJECTION_ENABLED)


def _fi_set_hook(hook):
    """Call hook(point_name) at every suspension point (None: no hook)."""
    if hook is not None and not callable(hook):
        raise TypeError("hook must be callable or None")
    ncc_fi_set_hook(<PyObject *>hook if hook is not None else NULL)


def _fi_set_suspend(bint on):
    """Detach briefly at points without a hook (the default) or only count."""
    ncc_fi_set_suspend(on)


def _fi_arm_alloc_failure(str name, long nth=1):
    """Make the nth next allocation at point `name` fail (MemoryError)."""
    cdef bytes b = name.encode("ascii")
    if ncc_fi_arm_alloc_failure(b, nth) < 0:
        raise ValueError("fault injection is not built in, or the name is too long")


def _fi_hits():
    """{point name: times reached} in this module."""
    return ncc_fi_hits()


def _fi_detach_stats():
    """(detaches at points with an active critical section, of which the
    section was found suspended while detached) in this module."""
    return ncc_fi_detach_stats()


def _in_critical_section():
    """True if this thread holds an active critical section, False if not;
    None on GIL builds (which have none).  For tests in every build."""
    cdef int r = ncc_in_critical_section()
    return None if r < 0 else bool(r)
