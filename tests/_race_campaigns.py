"""Race-test campaigns that test_race_list.py and test_race_dict.py run alike."""

from __future__ import annotations

from typing import Any

import pytest

from nogil_collections.testing import OpTable, explore


def explore_one_op(factory: type, model: Any, table: OpTable, op: str) -> None:
    """A campaign in which every scenario calls ``op`` at least once (the
    ``focus``) next to the other ops of ``table`` (writers that move the
    container under it), so that its coverage does not depend on luck.
    Skips if ``factory`` has no ``op`` yet."""
    report = explore(factory, table, model, focus=op, threads=(2, 3),
                     ops_per_thread=(1, 3), examples=10, repetitions=5)
    if op in report.ops_skipped:
        pytest.skip(f"{factory.__name__} has no {op!r} (yet)")
    assert op in report.ops_seen, report
