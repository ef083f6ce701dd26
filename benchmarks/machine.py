"""What a result was measured on: machine, interpreter build and package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from benchmarks.registry import Impl, gil_enabled, package_versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus() -> int | None:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return os.cpu_count()
    return len(getter(0))


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False
    )


def _git_commit() -> str | None:
    try:
        out = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def interpreter_tag() -> str:
    """Short tag such as ``cp313t`` or ``cp311`` for file names."""
    ft = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"cp{sys.version_info[0]}{sys.version_info[1]}{ft}"


def describe(impls: list[Impl]) -> dict[str, Any]:
    """Everything needed to know what a result file was measured on."""
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    try:
        import nogil_collections

        ours_path: str | None = nogil_collections.__file__
    except ImportError:
        ours_path = None
    return {
        "machine": {
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": _usable_cpus(),
            "arch": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "load_average_at_start": _load_average(),
        },
        "interpreter": {
            "version": sys.version.split()[0],
            "full_version": sys.version,
            "implementation": platform.python_implementation(),
            "tag": interpreter_tag(),
            "free_threaded_build": free_threaded,
            "gil_enabled_at_runtime": gil_enabled(),
            "executable": sys.executable,
            "compiler": platform.python_compiler(),
        },
        "packages": package_versions(impls),
        "nogil_collections_path": ours_path,
        "git_commit": _git_commit(),
    }
