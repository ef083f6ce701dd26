"""Private debug and introspection hooks for tests.  Not a public API.

``qsbr_stats()`` reports the reclamation domain's counters; containers expose
``_check()``, which raises ``AssertionError`` on a broken internal invariant.
"""

from __future__ import annotations

import sys
import sysconfig

from nogil_collections._core import _qsbr

qsbr_stats = _qsbr.stats
qsbr_poll = _qsbr.poll
qsbr_synchronize = _qsbr.synchronize
qsbr_set_pending_limit = _qsbr.set_pending_limit
qsbr_reset_high_water = _qsbr.reset_high_water

#: True when this interpreter was built with ``--disable-gil``.
FREE_THREADED_BUILD: bool = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is active right now (False on a free-threaded run)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())
