"""The package metadata tells the truth (issue 15, "Packaging that tells the truth";
issue 20: the classifiers claim only what CI tests, the markers hold per interpreter)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
GROUPS = PYPROJECT["dependency-groups"]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

# The free-threaded versions `make test` runs (Makefile FT_VERSIONS) and the
# GIL interpreter it runs beside them (.venv-gil: the machine's python3, 3.11).
FT_TESTED = set(re.search(r"^FT_VERSIONS := (.+)$", MAKEFILE, re.M).group(1).split())  # type: ignore[union-attr]
GIL_TESTED = {"3.11"}
INTERPRETERS = sorted(FT_TESTED | GIL_TESTED)


def _env(version: str) -> dict[str, str]:
    return {"python_version": version, "python_full_version": f"{version}.0", "extra": "testing"}


def _active(reqs: list[Requirement], name: str, version: str) -> list[Requirement]:
    return [r for r in reqs
            if r.name == name and (r.marker is None or r.marker.evaluate(_env(version)))]


def _group(name: str) -> list[Requirement]:
    return [Requirement(r) for r in GROUPS[name] if isinstance(r, str)]


def test_the_tested_versions_are_the_three_free_threaded_lines() -> None:
    assert FT_TESTED == {"3.13", "3.14", "3.15"}
    # the primary, default of the single-interpreter targets
    assert re.search(r"^FT \?= 3\.14$", MAKEFILE, re.M)
    required = re.search(r"NOGIL_COLLECTIONS_REQUIRE_FT:-([0-9.,]+)\}", CI_RUN)
    assert required is not None, "CI must require the free-threaded versions"
    assert set(required.group(1).split(",")) == FT_TESTED


def test_classifiers_name_exactly_the_tested_versions() -> None:
    versions = {m.group(1) for c in PROJECT["classifiers"]
                if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))}
    assert versions == FT_TESTED | GIL_TESTED
    free_threading = "Programming Language :: Python :: Free Threading :: 3 - Stable"
    assert free_threading in PROJECT["classifiers"]
    assert PROJECT["requires-python"] == ">=3.11"


def test_readme_support_table_says_tested_for_each_classifier() -> None:
    table = README[README.index("## Supported Pythons"):]
    table = table[:table.index("\n## ")]
    for v in FT_TESTED:
        row = next(line for line in table.splitlines() if f"CPython {v}t" in line)
        assert "tested" in row and "untested" not in row, row
    row = next(line for line in table.splitlines() if "CPython 3.11 with the GIL" in line)
    assert "tested" in row, row


def test_pinned_tarballs_cover_the_versions_built_from_tarballs() -> None:
    pinned = (ROOT / "tools" / "cpython-sources.sha256").read_text(encoding="utf-8").split("\n")
    names = {line.split()[1] for line in pinned if line.strip()}
    for line in pinned:
        if line.strip():
            assert re.fullmatch(r"[0-9a-f]{64}  Python-3\.1[45]\.\S+\.tar\.xz", line), line
    assert {re.match(r"Python-(3\.\d+)\.", n).group(1) for n in names} == FT_TESTED - {"3.13"}  # type: ignore[union-attr]


def test_hypothesis_pin_only_where_it_is_needed() -> None:
    reqs = [Requirement(r) for r in PROJECT["optional-dependencies"]["testing"]]
    for version, newest_allowed in (("3.11", True), ("3.12", True), ("3.13", False),
                                    ("3.14", True), ("3.15", True)):
        active = _active(reqs, "hypothesis", version)
        assert len(active) == 1, version
        assert active[0].specifier.contains("6.170.15") is newest_allowed, version
        assert active[0].specifier.contains("6.155.7"), version


@pytest.mark.parametrize("version", INTERPRETERS)
def test_dependency_groups_give_each_interpreter_one_pin(version: str) -> None:
    # Each pinned package resolves to exactly one pin, or none, per interpreter.
    for group in GROUPS:
        reqs = _group(group)
        for name in {r.name for r in reqs}:
            active = _active(reqs, name, version)
            assert len(active) <= 1, (group, name, version)
            for r in active:
                assert str(r.specifier).startswith("=="), r


@pytest.mark.parametrize(("name", "where"), [
    # current hypothesis everywhere but 3.13t (no cp313t wheel after 6.155)
    ("hypothesis", {"3.11", "3.13", "3.14", "3.15"}),
    # cffi 2.x: cp314t / cp315t wheels, nothing that loads on cp313t
    ("atomics", {"3.11", "3.14", "3.15"}),
    # no free-threaded orjson wheel at all
    ("orjson", {"3.11"}),
    ("msgspec", {"3.11", "3.14", "3.15"}),
    ("matplotlib", {"3.11", "3.13", "3.14", "3.15"}),
    ("ft-utils", {"3.13", "3.14", "3.15"}),
])
def test_dependency_markers_per_interpreter(name: str, where: set[str]) -> None:
    reqs = _group("test") + _group("bench")
    got = {v for v in INTERPRETERS if _active(reqs, name, v)}
    assert got == where, name
    if name == "hypothesis":
        for v in INTERPRETERS:
            (pin,) = _active(reqs, name, v)
            assert pin.specifier.contains("6.155.7") is (v == "3.13"), v
