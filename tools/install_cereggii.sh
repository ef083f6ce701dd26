#!/usr/bin/env bash
# install_cereggii.sh VENV -- install the cereggii benchmark peer, pinned, into VENV.
#
# Called by tools/setup_venv.sh for the free-threaded venv only.  cereggii is a
# benchmark peer, never a dependency of the package: a failure here makes the
# benchmarks skip cereggii (with a note), nothing else.
#
# A wheel first: cereggii 1.0.1 ships cp314t and cp315t wheels, installed as
# they are.  For 3.13t (no cp313t wheel) it is built from source:
#
# Why a source build, and why this way:
#   * cereggii 1.0.1 ships no cp313t wheel, so pip builds its sdist.  Its build
#     backend (py-build-cmake) runs CMake's FindPython3, which needs
#     cmake >= 3.30 to recognise a free-threaded ("t" ABI) interpreter.
#   * With pip's default build isolation, FindPython3 searched PATH, met the
#     machine's GIL python3 first and failed ("Found unsuitable version 3.11,
#     required is exact version 3.13").
#   * So: a throw-away build venv on VENV's own base interpreter, holding pinned
#     cmake and py-build-cmake; the wheel is built there with
#     --no-build-isolation and that venv's bin/ first on PATH (plus
#     Python3_ROOT, which FindPython3 honours), so CMake finds exactly the
#     interpreter the wheel is for.  The built wheel is cached, and then
#     installed into VENV with --no-deps.  VENV itself gets nothing but cereggii.
#
# Idempotent: exits at once when VENV already imports the pinned version.
# Exit status: 0 installed (or already there), 1 could not install (reason printed).
set -euo pipefail

CEREGGII_VERSION=1.0.1
CMAKE_VERSION=3.31.10          # >= 3.30: FindPython3 knows the free-threaded ABI
PY_BUILD_CMAKE_VERSION=0.5.1   # cereggii 1.0.1's build backend

say() { echo "[cereggii] $*"; }
fail() { say "not installed: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || fail "usage: install_cereggii.sh VENV"
venv="$1"
py="$venv/bin/python"
[[ -x "$py" ]] || fail "$py does not exist"

installed_ok() {
    "$py" - "$CEREGGII_VERSION" <<'EOF' >/dev/null 2>&1
import importlib.metadata, sys
if importlib.metadata.version("cereggii") != sys.argv[1]:
    sys.exit(1)
import cereggii
d = cereggii.AtomicDict({"k": 1})
assert d["k"] == 1
# A module that does not declare free-threading support re-enables the GIL
# when imported: that would silently turn every benchmark into a GIL run.
check = getattr(sys, "_is_gil_enabled", None)
sys.exit(1 if check is not None and check() else 0)
EOF
}

if installed_ok; then
    say "cereggii $CEREGGII_VERSION already installed in $venv"
    exit 0
fi

"$py" -c 'import sysconfig, sys; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' \
    || fail "$venv is not a free-threaded interpreter; cereggii is benchmarked on free-threaded builds only"
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || fail "no C compiler on PATH"

# A published wheel for this interpreter, when there is one (cp314t, cp315t).
if "$py" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
        "cereggii==$CEREGGII_VERSION" >/dev/null 2>&1; then
    installed_ok || fail "cereggii $CEREGGII_VERSION installed from a wheel but does not import, or re-enables the GIL"
    say "cereggii $CEREGGII_VERSION installed (wheel)"
    exit 0
fi
say "no cereggii $CEREGGII_VERSION wheel for this interpreter: building it from source"

cache="${NOGIL_COLLECTIONS_CACHE:-$HOME/.cache/nogil-collections}"
tag="$("$py" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}t-{sysconfig.get_platform()}")')"
wheel_dir="$cache/wheels/cereggii-$CEREGGII_VERSION-$tag"
pip_quiet() { "$@" 2>&1 | grep -v '^WARNING: Location' || return "${PIPESTATUS[0]}"; }

if ! compgen -G "$wheel_dir/cereggii-$CEREGGII_VERSION-*.whl" >/dev/null; then
    base_py="$("$py" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')"
    build_venv="$(mktemp -d "${TMPDIR:-/tmp}/cereggii-build.XXXXXX")"
    trap 'rm -rf "$build_venv"' EXIT
    say "building cereggii $CEREGGII_VERSION from source (cmake $CMAKE_VERSION, py-build-cmake $PY_BUILD_CMAKE_VERSION)"
    "$base_py" -m venv "$build_venv" || fail "could not create a build venv on $base_py"
    pip_quiet "$build_venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
        "cmake==$CMAKE_VERSION" "py-build-cmake==$PY_BUILD_CMAKE_VERSION" \
        || fail "could not install the pinned build tools (cmake $CMAKE_VERSION, py-build-cmake $PY_BUILD_CMAKE_VERSION)"
    mkdir -p "$wheel_dir"
    log="$build_venv/build.log"
    if ! PATH="$build_venv/bin:$PATH" Python3_ROOT="$build_venv" \
        "$build_venv/bin/python" -m pip wheel --disable-pip-version-check --no-cache-dir --no-deps \
        --no-build-isolation --no-binary=cereggii -w "$wheel_dir" "cereggii==$CEREGGII_VERSION" >"$log" 2>&1; then
        grep -v '^WARNING: Location' "$log" | tail -n 30 >&2
        rmdir "$wheel_dir" 2>/dev/null || true
        fail "the source build of cereggii $CEREGGII_VERSION failed (log above)"
    fi
fi

wheel="$(compgen -G "$wheel_dir/cereggii-$CEREGGII_VERSION-*.whl" | head -n 1)"
say "installing $(basename "$wheel") into $venv"
pip_quiet "$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel" \
    || fail "pip could not install $wheel"
installed_ok || fail "cereggii $CEREGGII_VERSION installed but does not import, or re-enables the GIL"
say "cereggii $CEREGGII_VERSION installed"
