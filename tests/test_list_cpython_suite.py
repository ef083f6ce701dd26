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
