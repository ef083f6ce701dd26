"""Shared pytest configuration: interpreter facts and the free-threaded marker."""

from __future__ import annotations

import sys
import sysconfig

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
