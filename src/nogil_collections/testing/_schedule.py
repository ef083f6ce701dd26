"""Schedules and the strategies that choose them, for the controlled executor.

A run of the controlled executor is a sequence of *switch points* (every
bytecode or every line of Python code a scenario thread executes, plus one
before each operation).  At a switch point where more than one thread could
run, the scheduler makes a *decision*: which thread runs next.  The list of
decisions, in order, is the :class:`Schedule`; it is all that is needed to
run the same interleaving again (:func:`replay`), because a scenario thread
only ever runs while it holds the scheduler's token.

Strategies decide, one schedule after another:

``random``
    every decision uniform among the runnable threads;
``pct``
    probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
    Nagarakatte, ASPLOS 2010): random distinct thread priorities, the
    highest-priority runnable thread always runs, and at ``d - 1`` random
    steps the running thread drops below every other.  A bug of depth ``d``
    is found by one schedule with probability at least ``1 / (n k^(d-1))``
    (n threads, k steps).  The first schedule uses ``d = 1`` (threads one
    after another), later ones cycle ``d`` through ``2 .. depth``;
``exhaustive``
    depth-first enumeration of every schedule with at most
    ``max_preemptions`` preemptions (CHESS-style iterative context bounding,
    Musuvathi & Qadeer, PLDI 2007), fewest preemptions first (which thread starts is free).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "GRANULARITIES",
    "STRATEGIES",
    "Chooser",
    "GuidedChooser",
    "PCTChooser",
    "RandomChooser",
    "Schedule",
    "Strategy",
    "default_choice",
]

GRANULARITIES = ("opcode", "line")
STRATEGIES = ("pct", "random", "exhaustive")


@dataclass(frozen=True)
class Schedule:
    """The decisions of one controlled run: at each choice point, the thread that ran next.

    ``str()`` gives a compact run-length form, ``"opcode: 0*3 1*5 0"``
    (thread 0 chosen at three choice points in a row, then thread 1 at five,
    then thread 0), that :meth:`parse` reads back.  After the last decision
    the scheduler keeps running the current thread while it can (the default
    choice), so trailing default decisions are left out.
    """

    decisions: tuple[int, ...]
    granularity: str = "opcode"

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, "
                             f"not {self.granularity!r}")

    def segments(self) -> list[tuple[int, int]]:
        """Run-length form: ``[(thread, how many decisions in a row), ...]``."""
        out: list[tuple[int, int]] = []
        for d in self.decisions:
            if out and out[-1][0] == d:
                out[-1] = (d, out[-1][1] + 1)
            else:
                out.append((d, 1))
        return out

    @classmethod
    def from_segments(cls, segments: Sequence[tuple[int, int]],
                      granularity: str = "opcode") -> Schedule:
        return cls(tuple(t for t, k in segments for _ in range(k)), granularity)

    @property
    def switches(self) -> int:
        """How often consecutive decisions name different threads."""
        return sum(1 for a, b in zip(self.decisions, self.decisions[1:], strict=False) if a != b)

    def __str__(self) -> str:
        body = " ".join(f"{t}*{k}" if k > 1 else str(t) for t, k in self.segments())
        return f"{self.granularity}: {body or '(default choices only)'}"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read back what ``str()`` printed."""
        granularity, sep, body = text.partition(":")
        if not sep:
            raise ValueError(f"not a schedule: {text!r} (expected 'opcode: 0*3 1 ...')")
        decisions: list[int] = []
        body = body.strip()
        if body and not body.startswith("("):
            for part in body.split():
                thread, star, count = part.partition("*")
                decisions.extend([int(thread)] * (int(count) if star else 1))
        return cls(tuple(decisions), granularity.strip())


def default_choice(runnable: Sequence[int], current: int | None) -> int:
    """The choice that needs no decision: keep running ``current``, else the lowest runnable."""
    if current is not None and current in runnable:
        return current
    return runnable[0]


class Chooser:
    """Picks the next thread at each choice point of one run."""

    def pick(self, runnable: Sequence[int], current: int | None, step: int) -> int:
        raise NotImplementedError


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, runnable: Sequence[int], current: int | None, step: int) -> int:
        return runnable[self.rng.randrange(len(runnable))]


class PCTChooser(Chooser):
    """PCT: highest priority runs; at each change point the running thread drops to the bottom.

    Initial priorities are ``depth .. depth + n - 1`` in random order; change
    point ``i`` (``1 <= i < depth``) is a step drawn uniformly from
    ``1 .. steps`` and sets the running thread's priority to ``depth - i``,
    below every initial priority and every earlier change.
    """

    def __init__(self, rng: random.Random, n_threads: int, depth: int, steps: int) -> None:
        order = list(range(n_threads))
        rng.shuffle(order)
        self.priority = {t: depth + rank for rank, t in enumerate(order)}
        points = sorted(rng.randint(1, max(1, steps)) for _ in range(depth - 1))
        self.changes = [(p, depth - 1 - i) for i, p in enumerate(points)]

    def pick(self, runnable: Sequence[int], current: int | None, step: int) -> int:
        # A change point may fall on a step without a choice: apply it at the next one.
        while self.changes and self.changes[0][0] <= step:
            _, low = self.changes.pop(0)
            if current is not None:
                self.priority[current] = low
        return max(runnable, key=self.priority.__getitem__)


@dataclass
class _ChoicePoint:
    options: tuple[int, ...]  # default choice first
    current: int | None
    chosen: int = 0  # index into options
    preemptions_before: int = 0
    first: bool = False  # which thread starts is a free choice, not a preemption

    def preempts(self, index: int) -> bool:
        return not self.first and self.current is not None \
            and self.current in self.options and self.options[index] != self.current


class GuidedChooser(Chooser):
    """Follows ``prefix`` decision by decision, then the default choice; logs every choice point.

    A decision of the prefix naming a thread that cannot run there is
    replaced by the default choice, so any prefix gives a valid run (the
    schedule shrinker relies on that).  ``log`` holds what was really chosen.
    """

    def __init__(self, prefix: Sequence[int] = ()) -> None:
        self.prefix = tuple(prefix)
        self.log: list[_ChoicePoint] = []

    def pick(self, runnable: Sequence[int], current: int | None, step: int) -> int:
        default = default_choice(runnable, current)
        options = (default, *(t for t in runnable if t != default))
        i = len(self.log)
        want = self.prefix[i] if i < len(self.prefix) else default
        index = options.index(want) if want in options else 0
        before = 0
        if self.log:
            last = self.log[-1]
            before = last.preemptions_before + (1 if last.preempts(last.chosen) else 0)
        self.log.append(_ChoicePoint(options, current, index, before, first=not self.log))
        return options[index]


@dataclass
class Strategy:
    """Hands out one :class:`Chooser` per schedule and learns from each run.

    ``kind`` is one of :data:`STRATEGIES`; ``depth`` is PCT's bug depth;
    ``max_preemptions`` bounds the exhaustive search.  ``seed`` makes the
    sequence of schedules reproducible.
    """

    kind: str = "pct"
    seed: int | str = 0
    depth: int = 3
    max_preemptions: int = 2
    _rng: random.Random = field(init=False, repr=False)
    _steps_seen: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.kind!r}")
        if self.depth < 1 or self.max_preemptions < 0:
            raise ValueError("need depth >= 1 and max_preemptions >= 0")
        self._rng = random.Random(str(self.seed))

    def choosers(self, n_threads: int) -> Iterator[Chooser]:
        """Choosers for successive schedules (endless, except for an exhausted search).

        After each run the caller reports its length with :meth:`observed`.
        """
        if self.kind == "random":
            while True:
                yield RandomChooser(random.Random(self._rng.random()))
        elif self.kind == "pct":
            i = 0
            while True:
                # d = 1 (no change point) runs the threads one after another: one
                # such schedule is enough; then cycle d = 2 .. depth.
                depth = 1 if i == 0 or self.depth == 1 else 2 + (i - 1) % (self.depth - 1)
                i += 1
                yield PCTChooser(random.Random(self._rng.random()), n_threads, depth,
                                 self._steps_seen or 1)
        else:
            yield from self._exhaustive()

    def observed(self, steps: int) -> None:
        """A run took ``steps`` switch points: PCT draws its change points from that range."""
        self._steps_seen = max(self._steps_seen, steps)

    def _exhaustive(self) -> Iterator[Chooser]:
        for bound in range(self.max_preemptions + 1):
            # Iterative context bounding: each pass enumerates every schedule with at
            # most `bound` preemptions (earlier passes' schedules come again, cheaply).
            stack: list[_ChoicePoint] = []
            while True:
                chooser = GuidedChooser([p.options[p.chosen] for p in stack])
                yield chooser
                stack = chooser.log
                if not _advance(stack, bound):
                    break


def _advance(stack: list[_ChoicePoint], bound: int) -> bool:
    """Move ``stack`` to the next schedule in depth-first order within ``bound`` preemptions."""
    while stack:
        top = stack[-1]
        top.chosen += 1
        while top.chosen < len(top.options):
            extra = 1 if top.preempts(top.chosen) else 0
            if top.preemptions_before + extra <= bound:
                return True
            top.chosen += 1
        stack.pop()
    return False
