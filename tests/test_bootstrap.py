"""tools/bootstrap_python_ft.sh: the checks that run before any CPython build (issue 20).

A missing or altered source tarball stops the build with an error naming the file; a
version that cannot be had exits 3 (make test skips it) and says how to provide it; an
override of the wrong version is an error.  Every case here stops before compiling.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "bootstrap_python_ft.sh"
PINNED = {line.split()[1]: line.split()[0]
          for line in (ROOT / "tools" / "cpython-sources.sha256").read_text().splitlines()
          if line.strip()}
TOOLS_PATH = "/usr/bin:/bin"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("bash") is None or shutil.which("sha256sum") is None,
    reason="the bootstrap script needs Linux, bash and sha256sum",
)


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON_FT", "NOGIL_COLLECTIONS_", "PYTHON_GIL"))}
    base.update(PATH=TOOLS_PATH, NOGIL_COLLECTIONS_CACHE=str(tmp_path / "cache"))
    base.update(env)
    return subprocess.run(["bash", str(SCRIPT), *args], env=base, capture_output=True,
                          text=True, timeout=120, check=False)


def _name(version: str) -> str:
    return next(n for n in PINNED if n.startswith(f"Python-{version}."))


@pytest.fixture
def no_ft_on_path() -> None:
    for v in ("3.14", "3.15"):
        if shutil.which(f"python{v}t", path=TOOLS_PATH):
            pytest.skip(f"python{v}t is on {TOOLS_PATH}: the script would use it")


@pytest.mark.parametrize("version", ["3.14", "3.15"])
def test_altered_tarball_stops_naming_the_file(tmp_path: Path, no_ft_on_path: None,
                                               version: str) -> None:
    folder = tmp_path / "tarballs"
    folder.mkdir()
    bad = folder / _name(version)
    bad.write_bytes(b"not the release")
    r = _run(tmp_path, version, NOGIL_COLLECTIONS_TARBALLS=str(folder))
    assert r.returncode == 1, r.stderr
    assert f"altered source tarball: {bad}" in r.stderr
    assert hashlib.sha256(b"not the release").hexdigest() in r.stderr
    assert PINNED[bad.name] in r.stderr
    assert "step 1/5: verifying the sha256" in r.stderr
    assert "step 2/5" not in r.stderr  # nothing after the check
    assert not (tmp_path / "cache" / f"python{version}t").exists()


def test_missing_tarball_stops_naming_the_file(tmp_path: Path, no_ft_on_path: None) -> None:
    folder = tmp_path / "tarballs"
    folder.mkdir()
    r = _run(tmp_path, "3.15", NOGIL_COLLECTIONS_TARBALLS=str(folder))
    assert r.returncode == 1, r.stderr
    assert f"missing source tarball: {folder / _name('3.15')}" in r.stderr


def test_named_folder_that_does_not_exist_is_an_error(tmp_path: Path,
                                                      no_ft_on_path: None) -> None:
    r = _run(tmp_path, "3.14", NOGIL_COLLECTIONS_TARBALLS=str(tmp_path / "nowhere"))
    assert r.returncode == 1, r.stderr
    assert str(tmp_path / "nowhere") in r.stderr


def test_source_mode_checks_the_hash_too(tmp_path: Path) -> None:
    folder = tmp_path / "tarballs"
    folder.mkdir()
    (folder / _name("3.14")).write_bytes(b"x")
    r = _run(tmp_path, "--source", "3.14", NOGIL_COLLECTIONS_TARBALLS=str(folder))
    assert r.returncode == 1 and "altered source tarball" in r.stderr, r.stderr


@pytest.mark.parametrize("version", ["3.14", "3.15"])
def test_no_tarball_folder_means_not_available_with_a_hint(tmp_path: Path, no_ft_on_path: None,
                                                           version: str) -> None:
    r = _run(tmp_path, version)
    assert r.returncode == 3, r.stderr
    assert "NOT AVAILABLE" in r.stderr
    assert f"PYTHON_FT_{version.replace('.', '')}=" in r.stderr
    assert "CPYTHON_TARBALLS=" in r.stderr and _name(version) in r.stderr
    assert r.stdout == ""


def test_no_build_forbids_building(tmp_path: Path) -> None:
    if shutil.which("python3.13t", path=TOOLS_PATH):
        pytest.skip("python3.13t is on PATH")
    r = _run(tmp_path, "3.13", NOGIL_COLLECTIONS_NO_BUILD="1")
    assert r.returncode == 3, r.stderr
    assert "NOGIL_COLLECTIONS_NO_BUILD=1" in r.stderr


def test_override_of_another_version_is_an_error(tmp_path: Path) -> None:
    # The running interpreter, given as the override of a version it is not.
    other = "3.14" if sys.version_info[:2] == (3, 15) else "3.15"
    tag = other.replace(".", "")
    r = _run(tmp_path, other, **{f"PYTHON_FT_{tag}": sys.executable})
    assert r.returncode == 1, r.stderr
    assert f"PYTHON_FT_{tag}=" in r.stderr
    assert f"is not a free-threaded CPython {other}" in r.stderr


def test_the_running_free_threaded_interpreter_is_accepted_for_its_version(
        tmp_path: Path) -> None:
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        pytest.skip("needs a free-threaded interpreter")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    exe = getattr(sys, "_base_executable", sys.executable)
    tag = version.replace(".", "")
    r = _run(tmp_path, version, **{f"PYTHON_FT_{tag}": exe})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == exe
    # PYTHON_FT fills the slot of its own version, and no other.
    r = _run(tmp_path, version, PYTHON_FT=exe)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == exe, r.stderr
    other = "3.15" if version != "3.15" else "3.14"
    if not shutil.which(f"python{other}t", path=TOOLS_PATH):
        r = _run(tmp_path, other, PYTHON_FT=exe)
        assert r.returncode == 3, r.stderr


def test_usage_error() -> None:
    r = subprocess.run(["bash", str(SCRIPT), "3.12"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 2 and "usage" in r.stderr
