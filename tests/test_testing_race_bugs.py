"""The race-bug corpus (tests/_race_bugs.py) under spec-free ``find_race(cls)``.

Each bug is caught by ``find_race(Buggy)`` with no other argument, and no
locked version is flagged.  The campaigns are deterministic (default seed 0,
controlled executor for these pure-Python classes), on GIL and free-threaded
builds alike.
"""

from __future__ import annotations

import time

import pytest

from _race_bugs import BUGS, Bank, Counter, LockedBank, RaceBug, bank_conserves_money
from nogil_collections.testing import Deadlock, NotLinearizable, find_race

CPU_SECONDS = 60.0  # issue 22's target, per bug; CPU time, so a loaded machine does not flake


def test_lost_update_counter_in_three_lines() -> None:
    assert find_race(Counter) is not None


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_bug_is_caught_spec_free(bug: RaceBug) -> None:
    start = time.process_time()
    found = find_race(bug.buggy, **bug.options)
    spent = time.process_time() - start
    assert found is not None, f"{bug.name}: no race found in {bug.buggy.__qualname__}"
    assert isinstance(found, Deadlock if bug.deadlock else NotLinearizable), str(found)
    assert spent < CPU_SECONDS, f"{bug.name}: {spent:.1f} s of CPU to catch it"
    if not bug.deadlock:
        assert bug.buggy.__qualname__ in str(found)  # the report names the model (the class)


@pytest.mark.parametrize("bug", BUGS, ids=[b.name for b in BUGS])
def test_locked_version_is_not_flagged(bug: RaceBug) -> None:
    found = find_race(bug.locked, **bug.options)
    assert found is None, str(found)


def test_corpus_has_ten_shapes_at_least() -> None:
    assert len({b.shape for b in BUGS}) >= 10
    assert len({b.buggy for b in BUGS} | {b.locked for b in BUGS}) == 2 * len(BUGS)


def test_bank_invariant_holds_on_the_locked_bank_and_breaks_on_the_racy_one() -> None:
    assert find_race(LockedBank, invariant=bank_conserves_money) is None
    found = find_race(Bank, invariant=bank_conserves_money)
    assert isinstance(found, NotLinearizable)
