"""pytest plugin for nogil_collections.testing: the ``--race-budget`` option.

Load it with ``pytest_plugins = ["nogil_collections.testing.pytest_plugin"]``.
``--race-budget=ci`` (default) runs each ``@race_test`` with its own numbers,
``deep`` runs 10x the examples and 5x the repetitions (``make race``), and an
integer sets the number of examples per test.  The controlled executor's
schedules per scenario scale like repetitions.
"""

from __future__ import annotations

import pytest

from nogil_collections.testing._race import Budget, current_budget, set_budget
from nogil_collections.testing._stamps import STAMP_COUNTER_KIND


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--race-budget",
        default="ci",
        help="race-test budget: 'ci' (default), 'deep', or an integer number of examples",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        set_budget(config.getoption("--race-budget"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"race testing: budget={current_budget().name}, stamp counter={STAMP_COUNTER_KIND}"


@pytest.fixture
def race_budget() -> Budget:
    """The active race-test budget (from ``--race-budget``)."""
    return current_budget()
