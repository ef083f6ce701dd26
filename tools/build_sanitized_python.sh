#!/usr/bin/env bash
# build_sanitized_python.sh thread|address [VERSION]
#
# Build (once per machine) a free-threaded CPython VERSION (3.14, the default;
# 3.15 or 3.13) instrumented with a sanitizer and print its interpreter path on
# the last line of stdout.
#
#   thread   --with-thread-sanitizer                                  -> $CACHE/python3.14t-tsan
#   address  --with-address-sanitizer --with-undefined-behavior-sanitizer -> $CACHE/python3.14t-asan
#   (python3.15t-tsan, python3.13t-asan, ... for the other versions)
#
# The sources are the ones tools/bootstrap_python_ft.sh builds the normal
# interpreter from (`bootstrap_python_ft.sh --source VERSION`): for 3.14 and
# 3.15 the release tarball in $NOGIL_COLLECTIONS_TARBALLS (the Makefile's
# CPYTHON_TARBALLS), sha256-checked against tools/cpython-sources.sha256; for
# 3.13 Debian's `python3.13` upstream tarball (reused from
# ~/.cache/nogil-collections/src/, downloaded if missing).
# CPython's own ThreadSanitizer suppressions (Tools/tsan/) are installed next to
# the interpreter in $PREFIX/share/nogil-collections/ for tools/run_sanitized.sh.
#
# Environment: NOGIL_COLLECTIONS_CACHE (cache root), NOGIL_COLLECTIONS_TARBALLS,
# CC (default gcc), NOGIL_COLLECTIONS_SAN_JOBS (make -j, default 2),
# NOGIL_COLLECTIONS_SAN_REBUILD=1 (ignore a cached build).  Builds run under
# `nice -n 10`.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${NOGIL_COLLECTIONS_CACHE:-$HOME/.cache/nogil-collections}"
JOBS="${NOGIL_COLLECTIONS_SAN_JOBS:-2}"
export CC="${CC:-gcc}"

say() { echo "[python${VERSION:-}t-$KIND] $*" >&2; }
die() { echo "[python${VERSION:-}t-$KIND] ERROR: $*" >&2; exit 1; }

KIND="${1:-}"
case "$KIND" in
    thread)
        TAG=tsan
        SAN_ARGS=(--with-thread-sanitizer)
        ;;
    address)
        TAG=asan
        # --with-address-sanitizer also turns pymalloc off.  The free-threaded
        # build still allocates *objects* with mimalloc (which is not
        # ASAN-tracked); raw allocations (PyMem_RawMalloc: our backing arrays
        # and QSBR-retired memory) go to malloc and are fully checked.
        SAN_ARGS=(--with-address-sanitizer --with-undefined-behavior-sanitizer --without-pymalloc)
        ;;
    *) echo "usage: $0 thread|address [3.14|3.15|3.13]" >&2; exit 2 ;;
esac
VERSION="${2:-3.14}"
case "$VERSION" in 3.13|3.14|3.15) ;; *) echo "usage: $0 thread|address [3.14|3.15|3.13]" >&2; exit 2 ;; esac
PREFIX="$CACHE_ROOT/python${VERSION}t-$TAG"
PY="$PREFIX/bin/python${VERSION}t"
STAMP="$PREFIX/.nogil-collections-complete"

# The sanitizer runtimes must not fail the build on CPython's own findings:
# leaks at exit are expected (CPython's ASAN CI also sets detect_leaks=0) and
# TSAN's default exitcode=66 would turn any CPython-internal report into a
# failed build step.  tools/run_sanitized.sh sets strict options for the tests.
build_env() {
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0"
    export UBSAN_OPTIONS="print_stacktrace=0:halt_on_error=0"
    export TSAN_OPTIONS="exitcode=0:report_bugs=0"
}

is_ok() {
    [[ -x "$PY" && -f "$STAMP" ]] || return 1
    (build_env; "$PY" - "${SAN_ARGS[0]}" <<'PYEOF'
import sys, sysconfig
ok = sysconfig.get_config_var("Py_GIL_DISABLED") and sys.argv[1] in sysconfig.get_config_var("CONFIG_ARGS")
sys.exit(0 if ok else 1)
PYEOF
    ) 2>/dev/null
}

# One build per kind at a time (two `make tsan` in parallel wait for each other).
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build-python${VERSION}t-$TAG.lock"
flock 9

# --disable-test-modules (below) leaves out Lib/test, but the project's tests
# import the pure-Python parts of it (test.mapping_tests, test.list_tests):
# install the package from the source tarball, not byte-compiled.
add_test_package() {
    local libdest
    libdest="$(build_env; "$PY" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
    [[ -f "$libdest/test/mapping_tests.py" ]] && return 0
    say "adding the pure-Python test package (test.mapping_tests, ...) to $libdest"
    local src
    src="$(bash "$HERE/bootstrap_python_ft.sh" --source "$VERSION" | tail -n1)" || die "no source tarball for $VERSION (see above)"
    tar -xf "$src" \
        -C "$libdest" --strip-components=2 --wildcards '*/Lib/test/*'
}

if [[ "${NOGIL_COLLECTIONS_SAN_REBUILD:-0}" != 1 ]] && is_ok; then
    add_test_package
    say "using cached build $PY"
    echo "$PY"; exit 0
fi

command -v "$CC" >/dev/null || die "C compiler $CC not found"
command -v make >/dev/null || die "make not found"

say "building a free-threaded CPython $VERSION with ${SAN_ARGS[*]} (once per machine; several minutes)"
orig="$(bash "$HERE/bootstrap_python_ft.sh" --source "$VERSION" | tail -n1)" || die "no source tarball for $VERSION (see above)"
[[ -f "$orig" ]] || die "no CPython source tarball (bootstrap_python_ft.sh --source $VERSION printed '$orig')"
say "source: $orig"

BUILD_DIR="$CACHE_ROOT/build-python${VERSION}t-$TAG"
LOG="$CACHE_ROOT/build-python${VERSION}t-$TAG.log"
rm -rf "$BUILD_DIR" "$PREFIX"
mkdir -p "$BUILD_DIR"
tar -xf "$orig" -C "$BUILD_DIR" --strip-components=1
say "full log: $LOG"

start=$SECONDS
(
    build_env
    cd "$BUILD_DIR"
    # --disable-test-modules: no _test* extensions and no Lib/test at install
    # time -- it roughly halves `make install`, which byte-compiles the stdlib
    # with the (slow) instrumented interpreter; add_test_package adds Lib/test.
    echo "+ ./configure --disable-gil ${SAN_ARGS[*]} --disable-test-modules --with-ensurepip=install --prefix=$PREFIX (CC=$CC)"
    ./configure --disable-gil "${SAN_ARGS[@]}" --disable-test-modules \
        --with-ensurepip=install --prefix="$PREFIX"
    nice -n 10 make -j"$JOBS"
    nice -n 10 make install
) >"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "build failed (see $LOG)"; }

# CPython's own TSAN suppressions, from the very source tree we built.
mkdir -p "$PREFIX/share/nogil-collections"
cp "$BUILD_DIR"/Tools/tsan/suppressions*.txt "$PREFIX/share/nogil-collections/"
add_test_package
touch "$STAMP"
rm -rf "$BUILD_DIR"
is_ok || die "the build at $PY is not a free-threaded $KIND-sanitized CPython"
say "built in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s: $(build_env; "$PY" -VV 2>/dev/null)"
echo "$PY"
