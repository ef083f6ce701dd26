"""pytest plugin for nogil_collections.testing (budget options).  Filled in by the testing issue."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--race-budget",
        default="ci",
        help="race-test budget: 'ci' (default), 'deep', or an integer number of examples",
    )
