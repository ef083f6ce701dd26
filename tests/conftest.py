"""Shared pytest configuration: interpreter facts, the free-threaded marker, and
the ``held`` fixture (a thread spinning inside an object's critical section)."""

from __future__ import annotations

import gc
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator

import pytest

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def pytest_report_header(config: pytest.Config) -> str:
    kind = "free-threaded build" if FREE_THREADED_BUILD else "GIL build"
    version = sys.version.split()[0]
    return f"nogil_collections: {version} {kind}, GIL enabled at runtime: {gil_enabled()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FREE_THREADED_BUILD and not gil_enabled():
        return
    skip = pytest.mark.skip(
        reason="needs a free-threaded interpreter with the GIL disabled: under the GIL "
        "these threads never run in parallel, so the race cannot be exercised"
    )
    for item in items:
        if "free_threaded_only" in item.keywords:
            item.add_marker(skip)

pytest_plugins = ["nogil_collections.testing.pytest_plugin"]

#: How long a ``held`` holder spins before giving up (a failing test ends).
HOLD_SECONDS = 10.0


@pytest.fixture
def held() -> Iterator[Callable[[object], threading.Thread]]:
    """hold(obj): a thread enters obj's critical section and spins in it,
    never detaching (so the section is never suspended), until the test
    calls ``_selftest.release_section()`` or ends; returns that thread.  The cyclic GC is off
    meanwhile: the spinning holder never reaches a safe point, so a
    collection would wait for it."""
    from nogil_collections._core import _selftest as st

    holders: list[threading.Thread] = []
    was_enabled = gc.isenabled()
    gc.disable()

    def hold(obj: object) -> threading.Thread:
        t = threading.Thread(target=st.hold_section, args=(obj, HOLD_SECONDS))
        t.start()
        holders.append(t)
        deadline = time.monotonic() + HOLD_SECONDS
        while not st.section_held():
            assert time.monotonic() < deadline, "holder never entered the section"
            time.sleep(0.001)
        return t

    try:
        yield hold
    finally:
        st.release_section()
        for t in holders:
            t.join(HOLD_SECONDS + 5)
        if was_enabled:
            gc.enable()
