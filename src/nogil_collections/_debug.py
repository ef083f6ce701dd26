"""Private debug and introspection hooks for tests.  Not a public API.

``qsbr_stats()`` reports the reclamation domain's counters (see
docs/design.md, "Memory reclamation"); containers expose ``_check()``, which
raises ``AssertionError`` on a broken internal invariant, and ``check(obj)``
calls it.
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Any

from nogil_collections._core import _qsbr

#: Snapshot of the domain's counters: registered_threads, thread_records,
#: retired/freed counts and bytes, pending_bytes/pending_count, their
#: high-water marks, the limits, synchronize_count, poll_count, wr_seq,
#: uses_membarrier.
qsbr_stats = _qsbr.stats
#: Free whatever retired memory has become safe (never waits).
qsbr_poll = _qsbr.poll
#: Wait for the readers currently inside a read region, then free everything.
qsbr_synchronize = _qsbr.synchronize
#: ``qsbr_set_pending_limit(limit_bytes=-1, count=-1)``: the backlog bound.
qsbr_set_pending_limit = _qsbr.set_pending_limit
qsbr_reset_high_water = _qsbr.reset_high_water
#: Fill reclaimed blocks with 0xDB before freeing them (use-after-free probe).
qsbr_set_poison = _qsbr.set_poison
#: Readers poll once per this many read regions while memory is pending.
QSBR_READER_POLL_PERIOD: int = _qsbr.READER_POLL_PERIOD
QSBR_DEFAULT_PENDING_LIMIT: int = _qsbr.DEFAULT_PENDING_LIMIT
QSBR_DEFAULT_PENDING_COUNT_LIMIT: int = _qsbr.DEFAULT_PENDING_COUNT_LIMIT

#: True when this interpreter was built with ``--disable-gil``.
FREE_THREADED_BUILD: bool = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is active right now (False on a free-threaded run)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def check(obj: Any) -> None:
    """Run ``obj._check()``: raises AssertionError on a broken invariant."""
    obj._check()
