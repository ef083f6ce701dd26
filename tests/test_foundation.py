"""The package imports, is compiled, and keeps the GIL off on free-threaded builds."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import sysconfig

import pytest

import nogil_collections

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_public_names() -> None:
    assert set(nogil_collections.__all__) >= {"ConcurrentList", "ConcurrentDict"}
    assert nogil_collections.__version__


@pytest.mark.parametrize(
    "module",
    ["nogil_collections._list", "nogil_collections._dict", "nogil_collections._core._qsbr"],
)
def test_modules_are_compiled_extensions(module: str) -> None:
    mod = __import__(module, fromlist=["_"])
    assert mod.__file__ is not None
    assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__


@pytest.mark.skipif(
    not FREE_THREADED_BUILD, reason="only a free-threaded build can run without the GIL"
)
def test_import_does_not_reenable_the_gil() -> None:
    # A fresh interpreter: importing must not turn the GIL back on (every
    # module declares freethreading_compatible).  -W error turns CPython's
    # "the GIL has been enabled" RuntimeWarning into a failure too.
    code = (
        "import sys, nogil_collections, nogil_collections._debug, nogil_collections.testing;"
        "assert not sys._is_gil_enabled(), 'GIL re-enabled'"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_build_kind_reported_consistently() -> None:
    from nogil_collections import _debug

    assert _debug.FREE_THREADED_BUILD == FREE_THREADED_BUILD
    if not FREE_THREADED_BUILD:
        assert _debug.gil_enabled()
