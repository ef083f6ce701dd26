"""The package metadata tells the truth (issue 15, "Packaging that tells the truth")."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
README = (ROOT / "README.md").read_text(encoding="utf-8")

TESTED = {"3.11", "3.13"}  # .venv-gil and .venv


def _env(version: str) -> dict[str, str]:
    return {"python_version": version, "python_full_version": f"{version}.0", "extra": "testing"}


def test_classifiers_name_only_tested_or_declared_untested_versions() -> None:
    versions = {m.group(1) for c in PROJECT["classifiers"]
                if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))}
    assert TESTED <= versions
    for untested in versions - TESTED:
        row = next(line for line in README.splitlines() if f"CPython {untested}t" in line)
        assert "built for, untested" in row, row


def test_hypothesis_pin_only_where_it_is_needed() -> None:
    reqs = [Requirement(r) for r in PROJECT["optional-dependencies"]["testing"]]
    hyp = [r for r in reqs if r.name == "hypothesis"]
    for version, newest_allowed in (("3.11", True), ("3.12", True), ("3.13", False),
                                    ("3.14", True)):
        active = [r for r in hyp if r.marker is None or r.marker.evaluate(_env(version))]
        assert len(active) == 1, version
        assert active[0].specifier.contains("6.170.15") is newest_allowed, version
        assert active[0].specifier.contains("6.155.7"), version

