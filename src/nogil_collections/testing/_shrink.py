"""Shrinking a failing schedule: fewer thread switches, earlier switch points.

Hypothesis shrinks the scenario; this shrinks the schedule of the failure it
ends with.  A schedule is a list of decisions, read as segments ("thread 0
for 14 choices, then thread 1 ...").  Candidates, most valuable first:
drop a segment (one switch fewer), then shorten one (its switch comes
earlier).  Each candidate is replayed; replaying any decision list is valid
(an impossible decision falls back to the default choice), and the schedule
kept is the one the replay *really* followed, so the result always replays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from nogil_collections.testing._schedule import Schedule

__all__ = ["shrink_schedule"]


def _size(s: Schedule) -> tuple[int, int]:
    return s.switches, len(s.decisions)


def _candidates(s: Schedule) -> Iterator[Schedule]:
    segs = s.segments()
    g = s.granularity
    for i in range(len(segs)):
        yield Schedule.from_segments(segs[:i] + segs[i + 1:], g)
    for i, (t, k) in enumerate(segs):
        for shorter in sorted({k // 2, k - 1} - {k}):
            if shorter >= 1:
                yield Schedule.from_segments([*segs[:i], (t, shorter), *segs[i + 1:]], g)


def shrink_schedule(
    schedule: Schedule,
    fails: Callable[[Schedule], Schedule | None],
    seconds: float,
    max_replays: int = 2000,
) -> Schedule:
    """Greedy shrinking: ``fails(candidate)`` replays a candidate and returns the schedule
    it really followed if the failure reproduces, else None.  Stops after ``seconds`` or
    ``max_replays`` replays, or when no candidate is smaller and still fails."""
    deadline = time.perf_counter() + seconds
    best = schedule
    replays = 0
    improved = True
    while improved:
        improved = False
        for candidate in _candidates(best):
            if time.perf_counter() > deadline or replays >= max_replays:
                return best
            replays += 1
            actual = fails(candidate)
            if actual is not None and _size(actual) < _size(best):
                best = actual
                improved = True
                break
    return best
