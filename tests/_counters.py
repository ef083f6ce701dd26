"""The sequential counter: the model that the tests of nogil_collections.testing
check their counters against (racy, locked, two-step), so that each of them
means the same specification."""

from __future__ import annotations


class CounterSpec:
    """incr() adds one and returns the new value; get() reads it."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def incr(self) -> int:
        self.value += 1
        return self.value

    def get(self) -> int:
        return self.value
