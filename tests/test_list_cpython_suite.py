"""CPython's own list test suite (Lib/test/list_tests.py), run on ConcurrentList.

``list_tests.CommonTest`` (with ``seq_tests.CommonTest``) is what CPython
runs against ``list`` and ``UserList``; here ``type2test`` is ConcurrentList.
It is taken from the running interpreter's standard library, so each
interpreter checks the behaviour of its own ``list``.
"""

from __future__ import annotations

import pytest

from nogil_collections import ConcurrentList

list_tests = pytest.importorskip(
    "test.list_tests", reason="CPython's test package is not installed"
)


class TestCPythonListSuite(list_tests.CommonTest):  # type: ignore[misc,name-defined]
    type2test = ConcurrentList


test_list = pytest.importorskip("test.test_list", reason="CPython's test package is not installed")


class TestCPythonListTest(test_list.ListTest):  # type: ignore[misc,name-defined]
    """test_list.ListTest's own tests (iterator pickling, keyword arguments,
    operands that mutate the list, overflow ...), on ConcurrentList."""

    type2test = ConcurrentList


# Those of list_tests.CommonTest already run in TestCPythonListSuite.
for _name in dir(list_tests.CommonTest):
    if _name.startswith("test_"):
        setattr(TestCPythonListTest, _name, None)
